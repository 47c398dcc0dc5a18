//! Webhook configurations in MongoDB's `webhooks` collection, one document per webhook (`_id` = its id), as
//! CometChat's bundle keeps them. The deliveries stay in the relational store, so the steps that touch both
//! (a deletion, a disabling) change MongoDB first and then the relational store: a crash between the two
//! leaves deliveries of a deleted webhook (failed at their next attempt, since their webhook is gone) or a
//! disabled webhook without its `webhook.disabled` event — never an event for a webhook still enabled.

use comet_documents::bson::{Document, doc};
use comet_documents::{Collection, Documents, is_duplicate_key};
use comet_model::Millis;
use comet_store::{Store, StoreError, WebhookRecord};
use futures::TryStreamExt as _;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::WebhookConfigs;

const COLLECTION: &str = "webhooks";

/// A secret rotation reads the current secret and writes it back as the previous one only if no other
/// rotation changed it meanwhile; this many tries before giving up on a webhook rotated that busily.
const ROTATE_TRIES: usize = 5;

/// The webhook configurations in MongoDB, with the relational store that holds their deliveries.
#[derive(Debug, Clone)]
pub struct MongoWebhookConfigs {
    collection: Collection<WebhookDocument>,
    store: Store,
}

/// One webhook as MongoDB holds it (camelCase, like CometChat's documents).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookDocument {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    url: String,
    enabled: bool,
    use_basic_auth: bool,
    username: Option<String>,
    password: Option<String>,
    triggers: Vec<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<Millis>,
    failing_since: Option<Millis>,
    disabled_reason: Option<String>,
    created_at: Millis,
    updated_at: Millis,
}

impl From<&WebhookRecord> for WebhookDocument {
    fn from(webhook: &WebhookRecord) -> WebhookDocument {
        WebhookDocument {
            id: webhook.id.clone(),
            name: webhook.name.clone(),
            url: webhook.url.clone(),
            enabled: webhook.enabled,
            use_basic_auth: webhook.use_basic_auth,
            username: webhook.username.clone(),
            password: webhook.password.clone(),
            triggers: webhook.triggers.clone(),
            secret: webhook.secret.clone(),
            previous_secret: webhook.previous_secret.clone(),
            previous_until: webhook.previous_until,
            failing_since: webhook.failing_since,
            disabled_reason: webhook.disabled_reason.clone(),
            created_at: webhook.created_at,
            updated_at: webhook.updated_at,
        }
    }
}

impl From<WebhookDocument> for WebhookRecord {
    fn from(document: WebhookDocument) -> WebhookRecord {
        let mut triggers = document.triggers;
        triggers.sort();
        triggers.dedup();
        WebhookRecord {
            id: document.id,
            name: document.name,
            url: document.url,
            enabled: document.enabled,
            use_basic_auth: document.use_basic_auth,
            username: document.username,
            password: document.password,
            triggers,
            secret: document.secret,
            previous_secret: document.previous_secret,
            previous_until: document.previous_until,
            failing_since: document.failing_since,
            disabled_reason: document.disabled_reason,
            created_at: document.created_at,
            updated_at: document.updated_at,
        }
    }
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Documents(error.to_string())
}

impl MongoWebhookConfigs {
    pub fn new(documents: &Documents, store: Store) -> MongoWebhookConfigs {
        MongoWebhookConfigs { collection: documents.collection(COLLECTION), store }
    }

    async fn get_webhook(&self, id: &str) -> Result<Option<WebhookRecord>, StoreError> {
        let found = self.collection.find_one(doc! { "_id": id }).await.map_err(failed)?;
        Ok(found.map(WebhookRecord::from))
    }

    async fn update(&self, filter: Document, set: Document) -> Result<bool, StoreError> {
        let updated = self.collection.update_one(filter, doc! { "$set": set }).await.map_err(failed)?;
        Ok(updated.matched_count == 1)
    }
}

impl WebhookConfigs for MongoWebhookConfigs {
    fn create<'a>(&'a self, webhook: &'a WebhookRecord, max: u32) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // Like the relational store's: two concurrent creations may both see max - 1 (a guard against runaway
            // configuration, not an invariant).
            let count = self.collection.count_documents(doc! {}).await.map_err(failed)?;
            if count >= u64::from(max) {
                return Ok(false);
            }
            match self.collection.insert_one(WebhookDocument::from(webhook)).await {
                Ok(_) => Ok(true),
                Err(error) if is_duplicate_key(&error) => Err(StoreError::Conflict("webhook")),
                Err(error) => Err(failed(error)),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<WebhookRecord>, StoreError>> {
        Box::pin(async move {
            let cursor = self.collection.find(doc! {}).sort(doc! { "_id": 1 }).await.map_err(failed)?;
            let documents: Vec<WebhookDocument> = cursor.try_collect().await.map_err(failed)?;
            Ok(documents.into_iter().map(WebhookRecord::from).collect())
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<WebhookRecord>, StoreError>> {
        Box::pin(self.get_webhook(id))
    }

    fn save<'a>(&'a self, webhook: &'a WebhookRecord) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let set = doc! {
                "name": &webhook.name,
                "url": &webhook.url,
                "enabled": webhook.enabled,
                "useBasicAuth": webhook.use_basic_auth,
                "username": webhook.username.as_deref(),
                "password": webhook.password.as_deref(),
                "triggers": &webhook.triggers,
                "failingSince": webhook.failing_since,
                "disabledReason": webhook.disabled_reason.as_deref(),
                "updatedAt": webhook.updated_at,
            };
            self.update(doc! { "_id": &webhook.id }, set).await
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let deleted = self.collection.delete_one(doc! { "_id": id }).await.map_err(failed)?;
            self.store.delete_webhook_deliveries(id).await?;
            Ok(deleted.deleted_count == 1)
        })
    }

    fn rotate<'a>(
        &'a self,
        id: &'a str,
        secret: &'a str,
        previous_until: Millis,
        now: Millis,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            for _ in 0..ROTATE_TRIES {
                let Some(current) = self.collection.find_one(doc! { "_id": id }).await.map_err(failed)? else {
                    return Ok(false);
                };
                let set = doc! {
                    "previousSecret": &current.secret,
                    "previousUntil": previous_until,
                    "secret": secret,
                    "updatedAt": now,
                };
                if self.update(doc! { "_id": id, "secret": &current.secret }, set).await? {
                    return Ok(true);
                }
            }
            Err(StoreError::Documents(format!("webhook `{id}`'s secret kept changing during its rotation")))
        })
    }

    fn note_attempt<'a>(
        &'a self,
        id: &'a str,
        delivered: bool,
        at: Millis,
    ) -> BoxFuture<'a, Result<Option<Millis>, StoreError>> {
        Box::pin(async move {
            if delivered {
                self.update(doc! { "_id": id }, doc! { "failingSince": null }).await?;
                return Ok(None);
            }
            // Set only by the first failure after a success: the filter matches only while it is unset.
            self.update(doc! { "_id": id, "failingSince": null }, doc! { "failingSince": at }).await?;
            Ok(self.get_webhook(id).await?.and_then(|webhook| webhook.failing_since))
        })
    }

    fn disable<'a>(&'a self, id: &'a str, reason: &'a str, now: Millis) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let set = doc! { "enabled": false, "disabledReason": reason, "updatedAt": now };
            if !self.update(doc! { "_id": id, "enabled": true }, set).await? {
                return Ok(false);
            }
            let Some(webhook) = self.get_webhook(id).await? else { return Ok(true) };
            self.store.emit_webhook_disabled(&webhook, reason, now).await?;
            Ok(true)
        })
    }
}
