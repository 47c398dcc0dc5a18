use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use comet_model::Event;
use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::{BusError, Publisher, TopicCounts, encode, topics};

/// How long creating topics may take before `connect` gives up and says so.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the readiness check waits for the cluster's metadata.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait before trying again when the producer's local queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(10);

/// Where the Kafka cluster is and how the event topics are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// The bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Partitions of each topic the publisher creates; more partitions allow more consumers per group.
    pub partitions: i32,
    /// Replicas of each partition (production: 3).
    pub replication_factor: i32,
    /// The client id the brokers log and quota on.
    pub client_id: String,
}

/// Publishes events to Kafka: topic from [`comet_model::EventType::topic`], message key [`Event::key`],
/// payload the event's JSON.
///
/// The producer is idempotent with `acks=all`, so a retried send is written once and events with the same
/// key land in their partition in publish order. Its local delivery timeout is infinite: librdkafka keeps
/// retrying while the cluster is unreachable instead of failing some messages and sending later ones, which
/// would leave a gap and break order per key. `enable.gapless.guarantee` turns any other gap into a fatal
/// producer error; the publisher then builds a fresh producer and reports the failure, and the caller
/// publishes the batch again.
pub struct KafkaPublisher {
    producer_config: ClientConfig,
    producer: Mutex<FutureProducer>,
    brokers: String,
    produced: TopicCounts,
}

impl fmt::Debug for KafkaPublisher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("KafkaPublisher").field("brokers", &self.brokers).finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// Creates the topics of every event type if they are missing, then builds the producer.
    pub async fn connect(config: &KafkaConfig) -> Result<KafkaPublisher, BusError> {
        create_topics(config).await?;
        let producer_config = producer_config(config);
        let producer = build_producer(&producer_config)?;
        tracing::info!(brokers = %config.brokers, "Kafka publisher connected");
        Ok(KafkaPublisher {
            producer_config,
            producer: Mutex::new(producer),
            brokers: config.brokers.clone(),
            produced: TopicCounts::default(),
        })
    }

    /// Checks that the cluster answers a metadata request in time: the readiness probe of the publishing roles.
    pub async fn ping(&self) -> Result<(), BusError> {
        let producer = self.current_producer();
        let brokers = self.brokers.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, PING_TIMEOUT)
                .map(|_| ())
                .map_err(|error| BusError::Kafka(format!("fetching metadata from {brokers}: {error}")))
        })
        .await
        .map_err(|error| BusError::Kafka(format!("metadata fetch task failed: {error}")))?
    }

    /// Messages the brokers acknowledged, per topic (`comet_kafka_messages_produced_total`).
    pub fn produced(&self) -> &TopicCounts {
        &self.produced
    }

    fn current_producer(&self) -> FutureProducer {
        self.producer.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces a producer that hit a fatal error (it refuses every later message) with a fresh one.
    fn replace_if_fatal(&self, producer: &FutureProducer) {
        let Some((code, reason)) = producer.client().fatal_error() else { return };
        tracing::error!(%code, %reason, "Kafka producer hit a fatal error; building a new one");
        match build_producer(&self.producer_config) {
            Ok(fresh) => *self.producer.lock().unwrap_or_else(PoisonError::into_inner) = fresh,
            Err(error) => tracing::error!(%error, "could not build a new Kafka producer; will try on the next failure"),
        }
    }

    async fn publish_all(&self, producer: &FutureProducer, events: &[Event]) -> Result<(), BusError> {
        // Enqueue everything first, in slice order (that is the order librdkafka sends in, per partition),
        // then wait for every acknowledgement: one round trip per batch, not per event.
        let mut deliveries: Vec<(&Event, DeliveryFuture)> = Vec::with_capacity(events.len());
        for event in events {
            let payload = encode(event)?;
            let mut record = FutureRecord::to(event.event_type.topic())
                .key(event.key.as_bytes())
                .payload(&payload)
                .timestamp(event.time);
            let delivery = loop {
                match producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                    }
                    Err((error, _)) => return Err(enqueue_error(event, &error)),
                }
            };
            deliveries.push((event, delivery));
        }
        for (event, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => self.produced.add(event.event_type.topic(), 1),
                Ok(Err((error, _))) => return Err(delivery_error(event, &error)),
                Err(_canceled) => {
                    return Err(BusError::Kafka(format!(
                        "event {} to topic {}: the producer was dropped before the broker answered",
                        event.id,
                        event.event_type.topic()
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Publisher for KafkaPublisher {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let producer = self.current_producer();
            let result = self.publish_all(&producer, events).await;
            if result.is_err() {
                self.replace_if_fatal(&producer);
            }
            result
        })
    }
}

/// A refusal at enqueue time names the one event it is about. The codes below say that event can never be sent
/// (librdkafka checks the size against `message.max.bytes`, 1,000,000 bytes by default, below a broker's default
/// of 1,048,588, so an oversize event is refused here, alone, before it leaves); every other error is retried.
fn enqueue_error(event: &Event, error: &KafkaError) -> BusError {
    let reason = format!("queueing event {} for topic {}: {error}", event.id, event.event_type.topic());
    let refused_for_good = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
        )
    );
    if refused_for_good { BusError::Rejected { event_id: event.id.clone(), reason } } else { BusError::Kafka(reason) }
}

fn delivery_error(event: &Event, error: &KafkaError) -> BusError {
    BusError::Kafka(format!("delivering event {} to topic {}: {error}", event.id, event.event_type.topic()))
}

fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut producer_config = ClientConfig::new();
    producer_config
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", &config.client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Infinite: never fail a message locally and send its successors (see KafkaPublisher's doc).
        .set("message.timeout.ms", "0")
        .set("enable.gapless.guarantee", "true")
        // A short linger batches the events of one publish call into few requests.
        .set("linger.ms", "5");
    producer_config
}

fn build_producer(producer_config: &ClientConfig) -> Result<FutureProducer, BusError> {
    producer_config.create().map_err(|error| BusError::Kafka(format!("creating the producer: {error}")))
}

/// Creates every event topic that does not exist yet; topics that exist are left as they are.
pub(crate) async fn create_topics(config: &KafkaConfig) -> Result<(), BusError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", &config.client_id)
        .create()
        .map_err(|error| BusError::Kafka(format!("creating the admin client for {}: {error}", config.brokers)))?;
    // With three or more replicas an acks=all write must reach two of them, so one broker may fail without
    // losing an acknowledged event (DESIGN.md: RF 3, min.insync.replicas 2).
    let min_insync = (config.replication_factor >= 3).then_some("2");
    let new_topics: Vec<NewTopic<'_>> = topics()
        .into_iter()
        .map(|name| {
            let topic = NewTopic::new(name, config.partitions, TopicReplication::Fixed(config.replication_factor));
            match min_insync {
                Some(value) => topic.set("min.insync.replicas", value),
                None => topic,
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|error| BusError::Kafka(format!("creating topics on {}: {error}", config.brokers)))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, partitions = config.partitions, "created Kafka topic"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => tracing::debug!(%topic, "Kafka topic exists"),
            Err((topic, code)) => {
                return Err(BusError::Kafka(format!(
                    "creating topic {topic} ({} partitions, replication factor {}) on {}: {code}",
                    config.partitions, config.replication_factor, config.brokers
                )));
            }
        }
    }
    Ok(())
}
