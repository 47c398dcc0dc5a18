//! The worker loop against the in-process bus and a real Kafka-protocol broker (tansu), with dead letters in a
//! real store (SQLite and MariaDB): retries until done, dead letters after the attempts or at once, order per
//! key, redeliveries dropped, and an event in hand at shutdown handed to the next member.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use comet_bus::{GroupSubscription, InProcessBus, KafkaConfig, KafkaPublisher, Publisher};
use comet_model::{Event, EventType};
use comet_store::Store;
use comet_testkit::TestDatabase;
use comet_worker::{Handler, Outcome, Worker, WorkerConfig};
use futures::future::BoxFuture;

const DEADLINE: Duration = Duration::from_secs(60);

fn event(key: &str, seq: i64, plan: &str) -> Event {
    Event {
        id: uuid::Uuid::now_v7().simple().to_string(),
        event_type: EventType::MessageSent,
        time: 1_700_000_000_000 + seq,
        key: key.to_owned(),
        data: serde_json::json!({ "seq": seq, "plan": plan }),
    }
}

/// A handler that does what each event of its test's key says in `plan`: `ok`, `fail-N` (fails N times, then
/// succeeds), `fail-always`, `poison` (can never succeed), `hang-once` (the first call never returns). It records
/// every call for that key; other tests' events (the Kafka topics keep them) are done at once.
#[derive(Default)]
struct Scripted {
    key: String,
    calls: Mutex<Vec<(String, i64)>>,
    failures: Mutex<HashMap<String, u32>>,
    hung: Mutex<bool>,
}

impl Scripted {
    fn new(key: &str) -> Arc<Scripted> {
        Arc::new(Scripted { key: key.to_owned(), ..Scripted::default() })
    }

    fn calls_for(&self, key: &str) -> Vec<i64> {
        let calls = self.calls.lock().expect("calls");
        calls.iter().filter(|(called_key, _)| called_key == key).map(|(_, seq)| *seq).collect()
    }
}

impl Handler for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if event.key != self.key {
                return Outcome::Done;
            }
            let seq = event.data["seq"].as_i64().unwrap_or(-1);
            self.calls.lock().expect("calls").push((event.key.clone(), seq));
            let plan = event.data["plan"].as_str().unwrap_or("ok").to_owned();
            if plan == "hang-once" {
                let first = !std::mem::replace(&mut *self.hung.lock().expect("hung"), true);
                if first {
                    std::future::pending::<()>().await;
                }
                return Outcome::Done;
            }
            if plan == "poison" {
                return Outcome::DeadLetter("the event can never be delivered".to_owned());
            }
            if plan == "fail-always" {
                return Outcome::RetryLater("the receiver is down".to_owned());
            }
            if let Some(times) = plan.strip_prefix("fail-").and_then(|n| n.parse::<u32>().ok()) {
                let mut failures = self.failures.lock().expect("failures");
                let failed = failures.entry(event.id.clone()).or_insert(0);
                if *failed < times {
                    *failed += 1;
                    return Outcome::RetryLater(format!("failure {failed} of {times}"));
                }
            }
            Outcome::Done
        })
    }
}

fn quick() -> WorkerConfig {
    WorkerConfig { attempts: 3, first_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(20) }
}

async fn store(database: &TestDatabase) -> Store {
    let store = Store::connect(&database.url).await.expect("store");
    store.migrate().await.expect("migrate");
    store
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} did not happen within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs one worker over five events of a fresh key (and a redelivery of the first) until all are settled, then
/// stops it. On Kafka the group also reads what other tests published; `alone` says the bus has only ours.
async fn scenario(
    store: Store,
    subscribe: impl AsyncFnOnce() -> GroupSubscription,
    publisher: Arc<dyn Publisher>,
    alone: bool,
) {
    let key = uuid::Uuid::new_v4().simple().to_string();
    let handler = Scripted::new(&key);
    let worker = Worker::new(handler.clone(), store.clone(), quick());
    let subscription = subscribe().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(subscription, async { stopped.await.unwrap_or(()) }).await }
    });
    let events = [
        event(&key, 1, "ok"),
        event(&key, 2, "fail-2"),
        event(&key, 3, "poison"),
        event(&key, 4, "fail-always"),
        event(&key, 5, "ok"),
    ];
    publisher.publish(&events).await.expect("publish");
    // The same event again (the bus delivers at least once): dropped by id.
    publisher.publish(&events[..1]).await.expect("publish again");
    let metrics = worker.metrics();
    wait_until("five events settled and the redelivery dropped", || {
        handler.calls_for(&key).len() >= 9 && metrics.duplicates() >= 1
    })
    .await;
    let _ = stop.send(());
    running.await.expect("the worker stops");

    // In order per key; fail-2 took three calls, poison one, fail-always its three attempts.
    assert_eq!(handler.calls_for(&key), [1, 2, 2, 2, 3, 4, 4, 4, 5]);
    let letters = store.worker_dead_letters("scripted", 10).await.expect("dead letters");
    let mut ours: Vec<(i64, i64, String)> = letters
        .iter()
        .filter(|letter| letter.event.key == key)
        .map(|letter| (letter.event.data["seq"].as_i64().unwrap_or(-1), letter.attempts, letter.reason.clone()))
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        [(3, 1, "the event can never be delivered".to_owned()), (4, 3, "the receiver is down".to_owned())]
    );
    if alone {
        assert_eq!((metrics.done(), metrics.dead_letters(), metrics.duplicates()), (3, 2, 1));
        let text = metrics.render();
        assert!(text.contains("comet_worker_dead_letters_total{worker=\"scripted\"} 2"), "{text}");
        assert!(text.contains("comet_worker_handler_duration_seconds_count{worker=\"scripted\"} 9"), "{text}");
    }
}

#[tokio::test]
async fn in_process_events_are_retried_dead_lettered_and_deduplicated_in_order_on_sqlite() {
    let database = TestDatabase::sqlite();
    let bus = InProcessBus::new(1024);
    let subscribe = {
        let bus = bus.clone();
        async move || GroupSubscription::in_process(&bus, "comet-scripted")
    };
    scenario(store(&database).await, subscribe, Arc::new(bus.clone()), true).await;
    database.finish().await;
}

fn kafka_config() -> KafkaConfig {
    let brokers = comet_testkit::kafka_brokers();
    comet_testkit::require_kafka(&brokers);
    KafkaConfig { brokers, partitions: 3, replication_factor: 1, client_id: "comet-worker-tests".to_owned() }
}

#[tokio::test]
async fn kafka_events_are_retried_dead_lettered_and_deduplicated_in_order_on_mariadb() {
    let database = TestDatabase::mariadb().await;
    let config = kafka_config();
    let publisher = Arc::new(KafkaPublisher::connect(&config).await.expect("publisher"));
    let group = format!("comet-worker-test-{}", uuid::Uuid::new_v4().simple());
    let subscribe = async move || GroupSubscription::kafka(&config, &group).await.expect("join");
    scenario(store(&database).await, subscribe, publisher, false).await;
    database.finish().await;
}

/// A worker stopped while its handler hangs on an event leaves the event to the group: the next member of the
/// group (a restart) handles it, and the events after it, in order.
#[tokio::test]
async fn an_event_in_hand_at_shutdown_goes_to_the_next_member() {
    let database = TestDatabase::sqlite();
    let store = store(&database).await;
    let config = kafka_config();
    let publisher = KafkaPublisher::connect(&config).await.expect("publisher");
    let group = format!("comet-worker-test-{}", uuid::Uuid::new_v4().simple());
    let key = uuid::Uuid::new_v4().simple().to_string();
    let handler = Scripted::new(&key);
    let worker = Worker::new(handler.clone(), store.clone(), quick());

    let first = GroupSubscription::kafka(&config, &group).await.expect("join");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(first, async { stopped.await.unwrap_or(()) }).await }
    });
    publisher
        .publish(&[event(&key, 1, "ok"), event(&key, 2, "hang-once"), event(&key, 3, "ok")])
        .await
        .expect("publish");
    wait_until("the handler is stuck on event 2", || handler.calls_for(&key) == [1, 2]).await;
    let _ = stop.send(());
    running.await.expect("the worker stops");

    // A restarted process: a new member and its own memory of handled ids.
    let restarted = Worker::new(handler.clone(), store.clone(), quick());
    let second = GroupSubscription::kafka(&config, &group).await.expect("join again");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move { restarted.run(second, async { stopped.await.unwrap_or(()) }).await });
    wait_until("events 2 and 3 handled after the restart", || handler.calls_for(&key).ends_with(&[2, 3])).await;
    let _ = stop.send(());
    running.await.expect("the worker stops");
    let calls = handler.calls_for(&key);
    assert!(calls.starts_with(&[1, 2]), "{calls:?}");
    assert_eq!(calls.iter().filter(|seq| **seq == 3).count(), 1, "event 3 once: {calls:?}");
    assert!(store.worker_dead_letters("scripted", 10).await.expect("letters").is_empty());
    database.finish().await;
}
