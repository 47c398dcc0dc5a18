//! Consumer groups: every event of the event topics goes to one member of each group, and it counts as done
//! for the group only once the member's handler succeeded. The workers (webhooks, moderation, notifications)
//! stand on this; the gateway does not (every node needs every event: [`crate::KafkaTail`]).
//!
//! A handler that fails gets the same event again on the next [`GroupSubscription::handle`], and nothing after
//! it is committed first, so an event is never skipped; it may be handled twice (a retry, a restart before the
//! commit reached the broker, a rebalance), which is why consumers deduplicate on [`Event::id`] ([`crate::Seen`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError};

use comet_model::Event;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Message};

use crate::in_process::{GroupPlace, InProcessBus};
use crate::kafka::{KafkaConfig, create_topics};
use crate::{BusError, TopicCounts, decode, topics};

/// The consumer group session timeout. TESTBED.md: the first message to a new group arrives after about half
/// of it, so it is kept short.
const SESSION_TIMEOUT_MS: &str = "6000";
/// How often the offsets of handled events are committed to Kafka (and once more when the member leaves).
const COMMIT_INTERVAL_MS: &str = "1000";

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
    Kafka { consumer: StreamConsumer, pending: Option<Record> },
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
        let consumer: StreamConsumer = ClientConfig::new()
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
            .create()
            .map_err(|error| {
                BusError::Kafka(format!("creating a consumer for group {group} on {}: {error}", config.brokers))
            })?;
        let topics = topics();
        consumer
            .subscribe(&topics)
            .map_err(|error| BusError::Kafka(format!("subscribing group {group} to {}: {error}", topics.join(", "))))?;
        Ok(GroupSubscription {
            group: group.to_owned(),
            source: Source::Kafka { consumer, pending: None },
            consumed: Arc::default(),
            taken: Default::default(),
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
        }
    }

    /// The group's name (the `group` label of its metrics).
    pub fn group(&self) -> &str {
        &self.group
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
            Source::Kafka { consumer, pending } => {
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
async fn next_record(consumer: &StreamConsumer) -> Result<Record, BusError> {
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
