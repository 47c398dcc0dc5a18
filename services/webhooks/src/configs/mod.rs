//! Where webhook configurations live, behind one interface: MongoDB when the deployment has it (where
//! CometChat's bundle keeps them), the relational store otherwise (SQLite embedded, TiDB/MariaDB split). The
//! deliveries and their attempts are always in the relational store, beside the outbox they come from
//! (docs/webhooks.md, "Storage").

mod mongo;
mod relational;

use comet_model::Millis;
use comet_store::{StoreError, WebhookRecord};
use futures::future::BoxFuture;

pub use mongo::MongoWebhookConfigs;

/// The webhook configurations of the app.
pub trait WebhookConfigs: Send + Sync + std::fmt::Debug {
    /// Registers `webhook` unless `max` exist already (false, nothing written); `Conflict` when its id is taken.
    fn create<'a>(&'a self, webhook: &'a WebhookRecord, max: u32) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Every webhook, by id.
    fn list(&self) -> BoxFuture<'_, Result<Vec<WebhookRecord>, StoreError>>;
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<WebhookRecord>, StoreError>>;
    /// Writes the changeable fields (everything but the id, the secrets and the creation time); false when no
    /// webhook has its id.
    fn save<'a>(&'a self, webhook: &'a WebhookRecord) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Removes a webhook and the deliveries owed to it; false when there was none.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Replaces the signing secret; the old one signs beside it until `previous_until` (ms). False when no
    /// webhook has this id.
    fn rotate<'a>(
        &'a self,
        id: &'a str,
        secret: &'a str,
        previous_until: Millis,
        now: Millis,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Keeps the webhook's `failing_since` after an attempt at `at` (cleared by a delivery, set by the first
    /// failure after one) and returns it; `None` also when the webhook is gone.
    fn note_attempt<'a>(
        &'a self,
        id: &'a str,
        delivered: bool,
        at: Millis,
    ) -> BoxFuture<'a, Result<Option<Millis>, StoreError>>;
    /// Disables an enabled webhook for `reason` and emits `webhook.disabled`; false when it was not enabled.
    fn disable<'a>(&'a self, id: &'a str, reason: &'a str, now: Millis) -> BoxFuture<'a, Result<bool, StoreError>>;
}
