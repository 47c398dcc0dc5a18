//! Where webhook configurations live, behind one interface: the relational store today (SQLite embedded,
//! TiDB/MariaDB split). CometChat's bundle keeps them in MongoDB; an implementation over the official driver
//! plugs in here without touching the API or the worker (docs/webhooks.md, "Storage").

use comet_store::{Store, StoreError, WebhookRecord};
use futures::future::BoxFuture;

/// The webhook configurations of the app.
pub trait WebhookConfigs: Send + Sync {
    /// Registers `webhook` unless `max` exist already (false, nothing written); `Conflict` when its id is taken.
    fn create<'a>(&'a self, webhook: &'a WebhookRecord, max: u32) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Every webhook, by id.
    fn list(&self) -> BoxFuture<'_, Result<Vec<WebhookRecord>, StoreError>>;
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<WebhookRecord>, StoreError>>;
    /// Writes the changeable fields; false when no webhook has its id.
    fn save<'a>(&'a self, webhook: &'a WebhookRecord) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Removes a webhook (and what is owed to it); false when there was none.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Replaces the signing secret; the old one signs beside it until `previous_until` (ms).
    fn rotate<'a>(
        &'a self,
        id: &'a str,
        secret: &'a str,
        previous_until: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

impl WebhookConfigs for Store {
    fn create<'a>(&'a self, webhook: &'a WebhookRecord, max: u32) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.create_webhook(webhook, max))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<WebhookRecord>, StoreError>> {
        Box::pin(self.list_webhooks())
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<WebhookRecord>, StoreError>> {
        Box::pin(self.get_webhook(id))
    }

    fn save<'a>(&'a self, webhook: &'a WebhookRecord) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.save_webhook(webhook))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.delete_webhook(id))
    }

    fn rotate<'a>(
        &'a self,
        id: &'a str,
        secret: &'a str,
        previous_until: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.rotate_webhook_secret(id, secret, previous_until, now))
    }
}
