//! The Kafka publisher and consumer against the real broker (tansu).

use std::collections::BTreeMap;

use comet_bus::{GroupSubscription, KafkaPublisher, Publisher, topics};
use comet_model::Event;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::support::{collect_from_group, event, fresh_group, kafka_config, require_kafka, unique};

#[tokio::test]
async fn connecting_twice_leaves_the_topics_as_they_are() {
    let config = kafka_config();
    require_kafka(&config);
    KafkaPublisher::connect(&config).await.expect("first connect creates the topics");
    let publisher = KafkaPublisher::connect(&config).await.expect("second connect tolerates existing topics");
    publisher.ping().await.expect("ping");

    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &config.brokers).create().expect("a metadata client");
    let metadata = tokio::task::spawn_blocking(move || {
        consumer.fetch_metadata(None, std::time::Duration::from_secs(10)).expect("metadata")
    })
    .await
    .expect("metadata task");
    for topic in topics() {
        let found = metadata.topics().iter().find(|candidate| candidate.name() == topic);
        let found = found.unwrap_or_else(|| panic!("topic {topic} missing from the cluster metadata"));
        assert!(!found.partitions().is_empty(), "topic {topic} has no partition");
    }
}

#[tokio::test]
async fn published_events_all_arrive_in_order_per_key() {
    let config = kafka_config();
    require_kafka(&config);
    let publisher = KafkaPublisher::connect(&config).await.expect("connect");
    let run = unique("order");
    let keys: Vec<String> = (0..4).map(|index| format!("{run}-key{index}")).collect();
    // 4 keys × 30 events, interleaved across keys, published in 4 calls.
    let events: Vec<Event> = (1..=30).flat_map(|seq| keys.iter().map(move |key| event(key, seq))).collect();
    for chunk in events.chunks(events.len() / 4) {
        publisher.publish(chunk).await.expect("publish");
    }

    let mut subscription = GroupSubscription::kafka(&config, &fresh_group()).await.expect("joining a group");
    let received = collect_from_group(&mut subscription, |event| event.key.starts_with(&run), events.len()).await;

    assert_eq!(received.len(), events.len(), "the idempotent producer writes each event exactly once");
    assert_eq!(per_key(&received), per_key(&events), "per key, events arrive in publish order");
}

fn per_key(events: &[Event]) -> BTreeMap<String, Vec<String>> {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in events {
        by_key.entry(event.key.clone()).or_default().push(event.id.clone());
    }
    by_key
}
