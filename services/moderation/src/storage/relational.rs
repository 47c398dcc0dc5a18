//! Moderation data in the relational store (migration 0011): rules and lists as their JSON bodies.

use comet_model::Millis;
use comet_store::{
    AuditEntry, ModerationDocument, ReviewFilter, ReviewItem, ReviewStatus, Store, StoreError, UserReport,
};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ModerationStore, Revision, Stored};
use crate::spec::{ListSpec, RuleSpec};

fn body(spec: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(spec)
        .map_err(|error| StoreError::Documents(format!("a moderation body does not serialize: {error}")))
}

fn parse<T: DeserializeOwned>(id: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body)
        .map_err(|error| StoreError::Documents(format!("moderation document `{id}` does not read back: {error}")))
}

fn stored<T: DeserializeOwned>(document: ModerationDocument) -> Result<Stored<T>, StoreError> {
    Ok(Stored {
        spec: parse(&document.id, &document.body)?,
        revision: document.revision,
        created_at: document.created_at,
        updated_at: document.updated_at,
    })
}

fn document(id: &str, body: String, now: Millis) -> ModerationDocument {
    ModerationDocument { id: id.to_owned(), revision: 1, body, created_at: now, updated_at: now }
}

fn limit(max: usize) -> u32 {
    u32::try_from(max).unwrap_or(u32::MAX)
}

impl ModerationStore for Store {
    fn version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.moderation_version())
    }

    fn create_rule<'a>(
        &'a self,
        rule: &'a RuleSpec,
        by: &'a str,
        now: Millis,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(
            async move { self.create_moderation_rule(&document(&rule.id, body(rule)?, now), by, limit(max)).await },
        )
    }

    fn update_rule<'a>(
        &'a self,
        rule: &'a RuleSpec,
        by: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        Box::pin(async move { self.update_moderation_rule(&rule.id, &body(rule)?, by, now).await })
    }

    fn delete_rule<'a>(&'a self, id: &'a str, by: &'a str, now: Millis) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete_moderation_rule(id, by, now))
    }

    fn rule<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored<RuleSpec>>, StoreError>> {
        Box::pin(async move { self.moderation_rule(id).await?.map(stored).transpose() })
    }

    fn rules(&self) -> BoxFuture<'_, Result<Vec<Stored<RuleSpec>>, StoreError>> {
        Box::pin(async move { self.moderation_rules().await?.into_iter().map(stored).collect() })
    }

    fn revisions<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Revision>, StoreError>> {
        Box::pin(async move {
            self.moderation_rule_revisions(id)
                .await?
                .into_iter()
                .map(|revision| {
                    Ok(Revision {
                        revision: revision.revision,
                        rule: revision.body.as_deref().map(|body| parse(id, body)).transpose()?,
                        changed_by: revision.changed_by,
                        changed_at: revision.changed_at,
                    })
                })
                .collect()
        })
    }

    fn create_list<'a>(
        &'a self,
        list: &'a ListSpec,
        now: Millis,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { self.create_moderation_list(&document(&list.id, body(list)?, now), limit(max)).await })
    }

    fn update_list<'a>(&'a self, list: &'a ListSpec, now: Millis) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        Box::pin(async move { self.update_moderation_list(&list.id, &body(list)?, now).await })
    }

    fn delete_list<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete_moderation_list(id))
    }

    fn list<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored<ListSpec>>, StoreError>> {
        Box::pin(async move { self.moderation_list(id).await?.map(stored).transpose() })
    }

    fn lists(&self) -> BoxFuture<'_, Result<Vec<Stored<ListSpec>>, StoreError>> {
        Box::pin(async move { self.moderation_lists().await?.into_iter().map(stored).collect() })
    }

    fn enqueue<'a>(&'a self, item: &'a ReviewItem) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.enqueue_review(item))
    }

    fn review_item<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ReviewItem>, StoreError>> {
        Box::pin(Store::review_item(self, id))
    }

    fn review_items<'a>(&'a self, filter: &'a ReviewFilter) -> BoxFuture<'a, Result<Vec<ReviewItem>, StoreError>> {
        Box::pin(Store::review_items(self, filter))
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        status: ReviewStatus,
        by: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.decide_review(id, status, by, now))
    }

    fn add_report<'a>(&'a self, report: &'a UserReport) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::add_report(self, report))
    }

    fn reports_of<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Vec<UserReport>, StoreError>> {
        Box::pin(Store::reports_of(self, message_id))
    }

    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::append_audit(self, entry))
    }

    fn audit(&self, before: Option<Millis>, limit: u32) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(self.audit_entries(before, limit))
    }
}
