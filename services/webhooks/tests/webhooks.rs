//! The webhooks role against real HTTP receivers (axum on 127.0.0.1, reached through the operator allow-list),
//! the real in-process bus and the worker base, with deliveries in a real store (SQLite, and MariaDB from
//! `bash .ci/services.sh`). Signatures are verified by the Standard Webhooks reference library (the
//! `standardwebhooks` PyPI package that `.ci/install-tools.sh` installs), not only by our own code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use comet_bus::{GroupSubscription, InProcessBus, Publisher};
use comet_documents::Documents;
use comet_model::{Event, EventType, now_millis};
use comet_store::{Delivery, DeliveryAttempt, DeliveryState, Store, WebhookRecord};
use comet_testkit::TestDatabase;
use comet_webhooks::signature::new_secret;
use comet_webhooks::{
    AllowList, Guard, GuardError, MAX_WEBHOOKS, MongoWebhookConfigs, RetrySchedule, WebhookConfigs, WebhookSettings,
    Webhooks,
};
use comet_worker::{Worker, WorkerConfig, WorkerMetrics, group_of};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

const DEADLINE: Duration = Duration::from_secs(60);
const PYTHON: &str = "/opt/comet-tools/venv/bin/python";

/// Waits until `check` holds, polling; fails the test with `what` at the deadline.
async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The store's record of a delivered delivery once it holds `attempts` attempts: the dispatcher records an attempt
/// after the receiver's answer is back, so a receiver that has answered is not yet a recorded delivery.
async fn recorded(store: &Store, webhook: &str, id: &str, attempts: usize) -> (Delivery, Vec<DeliveryAttempt>) {
    wait_for("the delivery recorded", || async {
        store
            .webhook_delivery(webhook, id)
            .await
            .expect("read")
            .is_some_and(|(delivery, logged)| delivery.state == DeliveryState::Delivered && logged.len() == attempts)
    })
    .await;
    store.webhook_delivery(webhook, id).await.expect("read").expect("delivery")
}

/// What a receiver does with a request.
#[derive(Clone)]
enum Mode {
    Ok,
    /// Answers 500 to the first N attempts of each `webhook-id`, then 200.
    FailFirst(u32),
    /// Answers 429 with `Retry-After: 1` to the first attempt of each `webhook-id`, then 200.
    TooManyOnce,
    /// Answers 503 always.
    Down,
    /// Waits for a permit of the gate (the test hands them out), then 200.
    Gated(Arc<Semaphore>),
}

#[derive(Debug, Clone)]
struct Captured {
    id: String,
    timestamp: String,
    signature: String,
    authorization: Option<String>,
    body: Vec<u8>,
    status: u16,
}

struct ReceiverState {
    mode: Mode,
    requests: Mutex<Vec<Captured>>,
    attempts: Mutex<HashMap<String, u32>>,
}

#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let state = Arc::new(ReceiverState { mode, requests: Mutex::default(), attempts: Mutex::default() });
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a receiver");
        let address = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { address, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn requests(&self) -> Vec<Captured> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// Successful deliveries by `webhook-id`: what a receiver that deduplicates on it processes.
    fn delivered(&self) -> HashMap<String, usize> {
        let mut delivered = HashMap::new();
        for request in self.requests().iter().filter(|request| request.status == 200) {
            *delivered.entry(request.id.clone()).or_insert(0) += 1;
        }
        delivered
    }
}

async fn receive(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let id = header("webhook-id").unwrap_or_default();
    let attempt = {
        let mut attempts = state.attempts.lock().expect("attempts");
        let count = attempts.entry(id.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let (status, retry_after) = match &state.mode {
        Mode::Ok => (200, None),
        Mode::FailFirst(failures) => (if attempt <= *failures { 500 } else { 200 }, None),
        Mode::TooManyOnce if attempt == 1 => (429, Some("1")),
        Mode::TooManyOnce => (200, None),
        Mode::Down => (503, None),
        Mode::Gated(gate) => {
            gate.acquire().await.expect("gate").forget();
            (200, None)
        }
    };
    state.requests.lock().expect("requests").push(Captured {
        id,
        timestamp: header("webhook-timestamp").unwrap_or_default(),
        signature: header("webhook-signature").unwrap_or_default(),
        authorization: header("authorization"),
        body: body.to_vec(),
        status,
    });
    let status = StatusCode::from_u16(status).expect("status");
    let mut response = (status, "x".repeat(5000)).into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert("retry-after", seconds.parse().expect("header"));
    }
    response
}

/// The role on a store: the worker in its in-process group and the dispatcher, until `stop`.
struct Role {
    bus: InProcessBus,
    worker: Arc<WorkerMetrics>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn settings(schedule_ms: &str) -> WebhookSettings {
    WebhookSettings {
        timeout: Duration::from_secs(15),
        schedule: RetrySchedule::parse_millis(schedule_ms).expect("schedule"),
        per_webhook: 2,
        concurrency: 16,
        claim: Duration::from_secs(30),
        poll: Duration::from_millis(20),
        allow: AllowList::parse("127.0.0.1").expect("allow-list"),
        ..WebhookSettings::default()
    }
}

impl Role {
    /// The role with its configurations in the relational store.
    async fn start(store: &Store, bus: &InProcessBus, settings: WebhookSettings) -> Role {
        Role::start_with(store, Arc::new(store.clone()), bus, settings).await
    }

    async fn start_with(
        store: &Store,
        configs: Arc<dyn WebhookConfigs>,
        bus: &InProcessBus,
        settings: WebhookSettings,
    ) -> Role {
        let webhooks = Webhooks::new(store.clone(), configs, settings).expect("webhooks");
        let worker_config = WorkerConfig {
            attempts: 3,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..WorkerConfig::default()
        };
        let worker = Worker::new(webhooks.handler.clone(), store.clone(), worker_config);
        let subscription = GroupSubscription::in_process(bus, &group_of(webhooks.handler.as_ref()));
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let dispatcher = webhooks.dispatcher;
        let worker_metrics = worker.metrics();
        let tasks = vec![
            tokio::spawn({
                let stopped = until_stopped(stopped.clone());
                async move { worker.run(subscription, stopped).await }
            }),
            tokio::spawn({
                let stopped = until_stopped(stopped);
                async move { dispatcher.run(stopped).await }
            }),
        ];
        Role { bus: bus.clone(), worker: worker_metrics, stop, tasks }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.expect("a role task ended cleanly");
        }
    }

    async fn publish(&self, events: &[Event]) {
        self.bus.publish(events).await.expect("publishing to the in-process bus");
    }
}

async fn store_on(database: &TestDatabase) -> Store {
    let store = Store::connect(&database.url).await.expect("connecting");
    store.migrate().await.expect("migrate");
    store
}

/// A test database on the MongoDB server (`bash .ci/services.sh`), with the webhook configurations in it.
async fn mongo_configs(store: &Store) -> (Documents, Arc<MongoWebhookConfigs>) {
    let url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&url);
    let documents =
        Documents::connect(&url, None, &comet_testkit::mongo_database()).await.expect("connecting to MongoDB");
    let configs = Arc::new(MongoWebhookConfigs::new(&documents, store.clone()));
    (documents, configs)
}

async fn register(configs: &dyn WebhookConfigs, id: &str, url: &str, triggers: &[&str]) -> WebhookRecord {
    let triggers = triggers.iter().map(|name| (*name).to_owned()).collect();
    let webhook = WebhookRecord::new(
        id.to_owned(),
        format!("{id} receiver"),
        url.to_owned(),
        triggers,
        new_secret().expect("secret"),
        now_millis(),
    );
    assert!(configs.create(&webhook, MAX_WEBHOOKS).await.expect("create"), "under the limit");
    webhook
}

fn message_sent(n: i64) -> Event {
    Event {
        id: comet_model::new_id(),
        event_type: EventType::MessageSent,
        time: now_millis(),
        key: "u:alice:bob".to_owned(),
        data: json!({
            "id": format!("m{n}"), "conversationId": "alice_user_bob", "seq": n, "sender": "alice",
            "receiver": "bob", "receiverType": "user", "category": "message", "type": "text",
            "data": { "text": format!("hello {n}") }, "sentAt": now_millis(), "updatedAt": now_millis(),
        }),
    }
}

/// Verifies `captured` with the reference library and `secret`: true when it accepts the signature.
fn reference_library_accepts(secret: &str, captured: &Captured, folder: &Path) -> bool {
    let body_path = folder.join(format!("{}.body", captured.id));
    std::fs::write(&body_path, &captured.body).expect("writing the captured body");
    let script = "import sys\nfrom standardwebhooks import Webhook\n\
        body = open(sys.argv[2], 'rb').read()\n\
        headers = {'webhook-id': sys.argv[3], 'webhook-timestamp': sys.argv[4], 'webhook-signature': sys.argv[5]}\n\
        Webhook(sys.argv[1]).verify(body, headers)\n";
    let output = std::process::Command::new(PYTHON)
        .args(["-c", script, secret])
        .arg(&body_path)
        .args([&captured.id, &captured.timestamp, &captured.signature])
        .output()
        .unwrap_or_else(|error| panic!("running {PYTHON} (run `bash .ci/install-tools.sh`): {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("ModuleNotFoundError"), "standardwebhooks is missing: run `bash .ci/install-tools.sh`");
    output.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_the_envelope_and_signatures_the_reference_library_verifies() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    signed_deliveries(&store, Arc::new(store.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_with_the_configuration_kept_in_mongodb() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    let (documents, configs) = mongo_configs(&store).await;
    signed_deliveries(&store, configs).await;
    assert!(store.get_webhook("signed").await.expect("read").is_none(), "nothing in the relational table");
    documents.drop_database().await.expect("dropping the test database");
}

/// Basic auth and a secret rotation saved through `configs`, seen by the deliveries and the reference library.
async fn signed_deliveries(store: &Store, configs: Arc<dyn WebhookConfigs>) {
    let bus = InProcessBus::new(1024);
    let receiver = Receiver::start(Mode::Ok).await;
    let mut webhook = register(configs.as_ref(), "signed", &receiver.url(), &["message_sent", "group_created"]).await;
    webhook.use_basic_auth = true;
    webhook.username = Some("hook-user".to_owned());
    webhook.password = Some("hook-pass".to_owned());
    assert!(configs.save(&webhook).await.expect("save"));
    let role = Role::start_with(store, configs.clone(), &bus, settings("10")).await;

    let sent = message_sent(1);
    let unsubscribed = Event { event_type: EventType::ReactionAdded, ..message_sent(2) };
    let silent = Event { event_type: EventType::UserCreated, ..message_sent(3) };
    role.publish(&[sent.clone(), unsubscribed, silent]).await;
    wait_for("the message_sent delivery", || async { !receiver.requests().is_empty() }).await;

    let first = receiver.requests().remove(0);
    assert_eq!(first.id, format!("{}_signed", sent.id), "webhook-id is the event id and the webhook id");
    assert_eq!(first.authorization.as_deref(), Some("Basic aG9vay11c2VyOmhvb2stcGFzcw=="), "Basic auth as configured");
    let payload: Value = serde_json::from_slice(&first.body).expect("a JSON body");
    assert_eq!(payload["trigger"], "message_sent");
    assert_eq!(payload["webhook"], "signed");
    assert_eq!(payload["appId"], "");
    assert!(payload.get("region").is_some());
    assert_eq!(payload["data"]["message"]["id"], "m1");
    assert_eq!(payload["data"]["message"]["sentAt"], sent.data["sentAt"].as_i64().expect("ms") / 1000, "seconds");

    let folder = tempfile::tempdir().expect("a folder for captured bodies");
    assert!(reference_library_accepts(&webhook.secret, &first, folder.path()), "the reference library verifies it");
    let other_secret = new_secret().expect("secret");
    assert!(!reference_library_accepts(&other_secret, &first, folder.path()), "and refuses another secret");
    let tampered = Captured { body: b"{\"trigger\":\"message_sent\"}".to_vec(), ..first.clone() };
    assert!(!reference_library_accepts(&webhook.secret, &tampered, folder.path()), "and a changed body");

    // Rotation: while the old secret overlaps, both signatures are sent and either secret verifies.
    let rotated = new_secret().expect("secret");
    let now = now_millis();
    assert!(configs.rotate("signed", &rotated, now + 3_600_000, now).await.expect("rotate"));
    let after_rotation = message_sent(4);
    role.publish(std::slice::from_ref(&after_rotation)).await;
    let id = format!("{}_signed", after_rotation.id);
    wait_for("the delivery after the rotation", || async { receiver.delivered().contains_key(&id) }).await;
    let second = receiver.requests().into_iter().find(|request| request.id == id).expect("captured");
    assert_eq!(second.signature.split(' ').count(), 2, "two signatures during the overlap: {}", second.signature);
    assert!(reference_library_accepts(&rotated, &second, folder.path()), "the new secret verifies");
    assert!(reference_library_accepts(&webhook.secret, &second, folder.path()), "the old one still does");

    assert_eq!(receiver.requests().len(), 2, "no delivery for unsubscribed or trigger-less events");
    role.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_and_rate_limiting_receivers_get_every_event_once_by_webhook_id() {
    let database = TestDatabase::mariadb().await;
    let store = store_on(&database).await;
    let bus = InProcessBus::new(1024);
    let flaky = Receiver::start(Mode::FailFirst(9)).await;
    let limiting = Receiver::start(Mode::TooManyOnce).await;
    register(&store, "flaky", &flaky.url(), &["message_sent"]).await;
    register(&store, "limiting", &limiting.url(), &["message_sent"]).await;
    // Ten attempts of each delivery fail nine times out of ten: a schedule of 12 short waits lets each through.
    let role = Role::start(&store, &bus, settings("5,5,5,5,5,5,5,5,5,5,5,5")).await;

    let events: Vec<Event> = (1..=10).map(message_sent).collect();
    role.publish(&events).await;
    wait_for("every event delivered to both", || async {
        flaky.delivered().len() == events.len() && limiting.delivered().len() == events.len()
    })
    .await;

    for receiver in [&flaky, &limiting] {
        assert!(receiver.delivered().values().all(|count| *count == 1), "each webhook-id succeeded once");
    }
    assert_eq!(flaky.requests().len(), 100, "nine failures and a success per event");
    for event in &events {
        let (delivery, attempts) =
            store.webhook_delivery("flaky", &format!("{}_flaky", event.id)).await.expect("read").expect("delivery");
        assert_eq!(delivery.state, DeliveryState::Delivered);
        assert_eq!(attempts.len(), 10, "the log shows every attempt");
        assert_eq!(attempts.iter().filter(|attempt| attempt.status == Some(500)).count(), 9);
        assert!(attempts.iter().all(|attempt| attempt.response.as_ref().is_some_and(|text| text.len() == 2048)));

        let (_, attempts) = store
            .webhook_delivery("limiting", &format!("{}_limiting", event.id))
            .await
            .expect("read")
            .expect("delivery");
        assert_eq!(attempts.iter().map(|attempt| attempt.status).collect::<Vec<_>>(), [Some(429), Some(200)]);
        let waited = attempts[1].attempted_at - attempts[0].attempted_at;
        assert!(waited >= 1000, "Retry-After: 1 is honoured over the 5 ms schedule (waited {waited} ms)");
    }
    role.stop().await;
    database.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_delay_a_fast_one() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    let bus = InProcessBus::new(1024);
    let gate = Arc::new(Semaphore::new(0));
    let slow = Receiver::start(Mode::Gated(gate.clone())).await;
    let fast = Receiver::start(Mode::Ok).await;
    // The slow webhook sorts first, so its deliveries come first in every due list.
    register(&store, "a-slow", &slow.url(), &["message_sent"]).await;
    register(&store, "b-fast", &fast.url(), &["message_sent"]).await;
    let role = Role::start(&store, &bus, settings("10")).await;

    let events: Vec<Event> = (1..=20).map(message_sent).collect();
    role.publish(&events).await;
    wait_for("the fast receiver to get all 20", || async { fast.delivered().len() == 20 }).await;
    let slow_attempts = slow.state.attempts.lock().expect("attempts").values().sum::<u32>();
    assert!(slow_attempts <= 2, "the slow webhook holds its two slots only ({slow_attempts} requests)");

    gate.add_permits(20);
    wait_for("the slow receiver to get all 20 once let through", || async { slow.delivered().len() == 20 }).await;
    role.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_failing_for_the_whole_window_is_disabled_with_an_event() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    disabled_after_the_window(&store, Arc::new(store.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_kept_in_mongodb_is_disabled_with_an_event() {
    let database = TestDatabase::mariadb().await;
    let store = store_on(&database).await;
    let (documents, configs) = mongo_configs(&store).await;
    disabled_after_the_window(&store, configs).await;
    documents.drop_database().await.expect("dropping the test database");
    database.finish().await;
}

/// A receiver that is always down: the webhook in `configs` is disabled once the window has passed.
async fn disabled_after_the_window(store: &Store, configs: Arc<dyn WebhookConfigs>) {
    let bus = InProcessBus::new(1024);
    let down = Receiver::start(Mode::Down).await;
    register(configs.as_ref(), "down", &down.url(), &["message_sent"]).await;
    let mut settings = settings(&["20"; 200].join(","));
    settings.disable_after = Duration::from_millis(300);
    let role = Role::start_with(store, configs.clone(), &bus, settings).await;

    role.publish(&[message_sent(1)]).await;
    wait_for("the webhook to be disabled", || async {
        configs.get("down").await.expect("read").is_some_and(|webhook| !webhook.enabled)
    })
    .await;
    let webhook = configs.get("down").await.expect("read").expect("webhook");
    assert!(webhook.disabled_reason.is_some_and(|reason| reason.contains("failed")));
    // MongoDB's configurations write the event just after the document (docs/webhooks.md): wait for it.
    let disabled_events = async || {
        let events = store.unpublished_events(100).await.expect("outbox");
        events.into_iter().filter(|event| event.event_type == EventType::WebhookDisabled).collect::<Vec<Event>>()
    };
    wait_for("the webhook.disabled event", || async { !disabled_events().await.is_empty() }).await;
    let disabled = disabled_events().await;
    assert_eq!(disabled.len(), 1, "one webhook.disabled event");
    assert_eq!(disabled[0].data["id"], "down");

    // Nothing more is sent to a disabled webhook: its pending delivery ends without another request.
    wait_for("the pending delivery to end", || async {
        let deliveries = store.webhook_deliveries("down", Default::default(), 10).await.expect("read");
        deliveries.iter().all(|delivery| delivery.state == DeliveryState::Failed)
    })
    .await;
    let sent = down.requests().len();
    role.publish(&[message_sent(2)]).await;
    wait_for("the second event handled", || async { role.worker.done() >= 2 }).await;
    role.stop().await;
    assert_eq!(down.requests().len(), sent, "a disabled webhook gets nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_sends_again_with_the_same_webhook_id() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    let bus = InProcessBus::new(1024);
    let receiver = Receiver::start(Mode::Ok).await;
    register(&store, "replayed", &receiver.url(), &["message_sent"]).await;
    let role = Role::start(&store, &bus, settings("10")).await;
    let events: Vec<Event> = (1..=3).map(message_sent).collect();
    role.publish(&events).await;
    wait_for("three deliveries", || async { receiver.delivered().len() == 3 }).await;

    let first = format!("{}_replayed", events[0].id);
    let now = now_millis();
    assert_eq!(store.replay_webhook_deliveries("replayed", Some(&first), 0, 0, now).await.expect("replay"), 1);
    wait_for("the replayed delivery", || async { receiver.delivered().get(&first) == Some(&2) }).await;
    assert_eq!(store.replay_webhook_deliveries("other", Some(&first), 0, 0, now).await.expect("replay"), 0);

    assert_eq!(store.replay_webhook_deliveries("replayed", None, 0, now_millis(), now).await.expect("replay"), 3);
    wait_for("the range replayed", || async { receiver.delivered().values().sum::<usize>() == 7 }).await;
    // The receiver counts a delivery when it answers; the dispatcher records it once the answer is back.
    let (delivery, attempts) = recorded(&store, "replayed", &first, 3).await;
    assert_eq!((delivery.state, attempts.len()), (DeliveryState::Delivered, 3), "the log keeps every attempt");
    role.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_retries_survive_a_restart_and_resume_at_their_time() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    let bus = InProcessBus::new(1024);
    let receiver = Receiver::start(Mode::FailFirst(1)).await;
    register(&store, "patient", &receiver.url(), &["message_sent"]).await;
    let role = Role::start(&store, &bus, settings("1500")).await;
    let event = message_sent(1);
    let id = format!("{}_patient", event.id);
    role.publish(std::slice::from_ref(&event)).await;
    wait_for("the first, failed attempt", || async { !receiver.requests().is_empty() }).await;
    wait_for("the failure recorded", || async {
        store.webhook_delivery("patient", &id).await.expect("read").is_some_and(|(delivery, _)| delivery.attempts == 1)
    })
    .await;
    role.stop().await;

    // A new process on the same database: the retry is due at its time, not lost and not early.
    let store = Store::connect(&database.url).await.expect("reconnecting");
    let role = Role::start(&store, &InProcessBus::new(16), settings("1500")).await;
    wait_for("the retry after the restart", || async { receiver.delivered().contains_key(&id) }).await;
    let (delivery, attempts) = recorded(&store, "patient", &id, 2).await;
    assert_eq!(delivery.state, DeliveryState::Delivered);
    let waited = attempts[1].attempted_at - attempts[0].attempted_at;
    assert!(waited >= 1350, "the retry waited its scheduled 1.5 s less jitter (waited {waited} ms)");
    role.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_refuses_private_targets_when_checked_and_when_connecting() {
    let guard = Guard::default();
    for url in [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
    ] {
        let refused = guard.check(url).await.expect_err(url);
        assert!(matches!(refused, GuardError::Forbidden { .. }), "{url}: {refused}");
    }

    // A webhook written past the API (or whose name started resolving to loopback later) is refused when the
    // dispatcher connects: the resolver it connects through checks every address.
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    let bus = InProcessBus::new(1024);
    let receiver = Receiver::start(Mode::Ok).await;
    let url = format!("https://localhost:{}/hook", receiver.address.port());
    register(&store, "sneaky", &url, &["message_sent"]).await;
    let mut settings = settings("10");
    settings.allow = AllowList::default();
    let role = Role::start(&store, &bus, settings).await;
    let event = message_sent(1);
    role.publish(std::slice::from_ref(&event)).await;
    let id = format!("{}_sneaky", event.id);
    wait_for("the refused delivery to fail", || async {
        store
            .webhook_delivery("sneaky", &id)
            .await
            .expect("read")
            .is_some_and(|(d, _)| d.state == DeliveryState::Failed)
    })
    .await;
    let (_, attempts) = store.webhook_delivery("sneaky", &id).await.expect("read").expect("delivery");
    assert!(
        attempts.iter().all(|attempt| attempt.error.as_ref().is_some_and(|error| error.contains("SSRF guard"))),
        "{attempts:?}"
    );
    assert!(receiver.requests().is_empty(), "nothing reached the loopback receiver");
    role.stop().await;
}
