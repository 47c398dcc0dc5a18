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
//! **Waking.** When a round finds the outbox empty, the relay waits for the next commit of an outbox row in its
//! own process ([`Store::outbox_committed`]: the API and the relay share one store in `all` and in the
//! embedded mode), so an event leaves as soon as its transaction commits. Rows other processes commit are
//! found by the fallback poll (`poll_interval`, 20 ms).
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
//! **Dead letters.** An event the bus refuses for good ([`BusError::Rejected`]: too large, an invalid record) is
//! retried like any failure, and the events after it wait, so order per key holds. After `max_attempts` refusals
//! in a row it is moved to `outbox_dead_letters` with the bus's reason ([`Store::dead_letter`]) and the relay
//! goes on with the events after it. Errors that say nothing about one event (the broker is away) never count.
//!
//! **Retention.** Published events stay in the outbox for `retention` (default 24 h), then the lease holder
//! deletes them, beside publishing, in small batches by primary key (see [`Store::delete_published_before`]).
//!
//! **Several replicas.** They share one lease row in the database. The holder renews it every round (and
//! while it waits for Kafka); the others poll and take over once it has expired, so a crashed holder delays
//! publishing by at most one lease time-to-live. A holder that stops cleanly releases the lease, so a standby
//! takes over at its next try (within its standby interval).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use comet_model::{Event, Millis};
use comet_store::Store;
use tokio::sync::watch;

use crate::{BusError, Publisher};

/// How the relay paces itself. [`RelaySettings::default`] suits production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// The most events read and published per round.
    pub batch_size: u32,
    /// How long to wait before looking again when the outbox was empty, unless a commit in this process wakes
    /// the relay first ([`Store::outbox_committed`]): the poll only matters for events other processes commit.
    pub poll_interval: Duration,
    /// How long the lease lasts unless renewed: a crashed holder is replaced after at most this long.
    pub lease_ttl: Duration,
    /// How often a relay without the lease tries to take it.
    pub standby_interval: Duration,
    /// The first pause after an error; it doubles on each consecutive error up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest pause after consecutive errors.
    pub max_backoff: Duration,
    /// How long a published event stays in the outbox before the retention job deletes it.
    pub retention: Duration,
    /// How often the lease holder starts a retention pass (when a pass finds nothing more to delete).
    pub retention_interval: Duration,
    /// The most rows one retention batch deletes; a pass deletes batch after batch, each statement committed on
    /// its own, with a `poll_interval` pause between batches.
    pub retention_batch: u32,
    /// How many times in a row the bus may refuse one event for good ([`crate::BusError::Rejected`]) before the
    /// relay moves it to the dead letters and goes on. Other errors (the broker is away) never count.
    pub max_attempts: u32,
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
            retention: Duration::from_secs(24 * 60 * 60),
            retention_interval: Duration::from_secs(60),
            retention_batch: 1_000,
            max_attempts: 5,
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
#[derive(Debug)]
pub struct RelayStats {
    published_total: AtomicU64,
    batches_total: AtomicU64,
    last_batch_size: AtomicU64,
    publish_errors_total: AtomicU64,
    store_errors_total: AtomicU64,
    holds_lease: AtomicBool,
    rows_deleted_total: AtomicU64,
    dead_letters_total: AtomicU64,
    /// The outbox's row count at the end of the last retention pass; -1 before the first one.
    outbox_rows: AtomicI64,
}

impl Default for RelayStats {
    fn default() -> RelayStats {
        RelayStats {
            published_total: AtomicU64::new(0),
            batches_total: AtomicU64::new(0),
            last_batch_size: AtomicU64::new(0),
            publish_errors_total: AtomicU64::new(0),
            store_errors_total: AtomicU64::new(0),
            holds_lease: AtomicBool::new(false),
            rows_deleted_total: AtomicU64::new(0),
            dead_letters_total: AtomicU64::new(0),
            outbox_rows: AtomicI64::new(-1),
        }
    }
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

    /// Published events the retention job deleted since the relay started.
    pub fn rows_deleted_total(&self) -> u64 {
        self.rows_deleted_total.load(Ordering::Relaxed)
    }

    /// Events this relay moved to the dead letters since it started.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters_total.load(Ordering::Relaxed)
    }

    /// The outbox's rows (published and not) counted at the end of this relay's last retention pass; `None`
    /// until it finished one (a standby never does).
    pub fn outbox_rows(&self) -> Option<u64> {
        u64::try_from(self.outbox_rows.load(Ordering::Relaxed)).ok()
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
    /// The event the bus last refused for good, and how many times in a row.
    refusals: Mutex<Option<(String, u32)>>,
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
    /// Published and marked a full batch: go again at once, more may be waiting.
    Published,
    /// Published and marked a batch smaller than `batch_size`: the outbox held nothing more when it was read, so
    /// wait as when idle. A commit made meanwhile in this process has left its wake-up, so it is read at once.
    Drained,
    /// Moved an event the bus kept refusing to the dead letters: go again at once.
    DeadLettered,
    /// The outbox was empty: wait for a commit in this process or the poll interval, whichever comes first.
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
            refusals: Mutex::new(None),
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
        // Retention runs beside publishing, so a long deletion never delays a batch. It stops after publishing
        // stopped, between two statements: a statement dropped mid-way could hold the store's connection (SQLite
        // has one) while the lease is released.
        let (stop_retention, retention_stopping) = watch::channel(false);
        let publishing = async {
            self.publish_until(lease_ttl_ms, shutdown).await;
            let _ = stop_retention.send(true);
        };
        tokio::join!(publishing, self.keep_retention(retention_stopping));
        self.release_lease().await;
        tracing::info!(owner = %self.owner, "outbox relay stopped");
        Ok(())
    }

    /// The publishing loop: rounds paced by what each found, until `shutdown` resolves.
    async fn publish_until(&self, lease_ttl_ms: i64, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = self.settings.min_backoff;
        loop {
            let pause = match self.round(lease_ttl_ms, &mut shutdown).await {
                Round::Published | Round::DeadLettered => {
                    backoff = self.settings.min_backoff;
                    Duration::ZERO
                }
                Round::Idle | Round::Drained => {
                    backoff = self.settings.min_backoff;
                    // A commit in this process wakes the relay at once; the poll is for the other processes'.
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = self.store.outbox_committed() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                    }
                    continue;
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
    }

    /// The retention job, on the lease holder only: deletes events published more than `retention` ago, a
    /// batch at a time, then counts the rows kept and waits for the next pass. Returns once `stopping` is set,
    /// never in the middle of a statement.
    async fn keep_retention(&self, mut stopping: watch::Receiver<bool>) {
        let retention_ms = i64::try_from(self.settings.retention.as_millis()).unwrap_or(i64::MAX);
        // Waits for `pause` unless asked to stop first; true when asked to stop.
        let mut stop_within = async |pause: Duration| -> bool {
            if *stopping.borrow() {
                return true;
            }
            tokio::select! {
                changed = stopping.changed() => changed.is_err() || *stopping.borrow(),
                () = tokio::time::sleep(pause) => false,
            }
        };
        loop {
            if !self.stats.holds_lease() {
                if stop_within(self.settings.standby_interval).await {
                    return;
                }
                continue;
            }
            let cutoff = now_millis().saturating_sub(retention_ms);
            match self.store.delete_published_before(cutoff, self.settings.retention_batch).await {
                Ok(deleted) => {
                    self.stats.rows_deleted_total.fetch_add(deleted, Ordering::Relaxed);
                    if deleted >= u64::from(self.settings.retention_batch) {
                        if stop_within(self.settings.poll_interval).await {
                            return;
                        }
                        continue;
                    }
                    match self.store.outbox_rows().await {
                        Ok(rows) => self.stats.outbox_rows.store(rows, Ordering::Relaxed),
                        Err(error) => self.retention_failed(&error),
                    }
                }
                Err(error) => self.retention_failed(&error),
            }
            if stop_within(self.settings.retention_interval).await {
                return;
            }
        }
    }

    fn retention_failed(&self, error: &comet_store::StoreError) {
        self.stats.store_errors_total.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(owner = %self.owner, error = %error, "outbox retention failed; trying again at the next pass");
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
        if self.settings.retention.is_zero() || self.settings.retention_interval.is_zero() {
            return invalid("retention", "retention and retention_interval must be above zero");
        }
        if self.settings.retention_batch == 0 {
            return invalid("retention_batch", "must be at least 1");
        }
        if self.settings.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
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
            Some(Err(BusError::Rejected { event_id, reason })) => return self.refused(&event_id, &reason).await,
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
        if ids.len() < self.settings.batch_size as usize { Round::Drained } else { Round::Published }
    }

    /// The bus refused `event_id` for good: retried with back-off, holding everything after it, until it was
    /// refused `max_attempts` times in a row; then moved to the dead letters, and the relay goes on.
    async fn refused(&self, event_id: &str, reason: &str) -> Round {
        self.stats.publish_errors_total.fetch_add(1, Ordering::Relaxed);
        let attempts = {
            let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
            match refusals.as_mut() {
                Some((refused, count)) if refused == event_id => {
                    *count += 1;
                    *count
                }
                _ => {
                    *refusals = Some((event_id.to_owned(), 1));
                    1
                }
            }
        };
        if attempts < self.settings.max_attempts {
            tracing::warn!(
                owner = %self.owner,
                event_id,
                attempts,
                max_attempts = self.settings.max_attempts,
                reason,
                "the bus refused an event; retrying it before anything after it"
            );
            return Round::Failed;
        }
        match self.store.dead_letter(event_id, reason, attempts, now_millis()).await {
            Ok(moved) => {
                *self.refusals.lock().unwrap_or_else(PoisonError::into_inner) = None;
                if moved {
                    self.stats.dead_letters_total.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        owner = %self.owner,
                        event_id,
                        attempts,
                        reason,
                        "the bus refused an event every time; moved it to outbox_dead_letters and going on \
                         (`comet-server outbox dead-letters` lists it)"
                    );
                }
                Round::DeadLettered
            }
            Err(error) => {
                self.stats.store_errors_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(owner = %self.owner, event_id, error = %error, "outbox relay could not move a refused event to the dead letters; retrying");
                Round::Failed
            }
        }
    }

    /// Publishes `batch` while renewing the lease every third of its time-to-live, so a slow broker does not
    /// hand the outbox to another replica. Returns `None` when shutdown was requested first; the batch then
    /// stays unpublished and is published again by whoever runs next.
    async fn publish_holding_lease(
        &self,
        batch: &[Event],
        lease_ttl_ms: i64,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<Result<(), BusError>> {
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
