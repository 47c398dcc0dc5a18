//! Moderation data in MongoDB, as CometChat's bundle keeps it: `moderation_rules` (the current revision,
//! `_id` = the rule's id), `moderation_rule_revisions` (every revision, unique per rule and revision: the
//! insert of revision n + 1 is what lets one writer win a concurrent edit), `moderation_lists`,
//! `moderation_state` (the change counter), `moderation_reviews` (unique per queue and message),
//! `moderation_reports` (unique per message and reporter) and `moderation_audit`. Indexes are made when the
//! interface is built (idempotent).

use comet_documents::bson::{Document, doc};
use comet_documents::{Collection, Documents, IndexModel, IndexOptions, is_duplicate_key};
use comet_model::Millis;
use comet_store::{AuditEntry, ReviewFilter, ReviewItem, ReviewQueue, ReviewStatus, StoreError, UserReport};
use futures::TryStreamExt as _;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{ModerationStore, Revision, Stored};
use crate::spec::{ListSpec, RuleSpec};

/// A concurrent edit of one rule loses its revision's insert and reads again; this many tries.
const EDIT_TRIES: usize = 5;

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Documents(error.to_string())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecDocument<T> {
    #[serde(rename = "_id")]
    id: String,
    revision: i64,
    spec: T,
    created_at: Millis,
    updated_at: Millis,
}

impl<T> From<SpecDocument<T>> for Stored<T> {
    fn from(document: SpecDocument<T>) -> Stored<T> {
        Stored {
            spec: document.spec,
            revision: document.revision,
            created_at: document.created_at,
            updated_at: document.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevisionDocument {
    rule_id: String,
    revision: i64,
    rule: Option<RuleSpec>,
    changed_by: String,
    changed_at: Millis,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewDocument {
    #[serde(rename = "_id")]
    id: String,
    queue: String,
    message_id: String,
    conversation: String,
    sender: String,
    receiver_type: String,
    receiver: String,
    text: String,
    masked: Option<String>,
    rule_id: Option<String>,
    status: String,
    created_at: Millis,
    reviewed_by: Option<String>,
    reviewed_at: Option<Millis>,
}

impl From<&ReviewItem> for ReviewDocument {
    fn from(item: &ReviewItem) -> ReviewDocument {
        ReviewDocument {
            id: item.id.clone(),
            queue: item.queue.as_str().to_owned(),
            message_id: item.message_id.clone(),
            conversation: item.conversation.clone(),
            sender: item.sender.clone(),
            receiver_type: item.receiver_type.clone(),
            receiver: item.receiver.clone(),
            text: item.text.clone(),
            masked: item.masked.clone(),
            rule_id: item.rule_id.clone(),
            status: item.status.as_str().to_owned(),
            created_at: item.created_at,
            reviewed_by: item.reviewed_by.clone(),
            reviewed_at: item.reviewed_at,
        }
    }
}

impl TryFrom<ReviewDocument> for ReviewItem {
    type Error = StoreError;

    fn try_from(document: ReviewDocument) -> Result<ReviewItem, StoreError> {
        let unknown = |field: &str, value: &str| failed(format!("review `{}`: unknown {field} `{value}`", document.id));
        Ok(ReviewItem {
            queue: ReviewQueue::parse(&document.queue).ok_or_else(|| unknown("queue", &document.queue))?,
            status: ReviewStatus::parse(&document.status).ok_or_else(|| unknown("status", &document.status))?,
            id: document.id,
            message_id: document.message_id,
            conversation: document.conversation,
            sender: document.sender,
            receiver_type: document.receiver_type,
            receiver: document.receiver,
            text: document.text,
            masked: document.masked,
            rule_id: document.rule_id,
            created_at: document.created_at,
            reviewed_by: document.reviewed_by,
            reviewed_at: document.reviewed_at,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportDocument {
    #[serde(rename = "_id")]
    id: String,
    message_id: String,
    reporter: String,
    reason_id: String,
    remark: Option<String>,
    created_at: Millis,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditDocument {
    #[serde(rename = "_id")]
    id: String,
    actor: String,
    action: String,
    target_kind: String,
    target_id: String,
    detail: String,
    at: Millis,
}

/// The moderation data in MongoDB.
#[derive(Debug, Clone)]
pub struct MongoModeration {
    rules: Collection<SpecDocument<RuleSpec>>,
    revisions: Collection<RevisionDocument>,
    lists: Collection<SpecDocument<ListSpec>>,
    state: Collection<Document>,
    reviews: Collection<ReviewDocument>,
    reports: Collection<ReportDocument>,
    audit: Collection<AuditDocument>,
}

fn index(keys: Document, unique: bool) -> IndexModel {
    IndexModel::builder().keys(keys).options(IndexOptions::builder().unique(unique).build()).build()
}

impl MongoModeration {
    /// The collections of `documents`, with their indexes made if missing.
    pub async fn new(documents: &Documents) -> Result<MongoModeration, StoreError> {
        let moderation = MongoModeration {
            rules: documents.collection("moderation_rules"),
            revisions: documents.collection("moderation_rule_revisions"),
            lists: documents.collection("moderation_lists"),
            state: documents.collection("moderation_state"),
            reviews: documents.collection("moderation_reviews"),
            reports: documents.collection("moderation_reports"),
            audit: documents.collection("moderation_audit"),
        };
        moderation.revisions.create_index(index(doc! { "ruleId": 1, "revision": 1 }, true)).await.map_err(failed)?;
        moderation.reviews.create_index(index(doc! { "queue": 1, "messageId": 1 }, true)).await.map_err(failed)?;
        moderation
            .reviews
            .create_index(index(doc! { "queue": 1, "status": 1, "createdAt": -1 }, false))
            .await
            .map_err(failed)?;
        moderation.reports.create_index(index(doc! { "messageId": 1, "reporter": 1 }, true)).await.map_err(failed)?;
        moderation.audit.create_index(index(doc! { "at": -1 }, false)).await.map_err(failed)?;
        Ok(moderation)
    }

    async fn bump(&self) -> Result<(), StoreError> {
        self.state
            .update_one(doc! { "_id": "version" }, doc! { "$inc": { "version": 1_i64 } })
            .upsert(true)
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Records revision `revision` of rule `rule_id`; false when another writer recorded it first.
    async fn record(
        &self,
        rule_id: &str,
        revision: i64,
        rule: Option<&RuleSpec>,
        by: &str,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let document = RevisionDocument {
            rule_id: rule_id.to_owned(),
            revision,
            rule: rule.cloned(),
            changed_by: by.to_owned(),
            changed_at: at,
        };
        match self.revisions.insert_one(document).await {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(failed(error)),
        }
    }
}

async fn create<T: Serialize + Clone + Send + Sync>(
    collection: &Collection<SpecDocument<T>>,
    id: &str,
    spec: &T,
    now: Millis,
    max: usize,
    entity: &'static str,
) -> Result<bool, StoreError> {
    let count = collection.count_documents(doc! {}).await.map_err(failed)?;
    if count >= u64::try_from(max).unwrap_or(u64::MAX) {
        return Ok(false);
    }
    let document =
        SpecDocument { id: id.to_owned(), revision: 1, spec: spec.clone(), created_at: now, updated_at: now };
    match collection.insert_one(document).await {
        Ok(_) => Ok(true),
        Err(error) if is_duplicate_key(&error) => Err(StoreError::Conflict(entity)),
        Err(error) => Err(failed(error)),
    }
}

async fn find_all<T>(collection: &Collection<T>, filter: Document, sort: Document) -> Result<Vec<T>, StoreError>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    let cursor = collection.find(filter).sort(sort).await.map_err(failed)?;
    cursor.try_collect().await.map_err(failed)
}

fn spec_bson(spec: &impl Serialize) -> Result<comet_documents::bson::Bson, StoreError> {
    comet_documents::bson::to_bson(spec).map_err(failed)
}

impl ModerationStore for MongoModeration {
    fn version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            let found = self.state.find_one(doc! { "_id": "version" }).await.map_err(failed)?;
            Ok(found.and_then(|document| document.get_i64("version").ok()).unwrap_or(0))
        })
    }

    fn create_rule<'a>(
        &'a self,
        rule: &'a RuleSpec,
        by: &'a str,
        now: Millis,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if !create(&self.rules, &rule.id, rule, now, max, "moderation rule").await? {
                return Ok(false);
            }
            // A rule deleted earlier keeps its revisions: the new one continues its numbering in the log.
            let previous = find_all(&self.revisions, doc! { "ruleId": &rule.id }, doc! { "revision": -1 }).await?;
            let revision = previous.first().map_or(1, |last| last.revision + 1);
            if revision != 1 {
                self.rules
                    .update_one(doc! { "_id": &rule.id }, doc! { "$set": { "revision": revision } })
                    .await
                    .map_err(failed)?;
            }
            self.record(&rule.id, revision, Some(rule), by, now).await?;
            self.bump().await?;
            Ok(true)
        })
    }

    fn update_rule<'a>(
        &'a self,
        rule: &'a RuleSpec,
        by: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            for _ in 0..EDIT_TRIES {
                let Some(current) = self.rules.find_one(doc! { "_id": &rule.id }).await.map_err(failed)? else {
                    return Ok(None);
                };
                let revision = current.revision + 1;
                if !self.record(&rule.id, revision, Some(rule), by, now).await? {
                    continue;
                }
                let set = doc! { "spec": spec_bson(rule)?, "revision": revision, "updatedAt": now };
                self.rules
                    .update_one(doc! { "_id": &rule.id, "revision": current.revision }, doc! { "$set": set })
                    .await
                    .map_err(failed)?;
                self.bump().await?;
                return Ok(Some(revision));
            }
            Err(StoreError::Documents(format!("rule `{}` kept changing during its edit", rule.id)))
        })
    }

    fn delete_rule<'a>(&'a self, id: &'a str, by: &'a str, now: Millis) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            for _ in 0..EDIT_TRIES {
                let Some(current) = self.rules.find_one(doc! { "_id": id }).await.map_err(failed)? else {
                    return Ok(false);
                };
                if !self.record(id, current.revision + 1, None, by, now).await? {
                    continue;
                }
                self.rules.delete_one(doc! { "_id": id }).await.map_err(failed)?;
                self.bump().await?;
                return Ok(true);
            }
            Err(StoreError::Documents(format!("rule `{id}` kept changing during its deletion")))
        })
    }

    fn rule<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored<RuleSpec>>, StoreError>> {
        Box::pin(async move { Ok(self.rules.find_one(doc! { "_id": id }).await.map_err(failed)?.map(Stored::from)) })
    }

    fn rules(&self) -> BoxFuture<'_, Result<Vec<Stored<RuleSpec>>, StoreError>> {
        Box::pin(async move {
            Ok(find_all(&self.rules, doc! {}, doc! { "_id": 1 }).await?.into_iter().map(Stored::from).collect())
        })
    }

    fn revisions<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Revision>, StoreError>> {
        Box::pin(async move {
            let found = find_all(&self.revisions, doc! { "ruleId": id }, doc! { "revision": 1 }).await?;
            Ok(found
                .into_iter()
                .map(|revision| Revision {
                    revision: revision.revision,
                    rule: revision.rule,
                    changed_by: revision.changed_by,
                    changed_at: revision.changed_at,
                })
                .collect())
        })
    }

    fn create_list<'a>(
        &'a self,
        list: &'a ListSpec,
        now: Millis,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let created = create(&self.lists, &list.id, list, now, max, "moderation list").await?;
            if created {
                self.bump().await?;
            }
            Ok(created)
        })
    }

    fn update_list<'a>(&'a self, list: &'a ListSpec, now: Millis) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let set = doc! { "$set": { "spec": spec_bson(list)?, "updatedAt": now }, "$inc": { "revision": 1_i64 } };
            let updated = self.lists.update_one(doc! { "_id": &list.id }, set).await.map_err(failed)?;
            if updated.matched_count != 1 {
                return Ok(None);
            }
            self.bump().await?;
            let current = self.lists.find_one(doc! { "_id": &list.id }).await.map_err(failed)?;
            Ok(current.map(|current| current.revision))
        })
    }

    fn delete_list<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let deleted = self.lists.delete_one(doc! { "_id": id }).await.map_err(failed)?;
            if deleted.deleted_count == 1 {
                self.bump().await?;
            }
            Ok(deleted.deleted_count == 1)
        })
    }

    fn list<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored<ListSpec>>, StoreError>> {
        Box::pin(async move { Ok(self.lists.find_one(doc! { "_id": id }).await.map_err(failed)?.map(Stored::from)) })
    }

    fn lists(&self) -> BoxFuture<'_, Result<Vec<Stored<ListSpec>>, StoreError>> {
        Box::pin(async move {
            Ok(find_all(&self.lists, doc! {}, doc! { "_id": 1 }).await?.into_iter().map(Stored::from).collect())
        })
    }

    fn enqueue<'a>(&'a self, item: &'a ReviewItem) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            match self.reviews.insert_one(ReviewDocument::from(item)).await {
                Ok(_) => Ok(true),
                Err(error) if is_duplicate_key(&error) => Ok(false),
                Err(error) => Err(failed(error)),
            }
        })
    }

    fn review_item<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ReviewItem>, StoreError>> {
        Box::pin(async move {
            self.reviews.find_one(doc! { "_id": id }).await.map_err(failed)?.map(ReviewItem::try_from).transpose()
        })
    }

    fn review_items<'a>(&'a self, filter: &'a ReviewFilter) -> BoxFuture<'a, Result<Vec<ReviewItem>, StoreError>> {
        Box::pin(async move {
            let mut query = doc! {};
            if let Some(queue) = filter.queue {
                query.insert("queue", queue.as_str());
            }
            match filter.reviewed {
                Some(true) => {
                    query.insert("status", doc! { "$ne": "pending" });
                }
                Some(false) => {
                    query.insert("status", "pending");
                }
                None => {}
            }
            let mut created = doc! {};
            if let Some(since) = filter.since {
                created.insert("$gte", since);
            }
            if let Some(until) = filter.until {
                created.insert("$lte", until);
            }
            if let Some(before) = filter.before {
                created.insert("$lt", before);
            }
            if !created.is_empty() {
                query.insert("createdAt", created);
            }
            if let Some(rule_id) = &filter.rule_id {
                query.insert("ruleId", rule_id);
            }
            if let Some(sender) = &filter.sender {
                query.insert("sender", sender);
            }
            let cursor = self
                .reviews
                .find(query)
                .sort(doc! { "createdAt": -1, "_id": -1 })
                .limit(i64::from(filter.limit))
                .await
                .map_err(failed)?;
            let found: Vec<ReviewDocument> = cursor.try_collect().await.map_err(failed)?;
            found.into_iter().map(ReviewItem::try_from).collect()
        })
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        status: ReviewStatus,
        by: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let set = doc! { "$set": { "status": status.as_str(), "reviewedBy": by, "reviewedAt": now } };
            let updated =
                self.reviews.update_one(doc! { "_id": id, "status": "pending" }, set).await.map_err(failed)?;
            Ok(updated.matched_count == 1)
        })
    }

    fn add_report<'a>(&'a self, report: &'a UserReport) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let document = ReportDocument {
                id: report.id.clone(),
                message_id: report.message_id.clone(),
                reporter: report.reporter.clone(),
                reason_id: report.reason_id.clone(),
                remark: report.remark.clone(),
                created_at: report.created_at,
            };
            match self.reports.insert_one(document).await {
                Ok(_) => Ok(()),
                Err(error) if is_duplicate_key(&error) => Err(StoreError::Conflict("report")),
                Err(error) => Err(failed(error)),
            }
        })
    }

    fn reports_of<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Vec<UserReport>, StoreError>> {
        Box::pin(async move {
            let found =
                find_all(&self.reports, doc! { "messageId": message_id }, doc! { "createdAt": 1, "_id": 1 }).await?;
            Ok(found
                .into_iter()
                .map(|report| UserReport {
                    id: report.id,
                    message_id: report.message_id,
                    reporter: report.reporter,
                    reason_id: report.reason_id,
                    remark: report.remark,
                    created_at: report.created_at,
                })
                .collect())
        })
    }

    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let document = AuditDocument {
                id: entry.id.clone(),
                actor: entry.actor.clone(),
                action: entry.action.clone(),
                target_kind: entry.target_kind.clone(),
                target_id: entry.target_id.clone(),
                detail: entry.detail.clone(),
                at: entry.at,
            };
            self.audit.insert_one(document).await.map_err(failed)?;
            Ok(())
        })
    }

    fn audit(&self, before: Option<Millis>, limit: u32) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(async move {
            let cursor = self
                .audit
                .find(doc! { "at": { "$lt": before.unwrap_or(Millis::MAX) } })
                .sort(doc! { "at": -1, "_id": -1 })
                .limit(i64::from(limit))
                .await
                .map_err(failed)?;
            let found: Vec<AuditDocument> = cursor.try_collect().await.map_err(failed)?;
            Ok(found
                .into_iter()
                .map(|entry| AuditEntry {
                    id: entry.id,
                    actor: entry.actor,
                    action: entry.action,
                    target_kind: entry.target_kind,
                    target_id: entry.target_id,
                    detail: entry.detail,
                    at: entry.at,
                })
                .collect())
        })
    }
}
