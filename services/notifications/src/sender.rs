//! Sending the pushes owed, from the table: one bounded queue and one task per provider, so a provider that is
//! slow or down fills only its own queue and never holds the Kafka loop or another provider.
//!
//! ```text
//! handler: rows written (claimed by this replica) → offer → the provider's queue, or (full) released to the table
//! poller:  due, unclaimed rows → claimed → the provider's queue (only while it has room)
//! lane:    queue → up to `per_provider` requests at once → answer → the row finished (logged) or rescheduled
//! ```
//!
//! Nothing is dropped: a push leaves the table only when a provider answered it for good (or its attempts ran
//! out), in the transaction that logs it. A replica killed mid-fan-out leaves claimed rows; their claims expire
//! and any replica sends them, with the same collapse id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use comet_model::Millis;
use comet_store::{LogEntry, PushJob, Store};
use tokio::sync::{Mutex, Notify, Semaphore, mpsc};

use crate::clock::Clock;
use crate::metrics::{Ended, NotificationMetrics};
use crate::provider::{Answer, Push};
use crate::registry::{Lookup, Registry};
use crate::settings::NotificationSettings;

/// Rows asked for per poll.
const POLL_BATCH: u32 = 500;
/// How often the log is purged of entries older than the retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The senders of every provider of this replica.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Arc<Registry>,
    settings: NotificationSettings,
    clock: Arc<dyn Clock>,
    metrics: Arc<NotificationMetrics>,
    lanes: Mutex<HashMap<String, mpsc::Sender<PushJob>>>,
    /// Rows wait in the table because a queue was full: a lane that drains to half wakes the poller.
    backlog: AtomicBool,
    wake: Notify,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Sender").finish_non_exhaustive()
    }
}

fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

impl Sender {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        settings: NotificationSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<NotificationMetrics>,
    ) -> Sender {
        let inner = Inner {
            store,
            registry,
            settings,
            clock,
            metrics,
            lanes: Mutex::new(HashMap::new()),
            backlog: AtomicBool::new(false),
            wake: Notify::new(),
        };
        Sender { inner: Arc::new(inner) }
    }

    /// How long a claim taken now lasts.
    pub(crate) fn claim_until(&self, now: Millis) -> Millis {
        now.saturating_add(millis(self.inner.settings.claim))
    }

    /// The queue of provider `id`, made (with its task) on first use.
    async fn lane(&self, id: &str) -> mpsc::Sender<PushJob> {
        let mut lanes = self.inner.lanes.lock().await;
        if let Some(lane) = lanes.get(id).filter(|lane| !lane.is_closed()) {
            return lane.clone();
        }
        let (queue, jobs) = mpsc::channel(self.inner.settings.queue.max(1));
        lanes.insert(id.to_owned(), queue.clone());
        tokio::spawn(self.clone().run_lane(jobs));
        queue
    }

    /// Hands claimed pushes to their providers' queues; those that find a full queue are released to the table
    /// (the poller offers them again). Never waits for a provider.
    pub async fn offer(&self, jobs: Vec<PushJob>) {
        let mut refused = Vec::new();
        let mut queued = 0;
        for job in jobs {
            let lane = self.lane(&job.provider_id).await;
            match lane.try_send(job) {
                Ok(()) => queued += 1,
                Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                    refused.push(job.id)
                }
            }
        }
        self.inner.metrics.queued(queued);
        if refused.is_empty() {
            return;
        }
        self.inner.metrics.overflowed(u64::try_from(refused.len()).unwrap_or(u64::MAX));
        self.inner.backlog.store(true, Ordering::Release);
        if let Err(error) = self.inner.store.release_notification_pushes(&refused).await {
            // Still claimed: they are found again once the claim expires.
            self.inner.metrics.store_error();
            tracing::warn!(%error, "releasing pushes a full queue refused failed; they wait for their claim to expire");
        }
    }

    /// Polls the table for due pushes until `shutdown`, and purges the log.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_purge: Option<Instant> = None;
        loop {
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                self.purge().await;
                last_purge = Some(Instant::now());
            }
            // A full batch means more may be due: poll again at once (a full queue stops the batch short).
            if self.poll_once().await == POLL_BATCH as usize {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.inner.settings.poll) => {}
                () = self.inner.wake.notified() => {}
            }
        }
    }

    async fn purge(&self) {
        let before = self.inner.clock.now() - millis(self.inner.settings.log_retention);
        match self.inner.store.purge_notification_log(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged notification log entries past their retention"),
            Err(error) => {
                self.inner.metrics.store_error();
                tracing::warn!(%error, "purging the notification log failed");
            }
        }
    }

    /// Claims the due pushes whose provider queue has room and queues them: how many.
    pub async fn poll_once(&self) -> usize {
        let now = self.inner.clock.now();
        let due = match self.inner.store.due_notification_pushes(now, POLL_BATCH).await {
            Ok(due) => due,
            Err(error) => {
                self.inner.metrics.store_error();
                tracing::warn!(%error, "reading due pushes failed");
                return 0;
            }
        };
        let mut queued = 0;
        for job in due {
            let lane = self.lane(&job.provider_id).await;
            let Ok(permit) = lane.try_reserve() else {
                self.inner.backlog.store(true, Ordering::Release);
                continue;
            };
            match self.inner.store.claim_notification_push(&job.id, now, self.claim_until(now)).await {
                Ok(true) => {
                    permit.send(job);
                    queued += 1;
                }
                Ok(false) => {}
                Err(error) => {
                    self.inner.metrics.store_error();
                    tracing::warn!(%error, "claiming a push failed");
                }
            }
        }
        self.inner.metrics.queued(u64::try_from(queued).unwrap_or(u64::MAX));
        queued
    }

    async fn run_lane(self, mut jobs: mpsc::Receiver<PushJob>) {
        let slots = Arc::new(Semaphore::new(self.inner.settings.per_provider.max(1)));
        let half = self.inner.settings.queue.max(1) / 2;
        while let Some(job) = jobs.recv().await {
            if jobs.len() <= half && self.inner.backlog.swap(false, Ordering::AcqRel) {
                self.inner.wake.notify_one();
            }
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let sender = self.clone();
            tokio::spawn(async move {
                sender.attempt(job).await;
                drop(slot);
            });
        }
    }

    /// One attempt at one push, and what follows from the answer.
    async fn attempt(&self, job: PushJob) {
        let push: Push = match serde_json::from_str(&job.payload) {
            Ok(push) => push,
            Err(error) => {
                self.finish(&job, None, "unknown", "failed", &format!("payload: {error}"), None, None).await;
                return;
            }
        };
        let message_id = push.data.get("messageId").map(String::as_str);
        let provider = match self.inner.registry.get(&job.provider_id).await {
            Lookup::Ready(provider) => provider,
            Lookup::Missing => {
                self.inner.metrics.ended("unknown", Ended::ProviderUnusable, None);
                self.finish(&job, message_id, "unknown", "failed", "provider_deleted", None, None).await;
                return;
            }
            Lookup::Broken(reason) => {
                tracing::warn!(provider = %job.provider_id, %reason, "a push waits for its provider to be usable");
                self.retry(&job, message_id, "unknown", Some(&"provider_unusable".to_owned()), None, None).await;
                return;
            }
        };
        let kind = provider.kind();
        let started = Instant::now();
        let answer = provider.send(&push).await;
        let took = started.elapsed();
        match &answer {
            Answer::Delivered { status } => {
                self.inner.metrics.ended(kind, Ended::Sent, Some(took));
                self.finish(&job, message_id, kind, "sent", "delivered", Some(*status), None).await;
            }
            Answer::TokenGone { status, reason } => {
                self.inner.metrics.ended(kind, Ended::TokenGone, Some(took));
                self.finish(&job, message_id, kind, "failed", reason, Some(*status), Some(&job.token_id)).await;
            }
            Answer::Failed { status, reason } => {
                self.inner.metrics.ended(kind, Ended::Refused, Some(took));
                self.finish(&job, message_id, kind, "failed", reason, *status, None).await;
            }
            Answer::Retry { status, reason, after } => {
                self.retry(&job, message_id, kind, Some(reason), *status, *after).await;
                self.inner.metrics.latency_only(kind, took);
            }
        }
    }

    async fn retry(
        &self,
        job: &PushJob,
        message_id: Option<&str>,
        kind: &str,
        reason: Option<&String>,
        status: Option<u16>,
        after: Option<Duration>,
    ) {
        let attempts = job.attempts + 1;
        let reason = reason.map_or("retry", String::as_str);
        if attempts >= i64::from(self.inner.settings.attempts) {
            self.inner.metrics.ended(kind, Ended::GaveUp, None);
            self.finish(job, message_id, kind, "failed", &format!("gave_up:{reason}"), status, None).await;
            return;
        }
        self.inner.metrics.ended(kind, Ended::Retried, None);
        let wait = self.inner.settings.backoff(u32::try_from(attempts).unwrap_or(u32::MAX), after);
        let next = self.inner.clock.now().saturating_add(millis(wait));
        if let Err(error) = self.inner.store.reschedule_notification_push(&job.id, attempts, next).await {
            self.inner.metrics.store_error();
            tracing::warn!(%error, push = %job.id, "rescheduling a push failed; it is retried once its claim expires");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        job: &PushJob,
        message_id: Option<&str>,
        kind: &str,
        outcome: &str,
        reason: &str,
        status: Option<u16>,
        forget_token: Option<&str>,
    ) {
        let entry = LogEntry {
            id: format!("{}_{}", job.id, outcome),
            event_id: job.event_id.clone(),
            message_id: message_id.map(str::to_owned),
            uid: Some(job.uid.clone()),
            conversation_key: None,
            provider_id: Some(job.provider_id.clone()),
            outcome: outcome.to_owned(),
            reason: reason.chars().take(100).collect(),
            status: status.map(i64::from),
            collapse_id: Some(job.collapse_id.clone()),
            at: self.inner.clock.now(),
        };
        if let Err(error) = self.inner.store.finish_notification_push(&job.id, &entry, forget_token).await {
            self.inner.metrics.store_error();
            tracing::warn!(%error, push = %job.id, provider = kind, "recording a push's answer failed; it is sent again");
        }
    }
}
