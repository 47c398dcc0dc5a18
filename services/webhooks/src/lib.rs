//! The webhooks role (issue #14): CometChat's triggers delivered to the endpoints an app registered, signed with
//! Standard Webhooks, retried for over a day from durable state, behind an SSRF guard.
//!
//! ```text
//! bus (consumer group comet-webhooks, the worker base) → WebhooksHandler: one delivery row per subscribed webhook
//!   → Dispatcher: due rows → claim → POST (webhook-id / -timestamp / -signature, Basic auth) → attempt log
//! ```
//!
//! - [`trigger`]: the trigger names and the CometChat payload shapes. [`signature`]: `whsec_` secrets and
//!   `v1,` signatures. [`guard`]: the SSRF guard and the operator's allow-list. [`schedule`]: retries with
//!   jitter and `Retry-After`. [`configs`]: the one interface webhook configurations are read and written
//!   through. [`dispatch`]: the sending loop.
//! - The handler only writes rows, so the consumer group's commit waits for a database write, never for a
//!   receiver; everything after that is the dispatcher's, from the store.

pub mod configs;
pub mod dispatch;
pub mod guard;
mod handler;
mod metrics;
pub mod schedule;
pub mod signature;
pub mod trigger;

use std::sync::Arc;
use std::time::Duration;

use comet_store::Store;
use tokio::sync::Notify;

pub use configs::{MongoWebhookConfigs, WebhookConfigs};
pub use dispatch::Dispatcher;
pub use guard::{AllowList, Guard, GuardError, guarded_client, read_at_most};
pub use handler::{Envelope, WebhooksHandler, delivery_id};
pub use metrics::WebhookMetrics;
pub use schedule::RetrySchedule;
pub use trigger::Trigger;

/// Most webhooks an app may register (CometChat's limit).
pub const MAX_WEBHOOKS: u32 = 25;

/// Longest request timeout an operator may set.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(15);

/// How the role delivers. `COMET_WEBHOOKS_*` in docs/configuration.md.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// One attempt's limit, connecting to the end of the response (default 2 s like CometChat; at most 15 s).
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    /// Attempts in flight per webhook in one process.
    pub per_webhook: usize,
    /// Attempts in flight in one process.
    pub concurrency: usize,
    /// A webhook whose deliveries all failed for this long is disabled.
    pub disable_after: Duration,
    /// How long a replica owns a delivery it took; a killed replica's deliveries go to others after it.
    pub claim: Duration,
    /// How often the store is asked for due deliveries when nothing wakes the dispatcher sooner.
    pub poll: Duration,
    pub allow: AllowList,
    pub envelope: Envelope,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            timeout: Duration::from_secs(2),
            schedule: RetrySchedule::default(),
            per_webhook: 4,
            concurrency: 64,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            claim: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            allow: AllowList::default(),
            envelope: Envelope::default(),
        }
    }
}

/// Why the role could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the webhook timeout may be at most {} s", MAX_TIMEOUT.as_secs())]
    Timeout,
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The role's two halves, sharing their wake-up signal and counters.
#[derive(Debug)]
pub struct Webhooks {
    pub handler: Arc<WebhooksHandler>,
    pub dispatcher: Dispatcher,
    pub metrics: Arc<WebhookMetrics>,
}

impl Webhooks {
    /// The handler (for the worker base) and the dispatcher, with the webhooks' configurations in `configs`
    /// and their deliveries in `store`.
    pub fn new(
        store: Store,
        configs: Arc<dyn WebhookConfigs>,
        settings: WebhookSettings,
    ) -> Result<Webhooks, StartError> {
        if settings.timeout > MAX_TIMEOUT {
            return Err(StartError::Timeout);
        }
        let wake = Arc::new(Notify::new());
        let metrics = Arc::new(WebhookMetrics::default());
        let handler = Arc::new(WebhooksHandler {
            store: store.clone(),
            configs: configs.clone(),
            envelope: settings.envelope.clone(),
            wake: wake.clone(),
            metrics: metrics.clone(),
        });
        let dispatcher = Dispatcher::new(store, configs, settings, wake, metrics.clone())?;
        Ok(Webhooks { handler, dispatcher, metrics })
    }
}
