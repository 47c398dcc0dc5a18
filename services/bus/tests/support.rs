//! What the tests share: server addresses, fresh names, and waiting for events with a deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use comet_bus::{GroupSubscription, InProcessBus, KafkaConfig, KafkaPublisher, Publisher};
use comet_model::{Event, EventType};
use comet_store::Store;
use comet_testkit::TestDatabase;
use tokio::sync::broadcast;

/// How long a test waits for an event before it fails. A new consumer group's first message alone takes
/// about half the 6 s session timeout.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(60);

/// The broker the tests use, with 3 partitions per topic and one replica.
pub fn kafka_config() -> KafkaConfig {
    KafkaConfig {
        brokers: comet_testkit::kafka_brokers(),
        partitions: 3,
        replication_factor: 1,
        client_id: "comet-bus-tests".to_owned(),
    }
}

/// Fails the test at once, with what to do, when the Kafka broker does not accept connections.
pub fn require_kafka(config: &KafkaConfig) {
    comet_testkit::require_kafka(&config.brokers);
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A consumer group no other test or run uses, so it reads each topic from the beginning.
pub fn fresh_group() -> String {
    unique("comet-bus-test")
}

/// A `message.sent` event with key `key` whose data carries `seq`.
pub fn event(key: &str, seq: i64) -> Event {
    Event {
        id: uuid::Uuid::now_v7().simple().to_string(),
        event_type: EventType::MessageSent,
        time: 1_700_000_000_000 + seq,
        key: key.to_owned(),
        data: serde_json::json!({ "seq": seq }),
    }
}

/// Receives the next event from an in-process subscriber, failing the test after [`EVENT_DEADLINE`].
pub async fn recv_within(receiver: &mut broadcast::Receiver<Event>) -> Event {
    tokio::time::timeout(EVENT_DEADLINE, receiver.recv())
        .await
        .expect("no event within the deadline")
        .expect("the bus is open and the subscriber keeps up")
}

/// Reads events from an in-process subscriber, keeping those `wanted` selects (duplicates included), until
/// `distinct` different event ids have arrived; fails the test after [`EVENT_DEADLINE`].
pub async fn collect_from_bus(
    receiver: &mut broadcast::Receiver<Event>,
    wanted: impl Fn(&Event) -> bool,
    distinct: usize,
) -> Vec<Event> {
    collect(distinct, wanted, async || recv_within(receiver).await).await
}

/// Reads events through a consumer group, keeping those `wanted` selects (duplicates included), until `distinct`
/// different event ids have arrived; fails the test after [`EVENT_DEADLINE`].
pub async fn collect_from_group(
    subscription: &mut GroupSubscription,
    wanted: impl Fn(&Event) -> bool,
    distinct: usize,
) -> Vec<Event> {
    collect(distinct, wanted, async || next_from_group(subscription).await).await
}

/// The next event a group member is handed; the handler accepts it, so it is committed.
pub async fn next_from_group(subscription: &mut GroupSubscription) -> Event {
    let mut received = None;
    subscription
        .handle(async |event| {
            received = Some(event.clone());
            Ok::<(), std::convert::Infallible>(())
        })
        .await
        .expect("consuming through the group");
    received.expect("a handled event")
}

async fn collect(distinct: usize, wanted: impl Fn(&Event) -> bool, mut next: impl AsyncFnMut() -> Event) -> Vec<Event> {
    let mut received = Vec::new();
    let mut ids = HashSet::new();
    let collecting = async {
        while ids.len() < distinct {
            let event = next().await;
            if wanted(&event) {
                ids.insert(event.id.clone());
                received.push(event);
            }
        }
    };
    if tokio::time::timeout(EVENT_DEADLINE, collecting).await.is_err() {
        panic!("only {} of {distinct} events arrived within {EVENT_DEADLINE:?}", ids.len());
    }
    received
}

/// A migrated database of its own, on which each relay opens a store (as separate replicas would).
pub struct TestDb(TestDatabase);

impl TestDb {
    /// A new, migrated SQLite file.
    pub async fn sqlite() -> TestDb {
        TestDb::migrated(TestDatabase::sqlite()).await
    }

    /// A new, migrated database with a random name on the MariaDB server.
    pub async fn mariadb() -> TestDb {
        TestDb::migrated(TestDatabase::mariadb().await).await
    }

    async fn migrated(database: TestDatabase) -> TestDb {
        let db = TestDb(database);
        db.store().await.migrate().await.expect("migrating the test database");
        db
    }

    /// A store with a connection pool of its own on this database.
    pub async fn store(&self) -> Store {
        Store::connect(&self.0.url).await.unwrap_or_else(|error| panic!("connecting to {}: {error}", self.0.url))
    }

    /// Removes the database (see [`TestDatabase::finish`]).
    pub async fn finish(self) {
        self.0.finish().await;
    }
}

/// Where the relay under test publishes, and how the test reads back what arrived.
pub enum Sink {
    /// The in-process bus, with a subscriber that exists before anything is published.
    InProcess { bus: InProcessBus, receiver: broadcast::Receiver<Event> },
    /// The Kafka broker; each read uses a fresh consumer group from the earliest offset.
    Kafka { config: KafkaConfig, publisher: Arc<KafkaPublisher> },
}

impl Sink {
    pub fn in_process() -> Sink {
        // Large enough that the subscriber never lags in these tests.
        let bus = InProcessBus::new(100_000);
        let receiver = bus.subscribe();
        Sink::InProcess { bus, receiver }
    }

    pub async fn kafka() -> Sink {
        let config = kafka_config();
        require_kafka(&config);
        let publisher = KafkaPublisher::connect(&config).await.expect("connecting the Kafka publisher");
        Sink::Kafka { config, publisher: Arc::new(publisher) }
    }

    /// The publisher relays hand events to.
    pub fn publisher(&self) -> Arc<dyn Publisher> {
        match self {
            Sink::InProcess { bus, .. } => Arc::new(bus.clone()),
            Sink::Kafka { publisher, .. } => Arc::clone(publisher) as Arc<dyn Publisher>,
        }
    }

    /// A new member of consumer group `group` on this sink's bus.
    pub async fn join(&self, group: &str) -> GroupSubscription {
        match self {
            Sink::InProcess { bus, .. } => GroupSubscription::in_process(bus, group),
            Sink::Kafka { config, .. } => {
                GroupSubscription::kafka(config, group).await.expect("joining a Kafka consumer group")
            }
        }
    }

    /// Reads what arrived, keeping the events `wanted` selects (duplicates included), until `distinct`
    /// different ones have; fails the test after [`EVENT_DEADLINE`].
    pub async fn collect(&mut self, wanted: impl Fn(&Event) -> bool, distinct: usize) -> Vec<Event> {
        match self {
            Sink::InProcess { receiver, .. } => collect_from_bus(receiver, wanted, distinct).await,
            Sink::Kafka { config, .. } => {
                let mut subscription =
                    GroupSubscription::kafka(config, &fresh_group()).await.expect("joining a Kafka consumer group");
                collect_from_group(&mut subscription, wanted, distinct).await
            }
        }
    }
}

/// Polls `condition` every 20 ms until it holds; fails the test with `what` after [`EVENT_DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let waiting = async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(EVENT_DEADLINE, waiting).await.is_err() {
        panic!("timed out after {EVENT_DEADLINE:?} waiting until {what}");
    }
}
