//! The outbox relay end to end: messages sent through the store arrive on the bus (the in-process bus or
//! Kafka), every one of them, in seq order per conversation; across a crash between publish and mark; and with
//! two relays running at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use comet_bus::relay::{Relay, RelayError, RelaySettings, RelayStats};
use comet_bus::{BusError, Publisher};
use comet_model::{Category, ConversationId, Event, EventType, Message, NewMessage, NewUser, ReceiverType, Uid};
use comet_store::Store;
use futures::future::BoxFuture;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::support::{EVENT_DEADLINE, Sink, TestDb, unique, wait_until};

/// Short intervals so takeovers and retries happen within a test's patience; a small batch so every test
/// crosses several batches.
fn test_settings() -> RelaySettings {
    RelaySettings {
        batch_size: 7,
        poll_interval: Duration::from_millis(20),
        lease_ttl: Duration::from_secs(2),
        standby_interval: Duration::from_millis(50),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        retention: Duration::from_secs(3_600),
        // Only the retention tests run passes (`retention_settings`): elsewhere a pass every few milliseconds
        // would only compete with publishing for SQLite's one connection.
        retention_interval: Duration::from_secs(3_600),
        retention_batch: 4,
        max_attempts: 3,
    }
}

/// [`test_settings`] with a retention pass every 50 ms, keeping events for `retention`.
fn retention_settings(retention: Duration) -> RelaySettings {
    RelaySettings { retention, retention_interval: Duration::from_millis(50), ..test_settings() }
}

// --- delivery -------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_in_process_bus_delivers_every_message_in_seq_order() {
    check_delivery(TestDb::sqlite().await, Sink::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_kafka_delivers_every_message_in_seq_order() {
    check_delivery(TestDb::sqlite().await, Sink::kafka().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_in_process_bus_delivers_every_message_in_seq_order() {
    check_delivery(TestDb::mariadb().await, Sink::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_kafka_delivers_every_message_in_seq_order() {
    check_delivery(TestDb::mariadb().await, Sink::kafka().await).await;
}

/// Messages sent before and while the relay runs all arrive, in seq order per conversation; the outbox drains;
/// the relay stops when asked.
async fn check_delivery(db: TestDb, mut sink: Sink) {
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let mut sent = chat.send_rounds(&store, 1..=5).await;

    let relay = RunningRelay::start(store.clone(), sink.publisher(), "relay-1");
    sent.extend(chat.send_rounds(&store, 6..=10).await);

    let received = sink.collect(|event| chat.owns(event), chat.users.len() + sent.len()).await;
    chat.assert_complete_and_ordered(&received, &sent);
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    // The relay counts a batch after its mark commits, which can be a moment after the backlog reads zero.
    let expected = (chat.users.len() + sent.len()) as u64;
    wait_until("the relay counts every published event", async || relay.stats.published_total() >= expected).await;
    relay.stop().await;
    db.finish().await;
}

// --- waking on commit ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commit_wakes_an_idle_relay_before_its_poll() {
    check_commit_wakes_the_relay(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_commit_wakes_an_idle_relay_before_its_poll() {
    check_commit_wakes_the_relay(TestDb::mariadb().await).await;
}

/// The relay polls once an hour here, so only the wake of a commit through the same store can make it publish
/// within the test's patience: it drains the users' events, finds the outbox empty and waits; then messages are
/// sent, and every one of them arrives in order.
async fn check_commit_wakes_the_relay(db: TestDb) {
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let mut sink = Sink::in_process();
    let settings = RelaySettings { poll_interval: Duration::from_secs(3_600), ..test_settings() };
    let relay = RunningRelay::start_with(store.clone(), sink.publisher(), "relay-woken", settings);
    let created = sink.collect(|event| chat.owns(event), chat.users.len()).await;
    assert_eq!(created.len(), chat.users.len(), "the relay's first round publishes what was there");
    wait_until("the relay found the outbox empty", async || {
        relay.stats.last_batch_size() == 0 && store.outbox_backlog().await.expect("backlog") == 0
    })
    .await;

    let sent = chat.send_rounds(&store, 1..=3).await;
    let received = sink.collect(|event| chat.owns(event), sent.len()).await;
    let mut all = created;
    all.extend(received);
    chat.assert_complete_and_ordered(&all, &sent);
    relay.stop().await;
    db.finish().await;
}

// --- a crash between publish and mark ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_crash_between_publish_and_mark_publishes_again_after_restart() {
    check_crash_between_publish_and_mark(TestDb::sqlite().await, Sink::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_kafka_crash_between_publish_and_mark_publishes_again_after_restart() {
    check_crash_between_publish_and_mark(TestDb::mariadb().await, Sink::kafka().await).await;
}

/// A publisher that really publishes, then never returns: the relay is stuck exactly between "the bus has
/// the batch" and "the outbox marks it published". Aborting the relay's task there is the crash.
struct HangsAfterPublishing {
    inner: Arc<dyn Publisher>,
    published: Arc<Notify>,
    events_published: Arc<AtomicUsize>,
}

impl Publisher for HangsAfterPublishing {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            self.inner.publish(events).await?;
            self.events_published.fetch_add(events.len(), Ordering::SeqCst);
            self.published.notify_one();
            futures::future::pending().await
        })
    }
}

async fn check_crash_between_publish_and_mark(db: TestDb, mut sink: Sink) {
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let sent = chat.send_rounds(&store, 1..=6).await;
    let total = chat.users.len() + sent.len();

    let published = Arc::new(Notify::new());
    let events_published = Arc::new(AtomicUsize::new(0));
    let hanging = HangsAfterPublishing {
        inner: sink.publisher(),
        published: Arc::clone(&published),
        events_published: Arc::clone(&events_published),
    };
    let crashing = RunningRelay::start(db.store().await, Arc::new(hanging), "relay-crashes");
    tokio::time::timeout(EVENT_DEADLINE, published.notified()).await.expect("the first relay published a batch");
    crashing.crash().await;
    let first_batch = events_published.load(Ordering::SeqCst);
    assert_eq!(first_batch, 7, "the crashed relay published one batch");
    assert_eq!(
        store.outbox_backlog().await.expect("backlog"),
        i64::try_from(total).expect("small"),
        "the crashed relay marked nothing"
    );

    // A replacement with another name takes the lease once the crashed relay's has expired.
    let replacement = RunningRelay::start(db.store().await, sink.publisher(), "relay-replacement");
    let received = sink.collect(|event| chat.owns(event), total).await;
    chat.assert_complete_and_ordered(&received, &sent);
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    assert_eq!(
        replacement.stats.published_total(),
        total as u64,
        "the replacement published every event again, the crashed relay's batch included"
    );
    replacement.stop().await;
    db.finish().await;
}

// --- bus errors -----------------------------------------------------------------------------------------------

/// A publisher that hands the batch to the bus and then reports a failure, the first `failures` times: the
/// bus has the events but the relay believes it does not (a lost acknowledgement).
struct LosesAcknowledgements {
    inner: Arc<dyn Publisher>,
    failures_left: AtomicUsize,
}

impl Publisher for LosesAcknowledgements {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            self.inner.publish(events).await?;
            let failing =
                self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1)).is_ok();
            if failing { Err(BusError::Kafka("injected: acknowledgement lost".to_owned())) } else { Ok(()) }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_errors_are_retried_until_every_event_is_published() {
    let db = TestDb::sqlite().await;
    let mut sink = Sink::in_process();
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let sent = chat.send_rounds(&store, 1..=4).await;
    let failing = LosesAcknowledgements { inner: sink.publisher(), failures_left: AtomicUsize::new(3) };

    let relay = RunningRelay::start(store.clone(), Arc::new(failing), "relay-retries");
    let received = sink.collect(|event| chat.owns(event), chat.users.len() + sent.len()).await;
    chat.assert_complete_and_ordered(&received, &sent);
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    assert_eq!(relay.stats.publish_errors_total(), 3, "each failure was counted and retried");
    relay.stop().await;
    db.finish().await;
}

// --- two relays at once ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_relays_lose_nothing_and_keep_order() {
    check_two_relays(TestDb::sqlite().await, Sink::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_kafka_two_relays_lose_nothing_and_keep_order() {
    check_two_relays(TestDb::mariadb().await, Sink::kafka().await).await;
}

/// Two relays on their own connections run while senders write concurrently; one of them holds the lease.
/// Then the holder crashes, more messages are sent, and the other takes over.
async fn check_two_relays(db: TestDb, mut sink: Sink) {
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let first = RunningRelay::start(db.store().await, sink.publisher(), "relay-a");
    let second = RunningRelay::start(db.store().await, sink.publisher(), "relay-b");

    let mut sent = chat.send_concurrently(&store, 1..=10).await;
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    wait_until("exactly one relay holds the lease", async || first.stats.holds_lease() != second.stats.holds_lease())
        .await;
    let (holder, standby) = if first.stats.holds_lease() { (first, second) } else { (second, first) };
    let published_by_standby = standby.stats.published_total();
    holder.crash().await;

    sent.extend(chat.send_concurrently(&store, 11..=20).await);
    let received = sink.collect(|event| chat.owns(event), chat.users.len() + sent.len()).await;
    chat.assert_complete_and_ordered(&received, &sent);
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    wait_until("the standby took over after the crash", async || {
        standby.stats.published_total() > published_by_standby
    })
    .await;
    standby.stop().await;
    db.finish().await;
}

// --- a clean stop hands the lease over at once ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_stopped_holder_hands_the_lease_to_the_standby_at_once() {
    check_clean_handover(TestDb::sqlite().await, Sink::in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_kafka_a_stopped_holder_hands_the_lease_to_the_standby_at_once() {
    check_clean_handover(TestDb::mariadb().await, Sink::kafka().await).await;
}

/// Two relays with a long lease; the holder stops cleanly. The standby publishes a message sent after the stop
/// before the stopped holder's lease (as the leases table recorded it before the stop) would have expired.
async fn check_clean_handover(db: TestDb, mut sink: Sink) {
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let settings = RelaySettings { lease_ttl: Duration::from_secs(10), ..test_settings() };
    let first = RunningRelay::start_with(db.store().await, sink.publisher(), "relay-a", settings.clone());
    let second = RunningRelay::start_with(db.store().await, sink.publisher(), "relay-b", settings);
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    wait_until("exactly one relay holds the lease", async || first.stats.holds_lease() != second.stats.holds_lease())
        .await;
    let (holder, holder_name, standby) =
        if first.stats.holds_lease() { (first, "relay-a", second) } else { (second, "relay-b", first) };
    let lease = store.relay_lease().await.expect("reading the lease").expect("a relay took the lease");
    assert_eq!(lease.owner, holder_name, "the leases table names the holder");
    holder.stop().await;

    let sent = vec![send(&store, &chat.pairs[0].0, &chat.pairs[0].1, 1).await];
    let received = sink.collect(|event| chat.owns(event), chat.users.len() + sent.len()).await;
    let arrived_at = now();
    chat.assert_complete_and_ordered(&received, &sent);
    assert!(
        arrived_at < lease.expires_at,
        "the standby published at {arrived_at}; it must publish before the stopped holder's lease would have expired at {}",
        lease.expires_at
    );
    assert!(standby.stats.holds_lease(), "the standby holds the lease");
    let taken = store.relay_lease().await.expect("reading the lease").expect("a lease row");
    assert_ne!(taken.owner, holder_name, "the leases table names the standby");
    standby.stop().await;
    db.finish().await;
}

// --- dead letters -------------------------------------------------------------------------------------------

/// A publisher that refuses one event for good, as Kafka refuses an oversize one: the events before it in the
/// batch are handed over, it and everything after it are not. It records, call by call, whether the refused
/// event was offered and what was handed over.
struct RefusesOne {
    inner: Arc<dyn Publisher>,
    refused_id: String,
    calls: std::sync::Mutex<Vec<(bool, Vec<Event>)>>,
}

impl Publisher for RefusesOne {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let refused_at = events.iter().position(|event| event.id == self.refused_id);
            let handed = &events[..refused_at.unwrap_or(events.len())];
            self.calls.lock().expect("not poisoned").push((refused_at.is_some(), handed.to_vec()));
            match refused_at {
                None => self.inner.publish(events).await,
                Some(_) => {
                    self.inner.publish(handed).await?;
                    Err(BusError::Rejected {
                        event_id: self.refused_id.clone(),
                        reason: "injected: too large".to_owned(),
                    })
                }
            }
        })
    }
}

/// The refused event is tried `max_attempts` times, the later events of its conversation wait behind it until
/// it is dead-lettered, then they follow in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_refused_event_holds_its_key_until_it_is_dead_lettered() {
    let db = TestDb::sqlite().await;
    let mut sink = Sink::in_process();
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let mut sent = chat.send_rounds(&store, 1..=2).await;
    let (sender, receiver) = &chat.pairs[0];
    let refused = send(&store, sender, receiver, 3).await;
    sent.push(refused.clone());
    sent.extend(chat.send_rounds(&store, 4..=5).await);
    let refused_event = store
        .unpublished_events(1_000)
        .await
        .expect("the outbox")
        .into_iter()
        .find(|event| event.data["id"] == refused.id.as_str())
        .expect("the refused message's event");
    let publisher = Arc::new(RefusesOne {
        inner: sink.publisher(),
        refused_id: refused_event.id.clone(),
        calls: std::sync::Mutex::new(Vec::new()),
    });

    let relay = RunningRelay::start(store.clone(), publisher.clone(), "relay-refused");
    let received = sink.collect(|event| chat.owns(event), chat.users.len() + sent.len() - 1).await;
    chat.assert_arrived_in_order(&received, &sent, Some(&refused));
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;

    let dead = store.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].event, refused_event, "the dead letter is the refused event");
    assert_eq!((dead[0].reason.as_str(), dead[0].attempts), ("injected: too large", 3));
    assert_eq!(relay.stats.dead_letters_total(), 1);
    let calls = publisher.calls.lock().expect("not poisoned").clone();
    let tries: Vec<usize> = (0..calls.len()).filter(|&n| calls[n].0).collect();
    assert_eq!(tries.len(), 3, "the refused event was offered max_attempts times");
    let next_handed: Vec<usize> = (0..calls.len())
        .filter(|&n| {
            calls[n].1.iter().any(|event| event.key == refused_event.key && event.data["seq"] == refused.seq + 1)
        })
        .collect();
    assert!(
        !next_handed.is_empty() && next_handed.iter().all(|later| tries.iter().all(|tried| tried < later)),
        "the next event of its conversation is handed over only after the last try of the refused one: \
         tried in calls {tries:?}, next handed over in {next_handed:?}"
    );
    relay.stop().await;
    db.finish().await;
}

/// A message over the Kafka producer's 1,000,000-byte `message.max.bytes` is refused by the real client every
/// time; it is dead-lettered with the client's reason and everything else reaches the broker in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_kafka_an_oversize_event_is_dead_lettered_and_the_rest_goes_on() {
    let db = TestDb::mariadb().await;
    let mut sink = Sink::kafka().await;
    let store = db.store().await;
    let chat = Chat::create(&store).await;
    let mut sent = chat.send_rounds(&store, 1..=2).await;
    let (sender, receiver) = &chat.pairs[0];
    let oversize = send_data(&store, sender, receiver, serde_json::json!({ "text": "x".repeat(1_100_000) })).await;
    sent.push(oversize.clone());
    sent.extend(chat.send_rounds(&store, 4..=5).await);

    let relay = RunningRelay::start(db.store().await, sink.publisher(), "relay-oversize");
    let received = sink.collect(|event| chat.owns(event), chat.users.len() + sent.len() - 1).await;
    chat.assert_arrived_in_order(&received, &sent, Some(&oversize));
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    let dead = store.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.data["id"], oversize.id.as_str(), "the oversize message's event is the dead letter");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].reason.contains("MessageSizeTooLarge"), "the client's reason is kept: {}", dead[0].reason);
    assert_eq!(store.dead_letter_count().await.expect("count"), 1);
    assert_eq!(relay.stats.dead_letters_total(), 1);
    relay.stop().await;
    db.finish().await;
}

// --- retention ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_published_events_are_kept_for_the_retention_then_deleted() {
    check_retention(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_published_events_are_kept_for_the_retention_then_deleted() {
    check_retention(TestDb::mariadb().await).await;
}

/// A relay with an hour of retention publishes everything and deletes nothing; one with 100 ms deletes every
/// published event, in batches of 4, and reports the rows kept.
async fn check_retention(db: TestDb) {
    let store = db.store().await;
    let mut sink = Sink::in_process();
    let chat = Chat::create(&store).await;
    let sent = chat.send_rounds(&store, 1..=5).await;
    let total = chat.users.len() + sent.len();

    let keeping = RunningRelay::start_with(
        db.store().await,
        sink.publisher(),
        "relay-keeps",
        retention_settings(Duration::from_secs(3_600)),
    );
    let received = sink.collect(|event| chat.owns(event), total).await;
    chat.assert_complete_and_ordered(&received, &sent);
    wait_until("the outbox is drained", async || store.outbox_backlog().await.expect("backlog") == 0).await;
    wait_until("a retention pass counted the rows it keeps", async || {
        keeping.stats.outbox_rows() == Some(total as u64)
    })
    .await;
    assert_eq!(keeping.stats.rows_deleted_total(), 0, "nothing was published an hour ago");
    assert_eq!(store.outbox_rows().await.expect("rows"), i64::try_from(total).expect("small"));
    keeping.stop().await;

    let settings = retention_settings(Duration::from_millis(100));
    let deleting = RunningRelay::start_with(db.store().await, sink.publisher(), "relay-deletes", settings);
    wait_until("every published event is deleted", async || deleting.stats.outbox_rows() == Some(0)).await;
    assert_eq!(deleting.stats.rows_deleted_total(), total as u64, "each event was deleted once");
    assert_eq!(store.outbox_rows().await.expect("rows"), 0);
    deleting.stop().await;
    db.finish().await;
}

// --- settings -------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_relay_refuses_settings_it_cannot_work_with() {
    let db = TestDb::sqlite().await;
    let settings = RelaySettings { batch_size: 0, ..RelaySettings::default() };
    let relay = Relay::new(db.store().await, Sink::in_process().publisher(), "relay".to_owned(), settings);
    let result = relay.run(std::future::pending()).await;
    assert!(
        matches!(result, Err(RelayError::InvalidSetting { setting: "batch_size", .. })),
        "batch_size 0 is refused: {result:?}"
    );
}

// --- fixtures -------------------------------------------------------------------------------------------------

/// A relay running on its own task.
struct RunningRelay {
    stats: Arc<RelayStats>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), RelayError>>,
}

impl RunningRelay {
    fn start(store: Store, publisher: Arc<dyn Publisher>, owner: &str) -> RunningRelay {
        RunningRelay::start_with(store, publisher, owner, test_settings())
    }

    fn start_with(store: Store, publisher: Arc<dyn Publisher>, owner: &str, settings: RelaySettings) -> RunningRelay {
        let relay = Relay::new(store, publisher, owner.to_owned(), settings);
        let stats = relay.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async move {
            // A dropped sender counts as a stop too.
            let _ = stopped.await;
        }));
        RunningRelay { stats, stop, task }
    }

    /// Asks the relay to stop and checks that it does, promptly and cleanly.
    async fn stop(self) {
        self.stop.send(()).expect("the relay is still running");
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the relay stops within 10 s of being asked")
            .expect("the relay task did not panic");
        result.expect("the relay ran without a fatal error");
    }

    /// Kills the relay where it stands, as a crash would: no shutdown, no mark, the lease left to expire.
    async fn crash(self) {
        self.task.abort();
        let ended = self.task.await;
        assert!(ended.is_err_and(|error| error.is_cancelled()), "the relay was still running when it crashed");
    }
}

/// Three users and the three direct conversations between them; names are unique to the test.
struct Chat {
    users: Vec<Uid>,
    /// (sender, receiver) for each conversation.
    pairs: Vec<(Uid, Uid)>,
}

impl Chat {
    async fn create(store: &Store) -> Chat {
        let run = unique("u");
        let mut users = Vec::new();
        for name in ["ann", "bob", "cid"] {
            let uid = Uid::parse(&format!("{name}-{run}")).expect("a valid uid");
            let user = NewUser {
                uid: uid.clone(),
                name: name.to_owned(),
                avatar: None,
                link: None,
                role: None,
                metadata: None,
            };
            store.create_user(&user, now()).await.expect("creating a user");
            users.push(uid);
        }
        let pairs = vec![
            (users[0].clone(), users[1].clone()),
            (users[1].clone(), users[2].clone()),
            (users[2].clone(), users[0].clone()),
        ];
        Chat { users, pairs }
    }

    fn conversations(&self) -> Vec<ConversationId> {
        self.pairs.iter().map(|(sender, receiver)| ConversationId::direct(sender, receiver)).collect()
    }

    /// Whether an event is about this chat: one of its users or conversations.
    fn owns(&self, event: &Event) -> bool {
        match event.event_type {
            EventType::UserCreated => self.users.iter().any(|uid| uid.as_str() == event.key),
            EventType::MessageSent => self.conversations().iter().any(|conversation| conversation.key() == event.key),
            _ => false,
        }
    }

    /// Sends one message per conversation and round, round by round, from one task.
    async fn send_rounds(&self, store: &Store, rounds: std::ops::RangeInclusive<u32>) -> Vec<Message> {
        let mut sent = Vec::new();
        for round in rounds {
            for (sender, receiver) in &self.pairs {
                sent.push(send(store, sender, receiver, round).await);
            }
        }
        sent
    }

    /// Sends `rounds` messages in each direction of each conversation, all directions at once.
    async fn send_concurrently(&self, store: &Store, rounds: std::ops::RangeInclusive<u32>) -> Vec<Message> {
        let mut senders = Vec::new();
        for (first, second) in &self.pairs {
            for (sender, receiver) in [(first.clone(), second.clone()), (second.clone(), first.clone())] {
                let store = store.clone();
                let rounds = rounds.clone();
                senders.push(tokio::spawn(async move {
                    let mut sent = Vec::new();
                    for round in rounds {
                        sent.push(send(&store, &sender, &receiver, round).await);
                    }
                    sent
                }));
            }
        }
        let mut sent = Vec::new();
        for sender in senders {
            sent.extend(sender.await.expect("a sender task"));
        }
        sent
    }

    /// Every user and message event arrived at least once, and the first copy of each message event arrives in
    /// seq order within its conversation (consumers deduplicate on the event id and see exactly this).
    fn assert_complete_and_ordered(&self, received: &[Event], sent: &[Message]) {
        self.assert_arrived_in_order(received, sent, None);
    }

    /// As [`Chat::assert_complete_and_ordered`], except that the `dead` message (dead-lettered) never arrives.
    fn assert_arrived_in_order(&self, received: &[Event], sent: &[Message], dead: Option<&Message>) {
        let mut seen = HashSet::new();
        let mut users = HashSet::new();
        let mut seqs_received: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut messages_received = HashSet::new();
        for event in received {
            if !seen.insert(event.id.clone()) {
                continue;
            }
            match event.event_type {
                EventType::UserCreated => {
                    users.insert(event.key.clone());
                }
                EventType::MessageSent => {
                    let message: Message =
                        serde_json::from_value(event.data.clone()).expect("message.sent carries a message");
                    assert_eq!(
                        message.conversation_id.key(),
                        event.key,
                        "a message event is keyed by its conversation"
                    );
                    seqs_received.entry(event.key.clone()).or_default().push(message.seq);
                    messages_received.insert(message.id);
                }
                _ => {}
            }
        }

        let expected_users: HashSet<String> = self.users.iter().map(|uid| uid.as_str().to_owned()).collect();
        assert_eq!(users, expected_users, "every user.created event arrived");
        let is_dead = |message: &Message| dead.is_some_and(|dead| dead.id == message.id);
        let expected_messages: HashSet<String> =
            sent.iter().filter(|message| !is_dead(message)).map(|message| message.id.clone()).collect();
        assert_eq!(messages_received, expected_messages, "every sent message arrived");
        let mut expected_seqs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for message in sent {
            expected_seqs.entry(message.conversation_id.key().to_owned()).or_default().push(message.seq);
        }
        for seqs in expected_seqs.values_mut() {
            seqs.sort_unstable();
            let count = i64::try_from(seqs.len()).expect("small");
            assert_eq!(*seqs, (1..=count).collect::<Vec<_>>(), "the store gave each conversation seqs 1..n");
        }
        if let Some(dead) = dead {
            let seqs = expected_seqs.get_mut(dead.conversation_id.key()).expect("the dead message was sent");
            seqs.retain(|seq| *seq != dead.seq);
        }
        assert_eq!(seqs_received, expected_seqs, "per conversation, messages arrive in seq order");
    }
}

async fn send(store: &Store, sender: &Uid, receiver: &Uid, round: u32) -> Message {
    send_data(store, sender, receiver, serde_json::json!({ "text": format!("message {round} from {sender}") })).await
}

async fn send_data(store: &Store, sender: &Uid, receiver: &Uid, data: serde_json::Value) -> Message {
    let message = NewMessage {
        conversation_id: ConversationId::direct(sender, receiver),
        sender: sender.clone(),
        receiver: receiver.as_str().to_owned(),
        receiver_type: ReceiverType::User,
        category: Category::Message,
        message_type: "text".to_owned(),
        data,
        muid: None,
        parent_id: None,
        tags: Vec::new(),
    };
    let (stored, created) = store.send_message(&message, now()).await.expect("sending a message");
    assert!(created, "a message without muid is always new");
    stored
}

fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("millis fit in i64")
}
