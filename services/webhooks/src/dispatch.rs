//! The dispatcher: sends due deliveries, records every attempt, schedules the next one, and disables a webhook
//! that kept failing for the whole window.
//!
//! ```text
//! store (pending, due, unclaimed; saturated webhooks skipped) → claim (expires) → per-webhook slot → POST
//!   → record the attempt + next state in one transaction → failing for the window? disable + webhook.disabled
//! ```
//!
//! - Each webhook has at most `per_webhook` attempts in flight in this process, and the due query skips the
//!   webhooks at their limit, so a slow receiver fills only its own slots and never delays another's.
//! - The state is the store's: a restart (or another replica) finds every pending delivery at its time. A
//!   replica killed mid-attempt leaves a claim that expires after `claim`; the delivery is then sent again
//!   with the same `webhook-id`, so a receiver that deduplicates on it sees it once.
//! - On shutdown nothing new is claimed and the attempts in flight finish (each bounded by the timeout) and
//!   are recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use comet_model::{Millis, now_millis};
use comet_store::{AttemptResult, Delivery, DeliveryAttempt, Store, WebhookRecord};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::WebhookSettings;
use crate::configs::WebhookConfigs;
use crate::guard::{Guard, GuardError, guarded_client, read_at_most};
use crate::metrics::{AttemptOutcome, WebhookMetrics};
use crate::schedule::retry_after;
use crate::signature::signature_header;

/// Most bytes of a response body kept in the attempt log (and read at all).
pub const RESPONSE_EXCERPT_BYTES: usize = 2048;

/// Sends deliveries. Clones share the state.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    configs: Arc<dyn WebhookConfigs>,
    client: reqwest::Client,
    guard: Guard,
    settings: WebhookSettings,
    wake: Arc<Notify>,
    metrics: Arc<WebhookMetrics>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Attempts waiting to be recorded; whoever holds `unrecorded` writes them all in one transaction.
    records: mpsc::UnboundedSender<Unrecorded>,
    unrecorded: tokio::sync::Mutex<mpsc::UnboundedReceiver<Unrecorded>>,
}

/// An attempt waiting for its batch's commit, and the attempt task waiting for it.
struct Unrecorded {
    attempt: DeliveryAttempt,
    result: AttemptResult,
    recorded: oneshot::Sender<Result<(), String>>,
}

/// Most attempts recorded in one transaction.
const RECORD_BATCH: usize = 256;

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Dispatcher").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

/// What came back from one request.
struct Response {
    status: Option<u16>,
    retry_after: Option<Duration>,
    excerpt: Option<String>,
    error: Option<String>,
}

/// Holds one of a webhook's slots until dropped (also when an attempt task ends early).
struct Slot {
    inner: Arc<Inner>,
    webhook_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(&self.webhook_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.webhook_id);
            }
        }
    }
}

impl Dispatcher {
    pub(crate) fn new(
        store: Store,
        configs: Arc<dyn WebhookConfigs>,
        settings: WebhookSettings,
        wake: Arc<Notify>,
        metrics: Arc<WebhookMetrics>,
    ) -> Result<Dispatcher, reqwest::Error> {
        let guard = Guard::new(settings.allow.clone());
        let client =
            guarded_client(&guard, concat!("comet-server-webhooks/", env!("CARGO_PKG_VERSION")), settings.timeout)?;
        let in_flight = Mutex::new(HashMap::new());
        let (records, unrecorded) = mpsc::unbounded_channel();
        let unrecorded = tokio::sync::Mutex::new(unrecorded);
        let inner = Inner { store, configs, client, guard, settings, wake, metrics, in_flight, records, unrecorded };
        Ok(Dispatcher { inner: Arc::new(inner) })
    }

    /// Sends due deliveries until `shutdown` resolves, then lets the attempts in flight finish.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let inner = &self.inner;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            self.start_due(&mut tasks).await;
            let wait = self.until_next_due().await;
            tokio::select! {
                () = &mut shutdown => break,
                () = inner.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!(in_flight = tasks.len(), "webhooks dispatcher stopping: finishing the attempts in flight");
        while tasks.join_next().await.is_some() {}
    }

    /// How long to wait before looking again: until the next delivery is due, at most the poll interval. A
    /// delivery already due that [`Dispatcher::start_due`] left waiting waits for a free slot, which wakes the
    /// loop when its attempt ends, so it does not make the loop ask again at once.
    async fn until_next_due(&self) -> Duration {
        let poll = self.inner.settings.poll;
        match self.inner.store.next_webhook_delivery_at().await {
            Ok(Some(at)) => {
                let millis = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
                if millis == 0 { poll } else { Duration::from_millis(millis).min(poll) }
            }
            Ok(None) => poll,
            Err(error) => {
                self.inner.metrics.store_error();
                tracing::warn!(%error, "reading the next webhook delivery failed");
                poll
            }
        }
    }

    /// Claims and starts the due deliveries that fit the slots.
    async fn start_due(&self, tasks: &mut JoinSet<()>) {
        let inner = &self.inner;
        let room = inner.settings.concurrency.saturating_sub(tasks.len());
        if room == 0 {
            return;
        }
        let saturated: Vec<String> = {
            let in_flight = inner.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
            in_flight
                .iter()
                .filter(|(_, count)| **count >= inner.settings.per_webhook)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let now = now_millis();
        let limit = u32::try_from(room).unwrap_or(u32::MAX);
        let due = match inner.store.due_webhook_deliveries(now, limit, &saturated).await {
            Ok(due) => due,
            Err(error) => {
                inner.metrics.store_error();
                tracing::warn!(%error, "reading due webhook deliveries failed");
                return;
            }
        };
        for (delivery_id, webhook_id) in due {
            if tasks.len() >= inner.settings.concurrency {
                break;
            }
            let Some(slot) = self.take_slot(&webhook_id) else { continue };
            let claim_until = now.saturating_add(millis(inner.settings.claim));
            match inner.store.claim_webhook_delivery(&delivery_id, now, claim_until).await {
                Ok(Some(delivery)) => {
                    let inner = inner.clone();
                    tasks.spawn(async move {
                        inner.attempt(delivery).await;
                        drop(slot);
                    });
                }
                Ok(None) => {}
                Err(error) => {
                    inner.metrics.store_error();
                    tracing::warn!(delivery = %delivery_id, %error, "claiming a webhook delivery failed");
                }
            }
        }
    }

    fn take_slot(&self, webhook_id: &str) -> Option<Slot> {
        let inner = &self.inner;
        let mut in_flight = inner.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(webhook_id.to_owned()).or_insert(0);
        if *count >= inner.settings.per_webhook {
            return None;
        }
        *count += 1;
        Some(Slot { inner: inner.clone(), webhook_id: webhook_id.to_owned() })
    }
}

fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

/// A number in [0, 1) for jitter.
fn jitter() -> f64 {
    getrandom::u32().map_or(0.5, |value| f64::from(value) / (f64::from(u32::MAX) + 1.0))
}

/// An error with its causes, the way the attempt log shows it.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<GuardError>() {
            return format!("refused by the SSRF guard: {refused}");
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Inner {
    /// One attempt of a claimed delivery, recorded with what it leads to.
    async fn attempt(&self, delivery: Delivery) {
        let webhook = match self.configs.get(&delivery.webhook_id).await {
            Ok(webhook) => webhook,
            Err(error) => {
                // The claim expires and the delivery is tried again then.
                self.metrics.store_error();
                tracing::warn!(delivery = %delivery.id, %error, "reading the webhook failed");
                return;
            }
        };
        let Some(webhook) = webhook.filter(|webhook| webhook.enabled) else {
            let reason = "the webhook was deleted or disabled before this delivery";
            if let Err(error) = self.store.fail_webhook_delivery(&delivery.id, reason, now_millis()).await {
                self.metrics.store_error();
                tracing::warn!(delivery = %delivery.id, %error, "ending a webhook delivery failed");
            }
            return;
        };
        let started = Instant::now();
        let response = self.send(&webhook, &delivery).await;
        let took = started.elapsed();
        let at = now_millis();
        let delivered = response.status.is_some_and(|status| (200..300).contains(&status));
        let failed = usize::try_from(delivery.round_attempts).unwrap_or(0).saturating_add(1);
        let result = if delivered {
            AttemptResult::Delivered
        } else {
            match self.settings.schedule.wait_after(failed, jitter(), response.retry_after) {
                Some(wait) => AttemptResult::RetryAt(at.saturating_add(millis(wait))),
                None => AttemptResult::Failed,
            }
        };
        let attempt = DeliveryAttempt {
            delivery_id: delivery.id.clone(),
            attempt: delivery.attempts + 1,
            attempted_at: at,
            status: response.status.map(i64::from),
            latency_ms: millis(took),
            response: response.excerpt,
            error: response.error,
        };
        let outcome = match result {
            AttemptResult::Delivered => AttemptOutcome::Delivered,
            AttemptResult::RetryAt(_) => AttemptOutcome::Retrying,
            AttemptResult::Failed => AttemptOutcome::GaveUp,
        };
        self.metrics.attempt(outcome, took);
        tracing::debug!(delivery = %delivery.id, status = ?attempt.status, ?outcome, "webhook attempt");
        if let Err(error) = self.record(attempt, result).await {
            self.metrics.store_error();
            tracing::warn!(delivery = %delivery.id, %error, "recording a webhook attempt failed");
            return;
        }
        // A delivery to a webhook that was not failing changes nothing: no write on the common path.
        let failing_since = if delivered && webhook.failing_since.is_none() {
            None
        } else {
            match self.configs.note_attempt(&webhook.id, delivered, at).await {
                Ok(failing_since) => failing_since,
                Err(error) => {
                    self.metrics.store_error();
                    tracing::warn!(webhook = %webhook.id, %error, "recording the webhook's health failed");
                    return;
                }
            }
        };
        let window = millis(self.settings.disable_after);
        if let Some(since) = failing_since
            && !delivered
            && at.saturating_sub(since) >= window
        {
            let reason = format!("every delivery failed for {} s", window / 1000);
            match self.configs.disable(&webhook.id, &reason, at).await {
                Ok(true) => {
                    self.metrics.disabled();
                    tracing::warn!(webhook = %webhook.id, %reason, "webhook disabled");
                }
                Ok(false) => {}
                Err(error) => {
                    self.metrics.store_error();
                    tracing::warn!(webhook = %webhook.id, %error, "disabling a failing webhook failed");
                }
            }
        }
    }

    /// Records an attempt and what it leads to, durably, before returning: a group commit. The attempt joins
    /// the queue; whoever gets the queue's lock writes everything queued in one transaction and answers each,
    /// so attempts that end while a commit runs share the next one. A crash before the commit loses only the
    /// record: the claim expires and the delivery is sent again with the same `webhook-id`.
    async fn record(&self, attempt: DeliveryAttempt, result: AttemptResult) -> Result<(), String> {
        let (recorded, mut answer) = oneshot::channel();
        if self.records.send(Unrecorded { attempt, result, recorded }).is_err() {
            return Err("the attempt queue is closed".to_owned());
        }
        loop {
            tokio::select! {
                biased;
                answer = &mut answer => return answer.unwrap_or_else(|_| Err("the batch was dropped".to_owned())),
                mut queue = self.unrecorded.lock() => {
                    loop {
                        let mut batch = Vec::new();
                        while batch.len() < RECORD_BATCH {
                            let Ok(unrecorded) = queue.try_recv() else { break };
                            batch.push(unrecorded);
                        }
                        if batch.is_empty() {
                            break;
                        }
                        let (rows, waiting): (Vec<_>, Vec<_>) = batch
                            .into_iter()
                            .map(|unrecorded| ((unrecorded.attempt, unrecorded.result), unrecorded.recorded))
                            .unzip();
                        let written = self.store.record_webhook_attempts(&rows).await.map_err(|error| error.to_string());
                        for recorded in waiting {
                            let _ = recorded.send(written.clone());
                        }
                    }
                }
            }
        }
    }

    /// POSTs the delivery's payload, signed, and reads at most [`RESPONSE_EXCERPT_BYTES`] of the answer.
    async fn send(&self, webhook: &WebhookRecord, delivery: &Delivery) -> Response {
        let refused = |error: String| Response { status: None, retry_after: None, excerpt: None, error: Some(error) };
        let url = match self.guard.parse(&webhook.url) {
            Ok(url) => url,
            Err(error) => return refused(format!("refused by the SSRF guard: {error}")),
        };
        let now = now_millis();
        let timestamp = now.div_euclid(1000);
        let mut secrets = vec![webhook.secret.as_str()];
        if let (Some(previous), Some(until)) = (&webhook.previous_secret, webhook.previous_until)
            && until > now
        {
            secrets.push(previous.as_str());
        }
        let signature = match signature_header(secrets, &delivery.id, timestamp, delivery.payload.as_bytes()) {
            Ok(signature) => signature,
            Err(error) => return refused(format!("signing: {error}")),
        };
        let mut request = self
            .client
            .post(url)
            .timeout(self.settings.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", delivery.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone());
        if webhook.use_basic_auth {
            request = request.basic_auth(webhook.username.as_deref().unwrap_or_default(), webhook.password.as_deref());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return refused(describe(&error)),
        };
        let status = response.status().as_u16();
        let retry_after = match status {
            429 | 503 => {
                response.headers().get(RETRY_AFTER).and_then(|value| value.to_str().ok()).and_then(retry_after)
            }
            _ => None,
        };
        let (body, read_error) = read_at_most(&mut response, RESPONSE_EXCERPT_BYTES).await;
        let error = read_error.map(|read_error| format!("reading the response: {}", describe(&read_error)));
        let excerpt = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
        Response { status: Some(status), retry_after, excerpt, error }
    }
}
