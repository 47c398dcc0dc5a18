//! Webhook configurations in the relational store: the `webhooks` table, changed in the same transactions
//! as what depends on it (a deletion removes the deliveries, a disabling writes its event).

use comet_model::Millis;
use comet_store::{Store, StoreError, WebhookRecord};
use futures::future::BoxFuture;

use super::WebhookConfigs;

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
        previous_until: Millis,
        now: Millis,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.rotate_webhook_secret(id, secret, previous_until, now))
    }

    fn note_attempt<'a>(
        &'a self,
        id: &'a str,
        delivered: bool,
        at: Millis,
    ) -> BoxFuture<'a, Result<Option<Millis>, StoreError>> {
        Box::pin(self.note_webhook_attempt(id, delivered, at))
    }

    fn disable<'a>(&'a self, id: &'a str, reason: &'a str, now: Millis) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.disable_webhook(id, reason, now))
    }
}
