//! The worker's handler: an event becomes one durable delivery per enabled webhook subscribed to its trigger,
//! all written in one transaction. The event is done for the consumer group once those rows are committed;
//! sending them is the dispatcher's.

use std::sync::Arc;

use comet_model::{Event, now_millis};
use comet_store::{Delivery, DeliveryState, Store};
use comet_worker::{Handler, Outcome};
use futures::future::BoxFuture;
use serde_json::json;
use tokio::sync::Notify;

use crate::configs::WebhookConfigs;
use crate::metrics::WebhookMetrics;
use crate::trigger::{Trigger, payload_data};

/// What the payload envelope names besides the trigger and data.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub app_id: String,
    pub region: String,
}

/// The `webhook-id` of the delivery of event `event_id` to webhook `webhook_id`: the same on every attempt.
pub fn delivery_id(event_id: &str, webhook_id: &str) -> String {
    format!("{event_id}_{webhook_id}")
}

/// Turns events into deliveries.
pub struct WebhooksHandler {
    pub(crate) store: Store,
    pub(crate) configs: Arc<dyn WebhookConfigs>,
    pub(crate) envelope: Envelope,
    pub(crate) wake: Arc<Notify>,
    pub(crate) metrics: Arc<WebhookMetrics>,
}

impl std::fmt::Debug for WebhooksHandler {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("WebhooksHandler").field("envelope", &self.envelope).finish_non_exhaustive()
    }
}

impl WebhooksHandler {
    async fn enqueue(&self, event: &Event) -> Outcome {
        let Some(trigger) = Trigger::of(event) else { return Outcome::Done };
        let webhooks = match self.configs.list().await {
            Ok(webhooks) => webhooks,
            Err(error) => return Outcome::RetryLater(format!("reading the webhooks: {error}")),
        };
        let now = now_millis();
        let data = payload_data(trigger, event);
        let mut deliveries = Vec::new();
        for webhook in webhooks.iter().filter(|webhook| webhook.enabled) {
            if !webhook.triggers.iter().any(|name| name == trigger.as_str()) {
                continue;
            }
            let payload = json!({
                "trigger": trigger.as_str(),
                "data": data,
                "appId": self.envelope.app_id,
                "region": self.envelope.region,
                "webhook": webhook.id,
            });
            let delivery = Delivery {
                id: delivery_id(&event.id, &webhook.id),
                webhook_id: webhook.id.clone(),
                event_id: event.id.clone(),
                trigger: trigger.as_str().to_owned(),
                payload: payload.to_string(),
                state: DeliveryState::Pending,
                attempts: 0,
                round_attempts: 0,
                next_attempt_at: now,
                created_at: now,
                finished_at: None,
                last_status: None,
                last_error: None,
            };
            deliveries.push(delivery);
        }
        // One transaction for the event's deliveries: one commit, not one per webhook.
        let made = match self.store.enqueue_webhook_deliveries(&deliveries).await {
            Ok(made) => made,
            Err(error) => return Outcome::RetryLater(format!("writing the deliveries of {}: {error}", event.id)),
        };
        if made > 0 {
            self.metrics.enqueued(u64::try_from(made).unwrap_or(u64::MAX));
            self.wake.notify_one();
        }
        Outcome::Done
    }
}

impl Handler for WebhooksHandler {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Outcome> {
        Box::pin(self.enqueue(event))
    }
}
