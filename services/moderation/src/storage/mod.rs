//! Where moderation data lives, behind one interface: MongoDB when the deployment has it (where CometChat's
//! bundle keeps it), the relational store otherwise (SQLite embedded, TiDB/MariaDB split). Rules keep every
//! revision; every change to rules or lists bumps one counter ([`ModerationStore::version`]) that API
//! processes poll to recompile their engine.

mod mongo;
mod relational;

use comet_model::Millis;
use comet_store::{AuditEntry, ReviewFilter, ReviewItem, ReviewStatus, StoreError, UserReport};
use futures::future::BoxFuture;

use crate::spec::{ListSpec, RuleSpec};

pub use mongo::MongoModeration;

/// A rule or list as stored: the spec, its revision (1 when made) and when it was made and last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    pub spec: T,
    pub revision: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One revision of a rule; `rule` is `None` for its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub revision: i64,
    pub rule: Option<RuleSpec>,
    pub changed_by: String,
    pub changed_at: Millis,
}

/// The moderation data of the app.
pub trait ModerationStore: Send + Sync + std::fmt::Debug {
    /// The change counter of rules and lists.
    fn version(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// Makes `rule` (revision 1, by `by`) unless `max` rules exist (false, nothing written); `Conflict` when
    /// its id is taken.
    fn create_rule<'a>(
        &'a self,
        rule: &'a RuleSpec,
        by: &'a str,
        now: Millis,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Replaces the rule with `rule.id` as a new revision; its number, `None` when there is no such rule.
    fn update_rule<'a>(
        &'a self,
        rule: &'a RuleSpec,
        by: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<Option<i64>, StoreError>>;
    /// Deletes a rule, recording the deletion as a revision; false when there was none.
    fn delete_rule<'a>(&'a self, id: &'a str, by: &'a str, now: Millis) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn rule<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored<RuleSpec>>, StoreError>>;
    /// Every rule, by id.
    fn rules(&self) -> BoxFuture<'_, Result<Vec<Stored<RuleSpec>>, StoreError>>;
    /// Every revision of a rule (also a deleted one), oldest first.
    fn revisions<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Revision>, StoreError>>;

    /// Makes `list` unless `max` lists exist (false); `Conflict` when its id is taken.
    fn create_list<'a>(
        &'a self,
        list: &'a ListSpec,
        now: Millis,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Replaces the list with `list.id`; its new revision, `None` when there is no such list.
    fn update_list<'a>(&'a self, list: &'a ListSpec, now: Millis) -> BoxFuture<'a, Result<Option<i64>, StoreError>>;
    fn delete_list<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn list<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored<ListSpec>>, StoreError>>;
    /// Every list, by id.
    fn lists(&self) -> BoxFuture<'_, Result<Vec<Stored<ListSpec>>, StoreError>>;

    /// Queues a message unless it is in that queue already (false, nothing written).
    fn enqueue<'a>(&'a self, item: &'a ReviewItem) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn review_item<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ReviewItem>, StoreError>>;
    /// Queued messages matching `filter`, newest first (ties by id descending).
    fn review_items<'a>(&'a self, filter: &'a ReviewFilter) -> BoxFuture<'a, Result<Vec<ReviewItem>, StoreError>>;
    /// Decides a pending item; false when it is not pending or not there.
    fn decide<'a>(
        &'a self,
        id: &'a str,
        status: ReviewStatus,
        by: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records a user's report; `Conflict("report")` when this user reported this message already.
    fn add_report<'a>(&'a self, report: &'a UserReport) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A message's reports, oldest first.
    fn reports_of<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Vec<UserReport>, StoreError>>;

    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The audit log, newest first, before `before` (ms, exclusive) when given.
    fn audit(&self, before: Option<Millis>, limit: u32) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>>;
}
