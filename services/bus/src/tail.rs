//! The tail reader: every event published from now on, on every partition, without a consumer group.
//!
//! Gateways use it: each node needs every message event (it filters for the users it holds), nothing from
//! before it started (a reconnecting client resyncs from the database), and no group rebalance delaying its
//! start or stealing partitions from another node.

use std::sync::Arc;
use std::time::Duration;

use comet_model::Event;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::kafka::create_topics;
use crate::lag::PartitionLag;
use crate::{BusError, KafkaConfig, TopicCounts, decode, topics};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every event topic from the end each partition had when [`KafkaTail::start`] returned.
pub struct KafkaTail {
    consumer: StreamConsumer,
    partitions: usize,
    consumed: Arc<TopicCounts>,
}

impl std::fmt::Debug for KafkaTail {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KafkaTail").field("partitions", &self.partitions).finish()
    }
}

impl KafkaTail {
    /// Creates missing topics, then assigns every partition at its current high watermark: an event published
    /// after this returns is read; none published before is.
    pub async fn start(config: &KafkaConfig) -> Result<KafkaTail, BusError> {
        create_topics(config).await?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            // Required by librdkafka even though no group is joined: offsets are assigned, never committed.
            .set("group.id", format!("{}-tail", config.client_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // Live delivery: the broker answers a fetch as soon as data arrives, and within 50 ms when idle.
            .set("fetch.wait.max.ms", "50")
            .create()
            .map_err(|error| BusError::Kafka(format!("creating the tail consumer on {}: {error}", config.brokers)))?;
        // Metadata and watermark calls block: run them off the async threads.
        let (consumer, assignment) = tokio::task::spawn_blocking(move || {
            let assignment = current_ends(&consumer);
            (consumer, assignment)
        })
        .await
        .map_err(|error| BusError::Kafka(format!("reading partition ends: {error}")))?;
        let assignment = assignment?;
        let partitions = assignment.count();
        consumer
            .assign(&assignment)
            .map_err(|error| BusError::Kafka(format!("assigning {partitions} partitions: {error}")))?;
        tracing::info!(partitions, "reading every event partition from its end");
        Ok(KafkaTail { consumer, partitions, consumed: Arc::default() })
    }

    /// Events read, per topic (`comet_kafka_messages_consumed_total`), shared so a metrics page can hold it.
    pub fn consumed(&self) -> Arc<TopicCounts> {
        self.consumed.clone()
    }

    /// The next event. Payloads that are not events are logged and skipped: one bad record must not stop delivery.
    pub async fn next(&self) -> Result<Event, BusError> {
        loop {
            let message =
                self.consumer.recv().await.map_err(|error| BusError::Kafka(format!("reading events: {error}")))?;
            match message.payload().map(decode) {
                Some(Ok(event)) => {
                    self.consumed.add(message.topic(), 1);
                    return Ok(event);
                }
                Some(Err(error)) => tracing::warn!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    %error,
                    "skipping a record that is not an event"
                ),
                None => tracing::warn!(topic = message.topic(), offset = message.offset(), "skipping an empty record"),
            }
        }
    }
}

impl KafkaTail {
    /// The lag of every assigned partition. Blocks on the broker (one watermark request per partition): call it
    /// from a blocking thread, every few seconds at most.
    pub fn lag_blocking(&self) -> Result<Vec<PartitionLag>, BusError> {
        let positions =
            self.consumer.position().map_err(|error| BusError::Kafka(format!("reading positions: {error}")))?;
        let mut lags = Vec::with_capacity(positions.count());
        for element in positions.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let (_, high) = self
                .consumer
                .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
                .map_err(|error| BusError::Kafka(format!("reading the end of {topic}/{partition}: {error}")))?;
            let lag = match element.offset() {
                Offset::Offset(next) => (high - next).max(0),
                _ => 0,
            };
            lags.push(PartitionLag { topic: topic.to_owned(), partition, lag });
        }
        Ok(lags)
    }
}

/// Every partition of every event topic at its high watermark.
fn current_ends(consumer: &StreamConsumer) -> Result<TopicPartitionList, BusError> {
    let mut list = TopicPartitionList::new();
    for topic in topics() {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|error| BusError::Kafka(format!("reading metadata of {topic}: {error}")))?;
        for found in metadata.topics() {
            for partition in found.partitions() {
                let (_, high) =
                    consumer.fetch_watermarks(topic, partition.id(), METADATA_TIMEOUT).map_err(|error| {
                        BusError::Kafka(format!("reading the end of {topic}/{}: {error}", partition.id()))
                    })?;
                list.add_partition_offset(topic, partition.id(), Offset::Offset(high))
                    .map_err(|error| BusError::Kafka(format!("assigning {topic}/{}: {error}", partition.id())))?;
            }
        }
    }
    if list.count() == 0 {
        return Err(BusError::Kafka(format!("no partitions found for {}", topics().join(", "))));
    }
    Ok(list)
}
