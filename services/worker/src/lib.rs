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
//! - One member ([`Worker::run`] on one subscription) runs up to [`WorkerConfig::concurrency`] events at once
//!   (and holds up to 16 times as many taken), but the events of one key (a conversation, a user, a group) one after
//!   another in the order taken, so the order per key holds while a slow key delays only itself. Kafka spreads
//!   partitions over the members of all replicas; an offset is committed only once every event taken before it
//!   from its partition finished.
//! - A failing event is retried with exponential backoff (capped) up to [`WorkerConfig::attempts`] times, then
//!   written to the store's `worker_dead_letters` with the last reason, and the loop moves on.
//! - Every [`WorkerConfig::lag_interval`] the member reads its lag from the bus ([`GroupSubscription::lag`]):
//!   `comet_worker_lag_events` in all, and on Kafka `comet_kafka_consumer_lag` per assigned partition, the series
//!   the rendered `KafkaConsumerLagHigh` alert and the Kafka dashboard read for every group.
//! - On shutdown (SIGTERM) the member takes nothing new, lets the events running finish for up to
//!   [`WorkerConfig::shutdown_grace`], commits what finished and hands back the rest (running or waiting behind
//!   their key): uncommitted on Kafka, so another replica gets them; first in line on the in-process bus.

mod metrics;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet_bus::{GroupSubscription, Seen, Taken};
use comet_model::{Event, EventType};
use comet_store::Store;
use futures::future::BoxFuture;
use tokio::sync::Mutex;
use tokio::task::{JoinError, JoinSet};

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
    /// Events handled at once, at least 1 (events waiting behind an earlier one of their key do not count).
    pub concurrency: usize,
    /// On shutdown, how long the events in hand may take to finish before the rest is handed back.
    pub shutdown_grace: Duration,
    /// How often the member reads its lag from the bus (`comet_worker_lag_events`).
    pub lag_interval: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            attempts: 8,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            concurrency: 16,
            shutdown_grace: Duration::from_secs(10),
            lag_interval: Duration::from_secs(5),
        }
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

    /// Runs one member on `subscription` until `shutdown` resolves, handling up to
    /// [`WorkerConfig::concurrency`] events at once: events of one key (a conversation, a user, a group) one
    /// after another in the order taken, different keys in parallel. On shutdown it stops taking events,
    /// lets the events in hand finish for up to [`WorkerConfig::shutdown_grace`], commits what finished and
    /// hands the rest back to the group (their offsets stay uncommitted, so the next member gets them).
    pub async fn run(&self, subscription: GroupSubscription, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut lanes = Lanes::default();
        let limit = self.config.concurrency.max(1);
        // The lag reader borrows the subscription until the member stops taking events.
        {
            let mut lag = std::pin::pin!(self.watch_lag(&subscription));
            loop {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = &mut lag => {}
                    Some(finished) = lanes.running.join_next_with_id(), if !lanes.running.is_empty() => {
                        lanes.finished(&subscription, finished);
                        self.fill(&mut lanes, limit);
                        self.metrics.set_in_hand(lanes.held());
                    }
                    taken = subscription.take(), if lanes.held() < limit.saturating_mul(HELD_PER_SLOT) => match taken {
                        Ok(taken) => {
                            lanes.admit(taken);
                            self.fill(&mut lanes, limit);
                            self.metrics.set_in_hand(lanes.held());
                        }
                        Err(error) => {
                            self.metrics.bus_error();
                            tracing::warn!(worker = self.handler.name(), %error, "reading events failed; retrying");
                            tokio::time::sleep(self.config.first_backoff).await;
                        }
                    },
                }
            }
        }
        let in_hand = lanes.running.len();
        tracing::info!(worker = self.handler.name(), in_hand, "worker stopping: finishing the events in hand");
        let deadline = tokio::time::sleep(self.config.shutdown_grace);
        let mut deadline = std::pin::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                finished = lanes.running.join_next_with_id() => match finished {
                    // Nothing more is started: what waits goes back to the group.
                    Some(finished) => lanes.finished(&subscription, finished),
                    None => break,
                },
            }
        }
        lanes.running.abort_all();
        let undone = lanes.undone();
        if !undone.is_empty() {
            tracing::info!(worker = self.handler.name(), handed_back = undone.len(), "events handed back to the group");
        }
        self.metrics.set_in_hand(0);
        if let Err(error) = subscription.close(undone).await {
            self.metrics.bus_error();
            tracing::warn!(worker = self.handler.name(), %error, "committing on shutdown failed; finished events may come again");
        }
    }

    /// Reads the member's lag from the bus every [`WorkerConfig::lag_interval`], for the gauge; never ends.
    async fn watch_lag(&self, subscription: &GroupSubscription) {
        let mut every = tokio::time::interval(self.config.lag_interval.max(Duration::from_millis(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match subscription.lag().await {
                Ok(lag) => self.metrics.set_lag(subscription.group(), lag),
                Err(error) => {
                    self.metrics.bus_error();
                    tracing::debug!(worker = self.handler.name(), %error, "reading the lag failed");
                }
            }
        }
    }

    /// Starts ready events while fewer than `limit` run.
    fn fill(&self, lanes: &mut Lanes, limit: usize) {
        while lanes.running.len() < limit {
            let Some(taken) = lanes.ready.pop_front() else { return };
            let worker = self.clone();
            let event = taken.event.clone();
            let handle = lanes.running.spawn(async move { worker.settle(&event).await });
            lanes.in_hand.insert(handle.id(), taken);
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
        let replayed;
        let event = match replay_of(event, self.handler.name()) {
            Replay::Not => event,
            Replay::Elsewhere => return,
            Replay::Mine(inner) => {
                tracing::info!(worker = self.handler.name(), event = %inner.id, "handling a replayed dead letter");
                replayed = inner;
                &replayed
            }
            Replay::Malformed(error) => {
                tracing::warn!(worker = self.handler.name(), event = %event.id, %error, "skipping a malformed replay");
                return;
            }
        };
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

/// What a `worker.replay` event (`comet_store::Store::replay_worker_dead_letter`) means to one worker.
enum Replay {
    /// Not a replay: the event itself.
    Not,
    /// Another worker's dead letter: nothing to do here.
    Elsewhere,
    /// This worker's dead letter, to handle again (its id is not checked against the ids seen: it was seen).
    Mine(Event),
    Malformed(String),
}

fn replay_of(event: &Event, worker: &str) -> Replay {
    if event.event_type != EventType::WorkerReplay {
        return Replay::Not;
    }
    if event.data.get("worker").and_then(serde_json::Value::as_str) != Some(worker) {
        return Replay::Elsewhere;
    }
    match event.data.get("event").map(|inner| serde_json::from_value::<Event>(inner.clone())) {
        Some(Ok(inner)) if inner.event_type != EventType::WorkerReplay => Replay::Mine(inner),
        Some(Ok(_)) => Replay::Malformed("a replay of a replay".to_owned()),
        Some(Err(error)) => Replay::Malformed(error.to_string()),
        None => Replay::Malformed("no `event` in the replay".to_owned()),
    }
}

/// Events a member holds (running, ready, or waiting behind their key) per slot of concurrency: enough that
/// one busy key does not keep the other keys from being taken, bounded so memory is.
const HELD_PER_SLOT: usize = 16;

/// The events a member holds. A key with events in hand has a lane: its first event runs (or is ready to,
/// waiting for a slot) and its later ones wait behind it in the order taken.
#[derive(Default)]
struct Lanes {
    running: JoinSet<()>,
    in_hand: HashMap<tokio::task::Id, Taken>,
    ready: VecDeque<Taken>,
    waiting: HashMap<String, VecDeque<Taken>>,
}

impl Lanes {
    /// Events held: running, ready and waiting.
    fn held(&self) -> usize {
        self.in_hand.len() + self.ready.len() + self.waiting.values().map(VecDeque::len).sum::<usize>()
    }

    /// A newly taken event: ready when its key has no lane, else queued behind its key.
    fn admit(&mut self, taken: Taken) {
        match self.waiting.get_mut(&taken.event.key) {
            Some(queue) => queue.push_back(taken),
            None => {
                self.waiting.insert(taken.event.key.clone(), VecDeque::new());
                self.ready.push_back(taken);
            }
        }
    }

    /// A task ended: its event is done for the group (unless the task panicked: then it stays uncommitted and
    /// comes again after a restart), and the key's next event, if any, becomes ready.
    fn finished(&mut self, subscription: &GroupSubscription, finished: Result<(tokio::task::Id, ()), JoinError>) {
        let (id, completed) = match finished {
            Ok((id, ())) => (id, true),
            Err(error) => (error.id(), false),
        };
        let Some(taken) = self.in_hand.remove(&id) else { return };
        if completed {
            if let Err(error) = subscription.done(&taken) {
                tracing::warn!(event = %taken.event.id, %error, "storing a handled event's offset failed");
            }
        } else {
            tracing::error!(event = %taken.event.id, "a handler task failed; the event stays uncommitted");
        }
        let key = taken.event.key;
        match self.waiting.get_mut(&key).and_then(VecDeque::pop_front) {
            Some(next) => self.ready.push_back(next),
            None => {
                self.waiting.remove(&key);
            }
        }
    }

    /// Everything not finished, each key's events in the order taken, for handing back.
    fn undone(&mut self) -> Vec<Event> {
        let heads: Vec<Taken> = self.in_hand.drain().map(|(_, taken)| taken).chain(self.ready.drain(..)).collect();
        let mut undone = Vec::new();
        for head in heads {
            let queue = self.waiting.remove(&head.event.key).unwrap_or_default();
            undone.push(head.event);
            undone.extend(queue.into_iter().map(|taken| taken.event));
        }
        undone
    }
}
