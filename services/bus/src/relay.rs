//! The outbox relay: publishes the events the store committed together with their change.
//!
//! Every change the API commits writes an outbox row in the same transaction. The relay turns those rows into
//! published events:
//!
//! ```text
//! loop: renew the lease → read a batch (per key, a prefix of its unpublished events, in order)
//!       → publish it and wait for every acknowledgement → mark the batch published
//! ```
//!
//! **At least once.** An event is marked published only after the bus acknowledged it. A crash, a failed
//! publish or a failed mark leaves it unpublished, so the next round (of this relay or of the one that takes the
//! lease over) publishes it again. Consumers deduplicate on the event id. Nothing is ever skipped: on an error
//! the relay logs, backs off and retries the same unpublished prefix.
//!
//! **Order per key.** Only the lease holder publishes, one batch at a time, and a batch starts at the oldest
//! unpublished event of every key, so a key's events are handed to the bus in commit order; the bus keeps
//! the order per key (Kafka: one partition per key and an idempotent producer). A re-published batch repeats
//! events in the same order, so the first copy of each event a consumer sees is still in order.
//!
//! **Several replicas.** They share one lease row in the database. The holder renews it every round (and
//! while it waits for Kafka); the others poll and take over once it has expired, so a crashed holder delays
//! publishing by at most one lease time-to-live. A holder that stops cleanly releases the lease, so a standby
//! takes over at its next try (within its standby interval).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use comet_model::{Event, Millis};
use comet_store::Store;

use crate::Publisher;

/// How the relay paces itself. [`RelaySettings::default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// The most events read and published per round.
    pub batch_size: u32,
    /// How long to wait before looking again when the outbox was empty.
    pub poll_interval: Duration,
    /// How long the lease lasts unless renewed: a crashed holder is replaced after at most this long.
    pub lease_ttl: Duration,
    /// How often a relay without the lease tries to take it.
    pub standby_interval: Duration,
    /// The first pause after an error; it doubles on each consecutive error up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest pause after consecutive errors.
    pub max_backoff: Duration,
}

impl Default for RelaySettings {
    fn default() -> RelaySettings {
        RelaySettings {
            batch_size: 500,
            poll_interval: Duration::from_millis(20),
            lease_ttl: Duration::from_secs(10),
            standby_interval: Duration::from_secs(1),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Why the relay could not run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A setting is out of range; the relay refuses to start rather than misbehave.
    #[error("relay setting {setting} is invalid: {reason}")]
    InvalidSetting { setting: &'static str, reason: &'static str },
}

/// Counters the relay updates as it works, for the server's `/metrics`.
#[derive(Debug, Default)]
pub struct RelayStats {
    published_total: AtomicU64,
    batches_total: AtomicU64,
    last_batch_size: AtomicU64,
    publish_errors_total: AtomicU64,
    store_errors_total: AtomicU64,
    holds_lease: AtomicBool,
}

impl RelayStats {
    /// Events published and marked since the relay started (a re-published event counts again).
    pub fn published_total(&self) -> u64 {
        self.published_total.load(Ordering::Relaxed)
    }

    /// Non-empty batches published and marked since the relay started.
    pub fn batches_total(&self) -> u64 {
        self.batches_total.load(Ordering::Relaxed)
    }

    /// The size of the last batch the relay read (0 when the outbox was empty).
    pub fn last_batch_size(&self) -> u64 {
        self.last_batch_size.load(Ordering::Relaxed)
    }

    /// Publish attempts that failed and will be retried.
    pub fn publish_errors_total(&self) -> u64 {
        self.publish_errors_total.load(Ordering::Relaxed)
    }

    /// Store operations (lease, read, mark) that failed and will be retried.
    pub fn store_errors_total(&self) -> u64 {
        self.store_errors_total.load(Ordering::Relaxed)
    }

    /// Whether this relay held the lease at its last attempt: exactly one replica should say yes.
    pub fn holds_lease(&self) -> bool {
        self.holds_lease.load(Ordering::Relaxed)
    }
}

/// Publishes the outbox to a [`Publisher`]; see the module documentation for its guarantees.
pub struct Relay {
    store: Store,
    publisher: Arc<dyn Publisher>,
    owner: String,
    settings: RelaySettings,
    stats: Arc<RelayStats>,
    /// When this relay last took or renewed the lease (ms since the epoch; 0: never).
    renewed_at: AtomicI64,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Relay")
            .field("owner", &self.owner)
            .field("settings", &self.settings)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What one round of the loop found, so `run` knows how long to wait before the next.
enum Round {
    /// Published and marked a non-empty batch: go again at once.
    Published,
    /// The outbox was empty: wait for the poll interval.
    Idle,
    /// Another replica holds the lease: wait for the standby interval.
    Standby,
    /// Something failed; it was logged and will be retried after a back-off.
    Failed,
    /// Shutdown was requested while waiting for the bus.
    ShutDown,
}

impl Relay {
    /// Creates a relay named `owner` (unique per replica, e.g. the host name and process id).
    pub fn new(store: Store, publisher: Arc<dyn Publisher>, owner: String, settings: RelaySettings) -> Relay {
        Relay {
            store,
            publisher,
            owner,
            settings,
            stats: Arc::new(RelayStats::default()),
            renewed_at: AtomicI64::new(0),
        }
    }

    /// The relay's counters; they stay readable after `run` consumed the relay.
    pub fn stats(&self) -> Arc<RelayStats> {
        Arc::clone(&self.stats)
    }

    /// Publishes the outbox until `shutdown` resolves. Errors from the store or the bus are logged and retried
    /// with back-off; `run` returns an error only for settings it cannot work with.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RelayError> {
        self.validate()?;
        let lease_ttl_ms = i64::try_from(self.settings.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        tracing::info!(owner = %self.owner, lease_ttl_ms, batch_size = self.settings.batch_size, "outbox relay starting");
        tokio::pin!(shutdown);
        let mut backoff = self.settings.min_backoff;
        loop {
            let pause = match self.round(lease_ttl_ms, &mut shutdown).await {
                Round::Published => {
                    backoff = self.settings.min_backoff;
                    Duration::ZERO
                }
                Round::Idle => {
                    backoff = self.settings.min_backoff;
                    self.settings.poll_interval
                }
                Round::Standby => self.settings.standby_interval,
                Round::Failed => {
                    let pause = backoff;
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                    pause
                }
                Round::ShutDown => break,
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = pause_for(pause) => {}
            }
        }
        self.release_lease().await;
        tracing::info!(owner = %self.owner, "outbox relay stopped");
        Ok(())
    }

    /// Gives the lease up on a clean stop, so a standby takes over at its next try rather than after the lease
    /// expired. Anything this relay had not marked stays unpublished and is published again by the next holder.
    async fn release_lease(&self) {
        match self.store.release_relay_lease(&self.owner).await {
            Ok(true) => tracing::info!(owner = %self.owner, "outbox relay released its lease"),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                owner = %self.owner,
                error = %error,
                "outbox relay could not release its lease; a standby takes over when it expires"
            ),
        }
        self.stats.holds_lease.store(false, Ordering::Relaxed);
    }

    fn validate(&self) -> Result<(), RelayError> {
        let invalid = |setting, reason| Err(RelayError::InvalidSetting { setting, reason });
        if self.settings.batch_size == 0 {
            return invalid("batch_size", "must be at least 1");
        }
        if self.settings.poll_interval.is_zero() || self.settings.standby_interval.is_zero() {
            return invalid("poll_interval", "poll_interval and standby_interval must be above zero");
        }
        if self.settings.lease_ttl < Duration::from_millis(100) {
            return invalid("lease_ttl", "must be at least 100 ms");
        }
        if self.settings.min_backoff.is_zero() || self.settings.max_backoff < self.settings.min_backoff {
            return invalid("min_backoff", "must be above zero and at most max_backoff");
        }
        Ok(())
    }

    /// Whether the lease, held and renewed less than a third of its TTL ago, needs no renewal this round: the
    /// idle poll then costs one indexed read, not a write.
    fn lease_is_fresh(&self, now: Millis, lease_ttl_ms: i64) -> bool {
        self.stats.holds_lease.load(Ordering::Relaxed)
            && now - self.renewed_at.load(Ordering::Relaxed) < lease_ttl_ms / 3
    }

    async fn round(&self, lease_ttl_ms: i64, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> Round {
        let now = now_millis();
        let lease = if self.lease_is_fresh(now, lease_ttl_ms) {
            Ok(true)
        } else {
            let taken = self.store.acquire_relay_lease(&self.owner, now, lease_ttl_ms).await;
            if let Ok(true) = taken {
                self.renewed_at.store(now, Ordering::Relaxed);
            }
            taken
        };
        match lease {
            Ok(true) => self.stats.holds_lease.store(true, Ordering::Relaxed),
            Ok(false) => {
                if self.stats.holds_lease.swap(false, Ordering::Relaxed) {
                    tracing::warn!(owner = %self.owner, "outbox relay lost its lease to another replica; standing by");
                }
                return Round::Standby;
            }
            Err(error) => {
                self.stats.store_errors_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(owner = %self.owner, error = %error, "outbox relay could not take or renew its lease; retrying");
                return Round::Failed;
            }
        }

        let batch = match self.store.unpublished_events(self.settings.batch_size).await {
            Ok(batch) => batch,
            Err(error) => {
                self.stats.store_errors_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(owner = %self.owner, error = %error, "outbox relay could not read the outbox; retrying");
                return Round::Failed;
            }
        };
        self.stats.last_batch_size.store(batch.len() as u64, Ordering::Relaxed);
        if batch.is_empty() {
            return Round::Idle;
        }

        match self.publish_holding_lease(&batch, lease_ttl_ms, shutdown).await {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                self.stats.publish_errors_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    owner = %self.owner,
                    events = batch.len(),
                    error = %error,
                    "outbox relay could not publish a batch; it stays unpublished and will be published again"
                );
                return Round::Failed;
            }
            None => return Round::ShutDown,
        }

        let ids: Vec<String> = batch.iter().map(|event| event.id.clone()).collect();
        if let Err(error) = self.store.mark_published(&ids, now_millis()).await {
            self.stats.store_errors_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                owner = %self.owner,
                events = ids.len(),
                error = %error,
                "outbox relay published a batch but could not mark it; it will be published again"
            );
            return Round::Failed;
        }
        self.stats.published_total.fetch_add(ids.len() as u64, Ordering::Relaxed);
        self.stats.batches_total.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(owner = %self.owner, events = ids.len(), "outbox relay published a batch");
        Round::Published
    }

    /// Publishes `batch` while renewing the lease every third of its time-to-live, so a slow broker does not
    /// hand the outbox to another replica. Returns `None` when shutdown was requested first; the batch then
    /// stays unpublished and is published again by whoever runs next.
    async fn publish_holding_lease(
        &self,
        batch: &[Event],
        lease_ttl_ms: i64,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<Result<(), crate::BusError>> {
        let started = Instant::now();
        let renew_every = self.settings.lease_ttl / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let publish = self.publisher.publish(batch);
        tokio::pin!(publish);
        loop {
            tokio::select! {
                result = &mut publish => return Some(result),
                () = &mut *shutdown => return None,
                _ = renew.tick() => {
                    tracing::warn!(
                        owner = %self.owner,
                        events = batch.len(),
                        waited_ms = started.elapsed().as_millis(),
                        "the bus has not acknowledged the batch yet; still waiting"
                    );
                    match self.store.acquire_relay_lease(&self.owner, now_millis(), lease_ttl_ms).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(
                            owner = %self.owner,
                            "outbox relay lost its lease while waiting for the bus; another replica may publish the same events"
                        ),
                        Err(error) => tracing::warn!(owner = %self.owner, error = %error, "outbox relay could not renew its lease"),
                    }
                }
            }
        }
    }
}

/// Waits for `pause`, or not at all when it is zero (after a published batch the next round starts at once).
async fn pause_for(pause: Duration) {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}

use comet_model::now_millis;
