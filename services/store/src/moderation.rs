//! Moderation data (issue #15) when MongoDB is not deployed (migration 0011): rules with every revision, lists,
//! the change counter API processes poll, the review queues, users' reports and the audit log. Rules and lists
//! are stored as the API's JSON (`body`): their shape belongs to `comet-moderation`, which reads them back.

use comet_model::Millis;
use sqlx::QueryBuilder;
use sqlx::any::AnyRow;

use crate::error::is_unique_violation;
use crate::rows::{get, named};
use crate::{Store, StoreError};

/// A rule or a list as stored: its id, its JSON body and its revision (1 when made, +1 per change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationDocument {
    pub id: String,
    pub revision: i64,
    pub body: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One revision of a rule: its body then (`None`: the rule was deleted), who made it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRevision {
    pub rule_id: String,
    pub revision: i64,
    pub body: Option<String>,
    pub changed_by: String,
    pub changed_at: Millis,
}

/// Which review queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewQueue {
    /// Messages a rule blocked: never delivered unless a moderator approves them.
    Blocked,
    /// Messages delivered and flagged for review, by a rule or by users' reports.
    Flagged,
    /// Messages a rule masked: delivered masked, the original kept here for moderators (decided by the rule).
    Masked,
}

impl ReviewQueue {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewQueue::Blocked => "blocked",
            ReviewQueue::Flagged => "flagged",
            ReviewQueue::Masked => "masked",
        }
    }

    pub fn parse(text: &str) -> Option<ReviewQueue> {
        match text {
            "blocked" => Some(ReviewQueue::Blocked),
            "flagged" => Some(ReviewQueue::Flagged),
            "masked" => Some(ReviewQueue::Masked),
            _ => None,
        }
    }
}

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewStatus {
    Pending,
    Approved,
    Rejected,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<ReviewStatus> {
        match text {
            "pending" => Some(ReviewStatus::Pending),
            "approved" => Some(ReviewStatus::Approved),
            "rejected" => Some(ReviewStatus::Rejected),
            _ => None,
        }
    }
}

/// A message in a review queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub id: String,
    pub queue: ReviewQueue,
    pub message_id: String,
    /// The conversation's display id.
    pub conversation: String,
    pub sender: String,
    /// `user` or `group`.
    pub receiver_type: String,
    pub receiver: String,
    /// The original text (moderators only).
    pub text: String,
    /// What recipients saw when a rule masked it.
    pub masked: Option<String>,
    /// The rule that queued it; `None` for users' reports.
    pub rule_id: Option<String>,
    pub status: ReviewStatus,
    pub created_at: Millis,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<Millis>,
}

/// Which queued messages to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ReviewFilter {
    pub queue: Option<ReviewQueue>,
    /// `Some(false)`: pending only; `Some(true)`: reviewed only.
    pub reviewed: Option<bool>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub rule_id: Option<String>,
    pub sender: Option<String>,
    /// Only items made before this time (ms, exclusive): the previous page's last `createdAt`.
    pub before: Option<Millis>,
    pub limit: u32,
}

/// A user's report of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReport {
    pub id: String,
    pub message_id: String,
    pub reporter: String,
    pub reason_id: String,
    pub remark: Option<String>,
    pub created_at: Millis,
}

/// One moderator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    /// Who: the API key's id or the moderator's uid.
    pub actor: String,
    /// What: `rule.create`, `review.approve`, …
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    /// JSON: what changed.
    pub detail: String,
    pub at: Millis,
}

const REVIEW_COLUMNS: &str = "id, queue, message_id, conversation, sender, receiver_type, receiver, text, masked, \
     rule_id, status, created_at, reviewed_by, reviewed_at";

impl Store {
    /// The change counter of rules and lists.
    pub async fn moderation_version(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT version FROM moderation_state WHERE id = 1").fetch_one(&self.reads).await?)
    }

    /// Makes rule `rule` (revision 1, or the next after a deleted rule's, recorded with `by`) unless `max` exist (false, nothing written);
    /// `Conflict("moderation rule")` when its id is taken.
    pub async fn create_moderation_rule(
        &self,
        rule: &ModerationDocument,
        by: &str,
        max: u32,
    ) -> Result<bool, StoreError> {
        self.create_moderation_document("moderation_rules", "moderation rule", rule, Some(by), max).await
    }

    /// Makes list `list` unless `max` exist (false); `Conflict("moderation list")` when its id is taken.
    pub async fn create_moderation_list(&self, list: &ModerationDocument, max: u32) -> Result<bool, StoreError> {
        self.create_moderation_document("moderation_lists", "moderation list", list, None, max).await
    }

    async fn create_moderation_document(
        &self,
        table: &'static str,
        entity: &'static str,
        document: &ModerationDocument,
        revision_by: Option<&str>,
        max: u32,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        // Like webhooks: two concurrent creations on MySQL may both see max - 1 (a guard, not an invariant).
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *transaction)
            .await?;
        if count >= i64::from(max) {
            return Ok(false);
        }
        // A rule made again after a deletion goes on with the numbering of its revisions.
        let revision: i64 = match revision_by {
            Some(_) => {
                sqlx::query_scalar(
                    "SELECT COALESCE(MAX(revision), 0) + 1 FROM moderation_rule_revisions WHERE rule_id = ?",
                )
                .bind(document.id.as_str())
                .fetch_one(&mut *transaction)
                .await?
            }
            None => 1,
        };
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (id, revision, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
        )))
        .bind(document.id.as_str())
        .bind(revision)
        .bind(document.body.as_str())
        .bind(document.created_at)
        .bind(document.updated_at)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => return Err(StoreError::Conflict(entity)),
            Err(error) => return Err(error.into()),
        }
        if let Some(by) = revision_by {
            insert_revision(&mut transaction, &document.id, revision, Some(&document.body), by, document.updated_at)
                .await?;
        }
        bump_version(&mut transaction).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Replaces rule `id`'s body with a new revision (recorded with `by`); its number, or `None` when there
    /// is no such rule.
    pub async fn update_moderation_rule(
        &self,
        id: &str,
        body: &str,
        by: &str,
        now: Millis,
    ) -> Result<Option<i64>, StoreError> {
        self.update_moderation_document("moderation_rules", id, body, Some(by), now).await
    }

    /// Replaces list `id`'s body; its new revision, or `None` when there is no such list.
    pub async fn update_moderation_list(&self, id: &str, body: &str, now: Millis) -> Result<Option<i64>, StoreError> {
        self.update_moderation_document("moderation_lists", id, body, None, now).await
    }

    async fn update_moderation_document(
        &self,
        table: &'static str,
        id: &str,
        body: &str,
        revision_by: Option<&str>,
        now: Millis,
    ) -> Result<Option<i64>, StoreError> {
        let mut transaction = self.begin_write().await?;
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET revision = revision + 1, body = ?, updated_at = ? WHERE id = ?"
        )))
        .bind(body)
        .bind(now)
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(None);
        }
        let revision: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT revision FROM {table} WHERE id = ?")))
                .bind(id)
                .fetch_one(&mut *transaction)
                .await?;
        if let Some(by) = revision_by {
            insert_revision(&mut transaction, id, revision, Some(body), by, now).await?;
        }
        bump_version(&mut transaction).await?;
        transaction.commit().await?;
        Ok(Some(revision))
    }

    /// Deletes rule `id`, recording the deletion as its last revision; false when there was none.
    pub async fn delete_moderation_rule(&self, id: &str, by: &str, now: Millis) -> Result<bool, StoreError> {
        self.delete_moderation_document("moderation_rules", id, Some(by), now).await
    }

    /// Deletes list `id`; false when there was none.
    pub async fn delete_moderation_list(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_moderation_document("moderation_lists", id, None, 0).await
    }

    async fn delete_moderation_document(
        &self,
        table: &'static str,
        id: &str,
        revision_by: Option<&str>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let revision: Option<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT revision FROM {table} WHERE id = ?")))
                .bind(id)
                .fetch_optional(&mut *transaction)
                .await?;
        let Some(revision) = revision else { return Ok(false) };
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE id = ?")))
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        if let Some(by) = revision_by {
            insert_revision(&mut transaction, id, revision + 1, None, by, now).await?;
        }
        bump_version(&mut transaction).await?;
        transaction.commit().await?;
        Ok(true)
    }

    pub async fn moderation_rule(&self, id: &str) -> Result<Option<ModerationDocument>, StoreError> {
        self.moderation_document("moderation_rules", id).await
    }

    pub async fn moderation_list(&self, id: &str) -> Result<Option<ModerationDocument>, StoreError> {
        self.moderation_document("moderation_lists", id).await
    }

    async fn moderation_document(&self, table: &str, id: &str) -> Result<Option<ModerationDocument>, StoreError> {
        let sql = format!("SELECT id, revision, body, created_at, updated_at FROM {table} WHERE id = ?");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.reads).await?;
        found.as_ref().map(document_from_row).transpose()
    }

    /// Every rule, by id.
    pub async fn moderation_rules(&self) -> Result<Vec<ModerationDocument>, StoreError> {
        self.moderation_documents("moderation_rules").await
    }

    /// Every list, by id.
    pub async fn moderation_lists(&self) -> Result<Vec<ModerationDocument>, StoreError> {
        self.moderation_documents("moderation_lists").await
    }

    async fn moderation_documents(&self, table: &str) -> Result<Vec<ModerationDocument>, StoreError> {
        let sql = format!("SELECT id, revision, body, created_at, updated_at FROM {table} ORDER BY id");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reads).await?;
        found.iter().map(document_from_row).collect()
    }

    /// Every revision of rule `id`, oldest first (also of a deleted rule).
    pub async fn moderation_rule_revisions(&self, id: &str) -> Result<Vec<RuleRevision>, StoreError> {
        let found = sqlx::query(
            "SELECT rule_id, revision, body, changed_by, changed_at FROM moderation_rule_revisions \
             WHERE rule_id = ? ORDER BY revision",
        )
        .bind(id)
        .fetch_all(&self.reads)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(RuleRevision {
                    rule_id: get(row, "rule_id")?,
                    revision: get(row, "revision")?,
                    body: get(row, "body")?,
                    changed_by: get(row, "changed_by")?,
                    changed_at: get(row, "changed_at")?,
                })
            })
            .collect()
    }

    /// Queues `item` unless its message is in that queue already (false, nothing written).
    pub async fn enqueue_review(&self, item: &ReviewItem) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO moderation_reviews ({REVIEW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let inserted = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(item.id.as_str())
            .bind(item.queue.as_str())
            .bind(item.message_id.as_str())
            .bind(item.conversation.as_str())
            .bind(item.sender.as_str())
            .bind(item.receiver_type.as_str())
            .bind(item.receiver.as_str())
            .bind(item.text.as_str())
            .bind(item.masked.as_deref())
            .bind(item.rule_id.as_deref())
            .bind(item.status.as_str())
            .bind(item.created_at)
            .bind(item.reviewed_by.as_deref())
            .bind(item.reviewed_at)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn review_item(&self, id: &str) -> Result<Option<ReviewItem>, StoreError> {
        let sql = format!("SELECT {REVIEW_COLUMNS} FROM moderation_reviews WHERE id = ?");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.reads).await?;
        found.as_ref().map(review_from_row).transpose()
    }

    /// Queued messages matching `filter`, newest first (ties by id), at most `filter.limit`.
    pub async fn review_items(&self, filter: &ReviewFilter) -> Result<Vec<ReviewItem>, StoreError> {
        let mut query: QueryBuilder<sqlx::Any> =
            QueryBuilder::new(format!("SELECT {REVIEW_COLUMNS} FROM moderation_reviews WHERE 1 = 1"));
        if let Some(queue) = filter.queue {
            query.push(" AND queue = ").push_bind(queue.as_str());
        }
        match filter.reviewed {
            Some(true) => {
                query.push(" AND status <> 'pending'");
            }
            Some(false) => {
                query.push(" AND status = 'pending'");
            }
            None => {}
        }
        if let Some(since) = filter.since {
            query.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            query.push(" AND created_at <= ").push_bind(until);
        }
        if let Some(before) = filter.before {
            query.push(" AND created_at < ").push_bind(before);
        }
        if let Some(rule_id) = &filter.rule_id {
            query.push(" AND rule_id = ").push_bind(rule_id.clone());
        }
        if let Some(sender) = &filter.sender {
            query.push(" AND sender = ").push_bind(sender.clone());
        }
        query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(filter.limit));
        let found = query.build().fetch_all(&self.reads).await?;
        found.iter().map(review_from_row).collect()
    }

    /// Decides a pending item (`Approved` or `Rejected`); false when it is not pending (or not there).
    pub async fn decide_review(
        &self,
        id: &str,
        status: ReviewStatus,
        by: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE moderation_reviews SET status = ?, reviewed_by = ?, reviewed_at = ? \
             WHERE id = ? AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(by)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records a report; `Conflict("report")` when this reporter reported this message already.
    pub async fn add_report(&self, report: &UserReport) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO moderation_reports (id, message_id, reporter, reason_id, remark, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(report.id.as_str())
        .bind(report.message_id.as_str())
        .bind(report.reporter.as_str())
        .bind(report.reason_id.as_str())
        .bind(report.remark.as_deref())
        .bind(report.created_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict("report")),
            Err(error) => Err(error.into()),
        }
    }

    /// The reports of a message, oldest first.
    pub async fn reports_of(&self, message_id: &str) -> Result<Vec<UserReport>, StoreError> {
        let found = sqlx::query(
            "SELECT id, message_id, reporter, reason_id, remark, created_at FROM moderation_reports \
             WHERE message_id = ? ORDER BY created_at, id",
        )
        .bind(message_id)
        .fetch_all(&self.reads)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(UserReport {
                    id: get(row, "id")?,
                    message_id: get(row, "message_id")?,
                    reporter: get(row, "reporter")?,
                    reason_id: get(row, "reason_id")?,
                    remark: get(row, "remark")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO moderation_audit (id, actor, action, target_kind, target_id, detail, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.id.as_str())
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.target_kind.as_str())
        .bind(entry.target_id.as_str())
        .bind(entry.detail.as_str())
        .bind(entry.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The audit log, newest first (ties by id), before `before` (ms, exclusive) when given.
    pub async fn audit_entries(&self, before: Option<Millis>, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let found = sqlx::query(
            "SELECT id, actor, action, target_kind, target_id, detail, at FROM moderation_audit \
             WHERE at < ? ORDER BY at DESC, id DESC LIMIT ?",
        )
        .bind(before.unwrap_or(Millis::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: get(row, "id")?,
                    actor: get(row, "actor")?,
                    action: get(row, "action")?,
                    target_kind: get(row, "target_kind")?,
                    target_id: get(row, "target_id")?,
                    detail: get(row, "detail")?,
                    at: get(row, "at")?,
                })
            })
            .collect()
    }
}

async fn insert_revision(
    connection: &mut sqlx::AnyConnection,
    rule_id: &str,
    revision: i64,
    body: Option<&str>,
    by: &str,
    at: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO moderation_rule_revisions (rule_id, revision, body, changed_by, changed_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(rule_id)
    .bind(revision)
    .bind(body)
    .bind(by)
    .bind(at)
    .execute(connection)
    .await?;
    Ok(())
}

async fn bump_version(connection: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE moderation_state SET version = version + 1 WHERE id = 1").execute(connection).await?;
    Ok(())
}

fn document_from_row(row: &AnyRow) -> Result<ModerationDocument, StoreError> {
    Ok(ModerationDocument {
        id: get(row, "id")?,
        revision: get(row, "revision")?,
        body: get(row, "body")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn review_from_row(row: &AnyRow) -> Result<ReviewItem, StoreError> {
    Ok(ReviewItem {
        id: get(row, "id")?,
        queue: named(row, "queue", ReviewQueue::parse)?,
        message_id: get(row, "message_id")?,
        conversation: get(row, "conversation")?,
        sender: get(row, "sender")?,
        receiver_type: get(row, "receiver_type")?,
        receiver: get(row, "receiver")?,
        text: get(row, "text")?,
        masked: get(row, "masked")?,
        rule_id: get(row, "rule_id")?,
        status: named(row, "status", ReviewStatus::parse)?,
        created_at: get(row, "created_at")?,
        reviewed_by: get(row, "reviewed_by")?,
        reviewed_at: get(row, "reviewed_at")?,
    })
}
