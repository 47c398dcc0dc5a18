//! Consumer groups: every event of the event topics goes to one member of each group, and it counts as done
//! for the group only once the member's handler succeeded. The workers (webhooks, moderation, notifications)
//! stand on this; the gateway does not (every node needs every event: [`crate::KafkaTail`]).
//!
//! A handler that fails gets the same event again on the next [`GroupSubscription::handle`], and nothing after
//! it is committed first, so an event is never skipped; it may be handled twice (a retry, a restart before the
//! commit reached the broker, a rebalance), which is why consumers deduplicate on [`Event::id`] ([`crate::Seen`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use comet_model::Event;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Message, TopicPartitionList};

use crate::in_process::{GroupPlace, InProcessBus};
use crate::kafka::{KafkaConfig, create_topics};
use crate::lag::{GroupLag, PartitionLag};
use crate::{BusError, TopicCounts, decode, topics};

/// The consumer group session timeout. TESTBED.md: the first message to a new group arrives after about half
/// of it, so it is kept short.
const SESSION_TIMEOUT_MS: &str = "6000";
/// How often the offsets of handled events are committed to Kafka (and once more when the member leaves).
const COMMIT_INTERVAL_MS: &str = "1000";
/// How long one lag reading waits for the broker (each partition's watermarks).
const LAG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a group member could not hand an event over.
#[derive(Debug, thiserror::Error)]
pub enum GroupError<E> {
    /// Reading the next event or committing a handled one failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The handler refused the event; it is handed over again on the next call.
    #[error("handling event {event_id}: {error}")]
    Handler { event_id: String, error: E },
}

/// One member of a consumer group, subscribed to every event topic.
pub struct GroupSubscription {
    group: String,
    source: Source,
    consumed: Arc<TopicCounts>,
    /// Per partition, the offsets taken and not yet done ([`GroupSubscription::take`]).
    taken: std::sync::Mutex<HashMap<(String, i32), Positions>>,
    /// On the in-process bus, the events taken and not yet done (the lag counts them).
    in_hand: AtomicU64,
}

/// An event taken from the group by [`GroupSubscription::take`]: it counts as done for the group only after
/// [`GroupSubscription::done`] with its ticket, and after every event taken before it from its partition.
#[derive(Debug, Clone)]
pub struct Taken {
    pub event: Event,
    pub ticket: Ticket,
}

/// Where a taken event sits in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ticket {
    Kafka { topic: String, partition: i32, offset: i64 },
    InProcess,
}

/// One partition's offsets in hand: the highest taken, the ones not done, and the last one stored for commit.
#[derive(Debug, Default)]
struct Positions {
    highest: i64,
    undone: BTreeSet<i64>,
    stored: Option<i64>,
}

impl Positions {
    /// The offset to store after `offset` is done: every taken offset up to it is done (`None`: no change).
    fn finish(&mut self, offset: i64) -> Option<i64> {
        self.undone.remove(&offset);
        let through = match self.undone.first() {
            Some(first) => first - 1,
            None => self.highest,
        };
        (self.stored.is_none_or(|stored| through > stored)).then(|| {
            self.stored = Some(through);
            through
        })
    }
}

enum Source {
    Kafka {
        consumer: StreamConsumer<Assignment>,
        /// A client outside the group (no group id: one with the group's id slowed the group's joins on tansu
        /// from 6 s to 20-90 s), for reading the partitions' ends
        /// on a blocking thread while the member runs.
        lag_reader: Arc<BaseConsumer>,
        pending: Option<Record>,
    },
    InProcess(Arc<tokio::sync::Mutex<GroupPlace>>),
}

/// An event read from Kafka with the position its commit names.
struct Record {
    topic: String,
    partition: i32,
    offset: i64,
    event: Event,
}

impl fmt::Debug for GroupSubscription {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.source {
            Source::Kafka { .. } => "kafka",
            Source::InProcess(_) => "in-process",
        };
        formatter.debug_struct("GroupSubscription").field("group", &self.group).field("backend", &backend).finish()
    }
}

impl GroupSubscription {
    /// Joins `group` on Kafka, creating missing event topics first. A group that never committed starts at the
    /// earliest offset; otherwise each partition resumes after the group's last commit. The classic group
    /// protocol with a short session timeout (6 s) keeps a new group's first assignment quick.
    pub async fn kafka(config: &KafkaConfig, group: &str) -> Result<GroupSubscription, BusError> {
        create_topics(config).await?;
        let consumer: StreamConsumer<Assignment> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            .set("group.id", group)
            .set("group.protocol", "classic")
            .set("session.timeout.ms", SESSION_TIMEOUT_MS)
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Offsets are stored only after the handler succeeded; librdkafka commits what is stored.
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", COMMIT_INTERVAL_MS)
            .create_with_context(Assignment::default())
            .map_err(|error| {
                BusError::Kafka(format!("creating a consumer for group {group} on {}: {error}", config.brokers))
            })?;
        let lag_reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            .create()
            .map_err(|error| {
                BusError::Kafka(format!("creating a lag reader for group {group} on {}: {error}", config.brokers))
            })?;
        let topics = topics();
        consumer
            .subscribe(&topics)
            .map_err(|error| BusError::Kafka(format!("subscribing group {group} to {}: {error}", topics.join(", "))))?;
        Ok(GroupSubscription {
            group: group.to_owned(),
            source: Source::Kafka { consumer, lag_reader: Arc::new(lag_reader), pending: None },
            consumed: Arc::default(),
            taken: Default::default(),
            in_hand: Default::default(),
        })
    }

    /// Joins `group` on the in-process bus of the embedded mode. The bus keeps the group's place while no
    /// member runs, so a member that comes back resumes after the last event handled; a group starts with the
    /// events published after it was first joined, and one that falls more than the bus's capacity behind
    /// loses the oldest ([`BusError::Lagged`]). Members of one group take turns, one event at a time.
    pub fn in_process(bus: &InProcessBus, group: &str) -> GroupSubscription {
        GroupSubscription {
            group: group.to_owned(),
            source: Source::InProcess(bus.group(group)),
            consumed: Arc::default(),
            taken: Default::default(),
            in_hand: Default::default(),
        }
    }

    /// The group's name (the `group` label of its metrics).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Events of this member's share of the group not done yet: on Kafka, per partition assigned to this
    /// member that it has taken an event from, the end of the partition less the oldest offset it has not
    /// finished (or the one after the last it finished), summed; a partition it has taken nothing from since
    /// it joined is left out (its position is the group's commit, which only the member's own client could
    /// ask for, and that waits on its group thread). The members of all replicas together report the group's
    /// lag.
    /// On the in-process bus: the events published and not taken yet, those handed back, and those taken and
    /// not done.
    pub async fn lag(&self) -> Result<GroupLag, BusError> {
        match &self.source {
            Source::Kafka { consumer, lag_reader, .. } => {
                // The assignment as the rebalance callbacks last set it: asking the member's client for it
                // (`Consumer::assignment`) would wait on its group thread, which during a rebalance waits for
                // this very task to poll — the member would stall.
                let assignment = consumer.context().current()?;
                let positions: Vec<(String, i32, i64)> = {
                    let taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
                    assignment
                        .elements()
                        .iter()
                        .filter_map(|element| {
                            let (topic, partition) = (element.topic().to_owned(), element.partition());
                            let held = taken.get(&(topic.clone(), partition))?;
                            let next = held.undone.first().copied().unwrap_or(held.highest + 1);
                            Some((topic, partition, next))
                        })
                        .collect()
                };
                let (reader, group) = (lag_reader.clone(), self.group.clone());
                tokio::task::spawn_blocking(move || kafka_lag(&reader, &positions, &group))
                    .await
                    .map_err(|error| BusError::Kafka(format!("reading the lag of group {}: {error}", self.group)))?
            }
            // A member waiting in `take` holds the place, and it waits only when nothing is published and not
            // taken: the lag is 0 then.
            Source::InProcess(place) => {
                let waiting = place.try_lock().map_or(0, |place| {
                    place.receiver.len() + place.returned.len() + usize::from(place.pending.is_some())
                });
                let in_hand = self.in_hand.load(Ordering::Relaxed);
                let total = u64::try_from(waiting).unwrap_or(u64::MAX).saturating_add(in_hand);
                Ok(GroupLag { partitions: Vec::new(), total })
            }
        }
    }

    /// Events this member handled, per topic (`comet_kafka_messages_consumed_total`); on the in-process bus, by
    /// the topic of their type.
    pub fn consumed(&self) -> Arc<TopicCounts> {
        self.consumed.clone()
    }

    /// Waits for the next event and hands it to `handler`; the event counts as done for the group only when
    /// the handler returns `Ok`. After an error the same event is handed over again on the next call. Cancelling
    /// the returned future (a shutdown) leaves the event undone as well.
    pub async fn handle<E>(&mut self, handler: impl AsyncFnOnce(&Event) -> Result<(), E>) -> Result<(), GroupError<E>> {
        match &mut self.source {
            Source::Kafka { consumer, pending, .. } => {
                let handled = hand_over(pending, next_record(consumer), |record| &record.event, handler).await?;
                if let Some(Record { topic, partition, offset, .. }) = handled {
                    self.consumed.add(&topic, 1);
                    consumer.store_offset(&topic, partition, offset).map_err(|error| {
                        BusError::Kafka(format!(
                            "committing {topic}/{partition} offset {offset} for {}: {error}",
                            self.group
                        ))
                    })?;
                }
                Ok(())
            }
            Source::InProcess(place) => {
                let mut place = place.lock().await;
                let GroupPlace { receiver, pending, .. } = &mut *place;
                if let Some(event) = hand_over(pending, next_in_process(receiver), |event| event, handler).await? {
                    self.consumed.add(event.event_type.topic(), 1);
                }
                Ok(())
            }
        }
    }
}

/// Taking events several at a time, for a member that handles them concurrently (the worker base). Use either
/// this or [`GroupSubscription::handle`] on one subscription, not both.
impl GroupSubscription {
    /// Waits for the next event and returns it without marking it done. Cancel-safe.
    pub async fn take(&self) -> Result<Taken, BusError> {
        match &self.source {
            Source::Kafka { consumer, .. } => {
                let record = next_record(consumer).await?;
                let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
                let positions = taken.entry((record.topic.clone(), record.partition)).or_default();
                positions.undone.insert(record.offset);
                positions.highest = positions.highest.max(record.offset);
                let ticket = Ticket::Kafka { topic: record.topic, partition: record.partition, offset: record.offset };
                Ok(Taken { event: record.event, ticket })
            }
            Source::InProcess(place) => {
                let mut place = place.lock().await;
                let event = match place.returned.pop_front() {
                    Some(event) => event,
                    None => next_in_process(&mut place.receiver).await?,
                };
                self.in_hand.fetch_add(1, Ordering::Relaxed);
                Ok(Taken { event, ticket: Ticket::InProcess })
            }
        }
    }

    /// Marks a taken event done. On Kafka its offset is stored for the next commit once every event taken
    /// before it from its partition is done too, so a crash never skips an unfinished event.
    pub fn done(&self, taken: &Taken) -> Result<(), BusError> {
        self.consumed.add(taken.event.event_type.topic(), 1);
        let (Source::Kafka { consumer, .. }, Ticket::Kafka { topic, partition, offset }) =
            (&self.source, &taken.ticket)
        else {
            let _ = self.in_hand.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| held.checked_sub(1));
            return Ok(());
        };
        let through = {
            let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
            taken.get_mut(&(topic.clone(), *partition)).and_then(|positions| positions.finish(*offset))
        };
        let Some(through) = through else { return Ok(()) };
        consumer.store_offset(topic, *partition, through).map_err(|error| {
            BusError::Kafka(format!("committing {topic}/{partition} offset {through} for {}: {error}", self.group))
        })
    }

    /// Leaves the group: commits what is done now (Kafka) and hands `undone` back, so the next member (of any
    /// replica on Kafka; of this process on the in-process bus, in the order given) gets those events again.
    pub async fn close(self, undone: Vec<Event>) -> Result<(), BusError> {
        match &self.source {
            Source::Kafka { consumer, .. } => match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                Err(error) => Err(BusError::Kafka(format!("committing on leaving group {}: {error}", self.group))),
            },
            Source::InProcess(place) => {
                let mut place = place.lock().await;
                self.in_hand.store(0, Ordering::Relaxed);
                for event in undone.into_iter().rev() {
                    place.returned.push_front(event);
                }
                Ok(())
            }
        }
    }
}

/// Hands the undone delivery in `slot`, or else a `fresh` one, to `handler`. It stays in `slot` while the handler
/// runs (so a cancelled or failed handler leaves it undone) and is taken out, to be committed, once it succeeded.
async fn hand_over<D, E>(
    slot: &mut Option<D>,
    fresh: impl Future<Output = Result<D, BusError>>,
    event: impl Fn(&D) -> &Event,
    handler: impl AsyncFnOnce(&Event) -> Result<(), E>,
) -> Result<Option<D>, GroupError<E>> {
    let delivery = match slot.take() {
        Some(undone) => undone,
        None => fresh.await?,
    };
    let delivery = slot.insert(delivery);
    if let Err(error) = handler(event(delivery)).await {
        return Err(GroupError::Handler { event_id: event(delivery).id.clone(), error });
    }
    Ok(slot.take())
}

/// The next event from Kafka. Records that are not events are logged, committed and skipped: one bad record
/// must not stop the group.
/// The partitions assigned to a member, kept by its rebalance callbacks (which run while the member polls).
#[derive(Default)]
struct Assignment {
    partitions: std::sync::Mutex<Vec<(String, i32)>>,
}

impl Assignment {
    fn current(&self) -> Result<TopicPartitionList, BusError> {
        let partitions = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions.iter() {
            list.add_partition(topic, *partition);
        }
        Ok(list)
    }
}

impl ClientContext for Assignment {}

impl ConsumerContext for Assignment {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut partitions = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        match rebalance {
            Rebalance::Assign(assigned) => {
                *partitions = assigned
                    .elements()
                    .iter()
                    .map(|element| (element.topic().to_owned(), element.partition()))
                    .collect();
            }
            Rebalance::Revoke(_) => partitions.clear(),
            Rebalance::Error(_) => {}
        }
    }
}

/// The lag of a Kafka member's partitions from its next offsets (blocking: the brokers are asked for the ends).
fn kafka_lag(reader: &BaseConsumer, positions: &[(String, i32, i64)], group: &str) -> Result<GroupLag, BusError> {
    let mut lag = GroupLag::default();
    for (topic, partition, next) in positions {
        let (low, high) = reader.fetch_watermarks(topic, *partition, LAG_TIMEOUT).map_err(|error| {
            BusError::Kafka(format!("reading the end of {topic}/{partition} for group {group}: {error}"))
        })?;
        let behind = high - (*next).clamp(low, high);
        lag.total += u64::try_from(behind).unwrap_or(0);
        lag.partitions.push(PartitionLag { topic: topic.clone(), partition: *partition, lag: behind });
    }
    Ok(lag)
}

async fn next_record(consumer: &StreamConsumer<Assignment>) -> Result<Record, BusError> {
    loop {
        let message = consumer.recv().await.map_err(|error| BusError::Kafka(format!("reading events: {error}")))?;
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        match message.payload().map(decode) {
            Some(Ok(event)) => return Ok(Record { topic: topic.to_owned(), partition, offset, event }),
            Some(Err(error)) => {
                tracing::warn!(topic, partition, offset, %error, "skipping a record that is not an event")
            }
            None => tracing::warn!(topic, partition, offset, "skipping an empty record"),
        }
        consumer
            .store_offset(topic, partition, offset)
            .map_err(|error| BusError::Kafka(format!("committing {topic}/{partition} offset {offset}: {error}")))?;
    }
}

async fn next_in_process(receiver: &mut tokio::sync::broadcast::Receiver<Event>) -> Result<Event, BusError> {
    use tokio::sync::broadcast::error::RecvError;
    receiver.recv().await.map_err(|error| match error {
        RecvError::Lagged(missed) => BusError::Lagged(missed),
        RecvError::Closed => BusError::Closed,
    })
}
