//! The worker base: ONE loop around a [`Handler`], for every role that consumes events in a consumer group
//! (webhooks, moderation, notifications).
//!
//! ```text
//! bus (consumer group `comet-<handler name>`) → dedupe on event id → handler → done
//!                                                                   → retry later: backoff, same event again
//!                                                                   → dead letter (or out of attempts): store
//! ```
//!
//! - An event counts as done for the group only after the handler finished with it (done or dead-lettered), so
//!   a crash or a kill hands it to the group again: delivery is at least once, and [`comet_bus::Seen`] drops
//!   the redeliveries this process already handled.
//! - One member ([`Worker::run`] on one subscription) handles one event at a time, so the order per key holds;
//!   a role runs as many members as it wants concurrency, and Kafka spreads partitions (keys) over the members
//!   of all replicas. A slow event delays only its partition.
//! - A failing event is retried with exponential backoff (capped) up to [`WorkerConfig::attempts`] times, then
//!   written to the store's `worker_dead_letters` with the last reason, and the loop moves on.
//! - On shutdown the event in hand is abandoned, not committed: another member (or the next start) gets it.

mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use comet_bus::{GroupError, GroupSubscription, Seen};
use comet_model::Event;
use comet_store::Store;
use futures::future::BoxFuture;
use tokio::sync::Mutex;

pub use metrics::{LatencyHistogram, WorkerMetrics};

/// What a handler made of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled (or nothing to do): the event is done.
    Done,
    /// Failed for a reason that may pass (a receiver down, a timeout): try again after a backoff.
    RetryLater(String),
    /// Can never succeed (a malformed event, a refused configuration): dead-letter it now.
    DeadLetter(String),
}

/// A role's work on one event. `name` is the consumer group's suffix and the metrics' `worker` label.
pub trait Handler: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn handle<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Outcome>;
}

/// How the loop retries.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Attempts per event before it is dead-lettered (at least 1).
    pub attempts: u32,
    /// The first backoff; each further attempt doubles it, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig { attempts: 8, first_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(30) }
    }
}

impl WorkerConfig {
    /// The wait before attempt `attempt` (the second attempt is 1).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// The consumer group a handler's members join.
pub fn group_of(handler: &dyn Handler) -> String {
    format!("comet-{}", handler.name())
}

/// One worker: a handler, where dead letters go, and the counters.
#[derive(Clone)]
pub struct Worker {
    handler: Arc<dyn Handler>,
    store: Store,
    config: WorkerConfig,
    metrics: Arc<WorkerMetrics>,
    seen: Arc<Mutex<Seen>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Worker").field("handler", &self.handler.name()).field("config", &self.config).finish()
    }
}

impl Worker {
    pub fn new(handler: Arc<dyn Handler>, store: Store, config: WorkerConfig) -> Worker {
        let metrics = Arc::new(WorkerMetrics::new(handler.name()));
        Worker { handler, store, config, metrics, seen: Arc::new(Mutex::new(Seen::default())) }
    }

    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        self.metrics.clone()
    }

    /// Runs one member on `subscription` until `shutdown` resolves. The event in hand then is left undone.
    pub async fn run(&self, mut subscription: GroupSubscription, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let step = subscription.handle(async |event: &Event| -> Result<(), String> {
                self.settle(event).await;
                Ok(())
            });
            tokio::select! {
                () = &mut shutdown => {
                    tracing::info!(worker = self.handler.name(), "worker stopping: the event in hand is left to the group");
                    return;
                }
                result = step => match result {
                    Ok(()) => {}
                    Err(GroupError::Bus(error)) => {
                        self.metrics.bus_error();
                        tracing::warn!(worker = self.handler.name(), %error, "reading events failed; retrying");
                        tokio::select! {
                            () = &mut shutdown => return,
                            () = tokio::time::sleep(self.config.first_backoff) => {}
                        }
                    }
                    Err(GroupError::Handler { event_id, error }) => {
                        tracing::warn!(worker = self.handler.name(), event = %event_id, %error, "event left undone");
                    }
                },
            }
        }
    }

    /// Takes one event to an end: done, or dead-lettered after its attempts. Retries wait here, so the order per
    /// key holds; a store that refuses the dead letter keeps the event in hand (retried after a backoff).
    async fn settle(&self, event: &Event) {
        self.metrics.consumed();
        if !self.seen.lock().await.first_time(&event.id) {
            self.metrics.duplicate();
            return;
        }
        let attempts = self.config.attempts.max(1);
        let mut attempt = 1;
        let reason = loop {
            let started = Instant::now();
            let outcome = self.handler.handle(event).await;
            self.metrics.observe(&outcome, started.elapsed());
            match outcome {
                Outcome::Done => return,
                Outcome::DeadLetter(reason) => break reason,
                Outcome::RetryLater(reason) if attempt >= attempts => break reason,
                Outcome::RetryLater(reason) => {
                    tracing::debug!(worker = self.handler.name(), event = %event.id, attempt, %reason, "retrying");
                    tokio::time::sleep(self.config.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        };
        loop {
            match self
                .store
                .dead_letter_event(self.handler.name(), event, &reason, attempt, comet_model::now_millis())
                .await
            {
                Ok(()) => {
                    self.metrics.dead_lettered();
                    tracing::warn!(worker = self.handler.name(), event = %event.id, attempts = attempt, %reason, "event dead-lettered");
                    return;
                }
                Err(error) => {
                    tracing::warn!(worker = self.handler.name(), event = %event.id, %error, "writing the dead letter failed; retrying");
                    tokio::time::sleep(self.config.max_backoff.min(Duration::from_secs(5))).await;
                }
            }
        }
    }
}
