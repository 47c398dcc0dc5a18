//! The role end to end on a real store (SQLite), real events from its outbox, and the local FCM server of
//! tests/support: who gets a push and who not (logged with the reason), tokens cleaned up on `UNREGISTERED`,
//! 429 retried after its `Retry-After`, edits sharing the message's collapse id, and a replica stopped
//! mid-fan-out whose pushes another sends after the claims expire.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use comet_cluster::Cluster;
use comet_model::{
    Category, ConversationId, Event, EventType, GroupType, Guid, Millis, NewGroup, NewMember, NewMessage, NewUser,
    ReceiverType, Scope, Uid, now_millis,
};
use comet_notifications::preferences::Preferences;
use comet_notifications::{
    Clock, NotificationSettings, Notifications, PreferenceStore, Presence, ProviderConfig, token_hash,
};
use comet_store::{LogEntry, LogFilter, ProviderRecord, PushToken, Store};
use comet_testkit::TestDatabase;
use comet_worker::{Handler, Outcome};
use support::{FcmServer, TestClock};

fn uid(text: &str) -> Uid {
    Uid::parse(text).expect("uid")
}

struct Bed {
    _database: TestDatabase,
    _secrets: tempfile::TempDir,
    store: Store,
    fcm: FcmServer,
    clock: Arc<TestClock>,
    settings: NotificationSettings,
}

impl Bed {
    async fn new() -> Bed {
        Bed::on(TestDatabase::sqlite()).await
    }

    async fn on(database: TestDatabase) -> Bed {
        let store = Store::connect(&database.url).await.expect("connecting");
        store.migrate().await.expect("migrate");
        let fcm = FcmServer::start().await;
        let secrets = tempfile::tempdir().expect("secrets folder");
        std::fs::write(secrets.path().join("fcm.json"), fcm.service_account()).expect("writing the secret");
        let config = ProviderConfig::Fcm { service_account: "fcm.json".to_owned() };
        let at = now_millis();
        let record = ProviderRecord {
            id: "fcm-main".to_owned(),
            kind: "fcm".to_owned(),
            is_default: true,
            body: serde_json::to_string(&config).expect("config"),
            created_at: at,
            updated_at: at,
        };
        store.create_push_provider(&record).await.expect("provider");
        for name in ["alice", "bob", "carol", "dave", "erin"] {
            let user = NewUser {
                uid: uid(name),
                name: format!("{}{}", name[..1].to_uppercase(), &name[1..]),
                avatar: None,
                link: None,
                role: None,
                metadata: None,
            };
            store.create_user(&user, at).await.expect("user");
        }
        let settings = NotificationSettings {
            secrets_dir: secrets.path().to_owned(),
            fcm_url: fcm.url.clone(),
            poll: Duration::from_millis(50),
            ..NotificationSettings::default()
        };
        Bed { _database: database, _secrets: secrets, store, fcm, clock: TestClock::at(at), settings }
    }

    async fn token(&self, owner: &str, value: &str) {
        let at = now_millis();
        let token = PushToken {
            id: format!("t-{value}"),
            uid: uid(owner),
            session: format!("session-{value}"),
            platform: "android".to_owned(),
            provider_id: "fcm-main".to_owned(),
            token: value.to_owned(),
            token_hash: token_hash(value),
            created_at: at,
            updated_at: at,
        };
        self.store.register_push_token(&token, 100).await.expect("token");
    }

    /// The role with `online` users holding a socket in this process.
    fn notifications(&self, online: &[&str], settings: NotificationSettings) -> Notifications {
        let online: HashSet<Uid> = online.iter().map(|name| uid(name)).collect();
        let cluster = Arc::new(Cluster::local("node-1".to_owned(), Duration::from_secs(30)));
        let presence = Presence::new(cluster, Arc::new(move |user: &Uid| online.contains(user)));
        let clock: Arc<dyn Clock> = self.clock.clone();
        Notifications::new(self.store.clone(), Arc::new(self.store.clone()), presence, settings, clock)
    }

    /// The outbox events of `kind` not handed out yet, marked as handed out.
    async fn events(&self, kind: EventType) -> Vec<Event> {
        let events = self.store.unpublished_events(1000).await.expect("events");
        let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
        self.store.mark_published(&ids, now_millis()).await.expect("mark");
        events.into_iter().filter(|event| event.event_type == kind).collect()
    }

    async fn log(&self, owner: &str) -> Vec<LogEntry> {
        let filter = LogFilter { uid: Some(owner.to_owned()), limit: 100, ..LogFilter::default() };
        self.store.notification_log(&filter).await.expect("log")
    }

    async fn group(&self, guid: &str, members: &[&str]) -> Guid {
        let guid = Guid::parse(guid).expect("guid");
        let group = NewGroup {
            guid: guid.clone(),
            name: "Hikers".to_owned(),
            group_type: GroupType::Public,
            password_hash: None,
            description: None,
            icon: None,
            owner: uid("alice"),
            metadata: None,
        };
        self.store.create_group(&group, now_millis()).await.expect("group");
        let members: Vec<NewMember> =
            members.iter().map(|name| NewMember { uid: uid(name), scope: Scope::Participant }).collect();
        self.store.add_members(&guid, &members, now_millis()).await.expect("members");
        guid
    }

    async fn send(
        &self,
        from: &str,
        conversation: ConversationId,
        receiver: &str,
        kind: ReceiverType,
        text: &str,
    ) -> String {
        let message = NewMessage {
            conversation_id: conversation,
            sender: uid(from),
            receiver: receiver.to_owned(),
            receiver_type: kind,
            category: Category::Message,
            message_type: "text".to_owned(),
            data: serde_json::json!({ "text": text }),
            muid: None,
            parent_id: None,
            tags: Vec::new(),
        };
        self.store.send_message(&message, now_millis()).await.expect("send").0.id
    }
}

/// Waits up to 10 s for `condition`.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reasons(log: &[LogEntry]) -> Vec<(String, String)> {
    log.iter().map(|entry| (entry.outcome.clone(), entry.reason.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_members_get_one_push_online_ones_none_and_dead_tokens_are_deleted() {
    fan_out_and_answers(Bed::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_mariadb() {
    fan_out_and_answers(Bed::on(TestDatabase::mariadb().await).await).await;
}

async fn fan_out_and_answers(bed: Bed) {
    bed.token("bob", "tok-bob").await;
    bed.token("carol", "gone-carol").await;
    bed.token("dave", "tok-dave").await;
    bed.token("alice", "tok-alice").await;
    let role = bed.notifications(&["dave"], bed.settings.clone());

    let direct = bed
        .send("alice", ConversationId::direct(&uid("alice"), &uid("bob")), "bob", ReceiverType::User, "hi bob")
        .await;
    let guid = bed.group("hikers", &["alice", "bob", "carol", "dave", "erin"]).await;
    let grouped = bed.send("alice", ConversationId::group(&guid), "hikers", ReceiverType::Group, "trail at 9").await;
    let sent = bed.events(EventType::MessageSent).await;
    assert_eq!(sent.len(), 2);
    for event in &sent {
        assert_eq!(role.handler.handle(event).await, Outcome::Done);
    }
    eventually("bob's two pushes and carol's refusal", async || {
        let attempts = bed.fcm.state.attempts.lock().expect("lock").clone();
        attempts.iter().filter(|token| *token == "tok-bob").count() == 2 && attempts.contains(&"gone-carol".to_owned())
    })
    .await;
    eventually("the answers recorded", async || bed.store.pending_notification_pushes().await.expect("pending") == 0)
        .await;

    let delivered = bed.fcm.state.delivered.lock().expect("lock").clone();
    let to_bob: Vec<&serde_json::Value> = delivered.iter().filter(|message| message["token"] == "tok-bob").collect();
    assert_eq!(to_bob.len(), 2, "one push per message");
    let direct_push = to_bob.iter().find(|message| message["data"]["messageId"] == direct.as_str()).expect("direct");
    assert_eq!(direct_push["notification"]["title"], "Alice");
    assert_eq!(direct_push["notification"]["body"], "hi bob");
    assert_eq!(direct_push["android"]["collapse_key"], direct.as_str());
    let group_push = to_bob.iter().find(|message| message["data"]["messageId"] == grouped.as_str()).expect("group");
    assert_eq!(group_push["notification"]["title"], "Alice @ Hikers");
    assert_eq!(group_push["apns"]["payload"]["aps"]["badge"], 2, "the badge is bob's unread count");
    assert!(!bed.fcm.delivered_tokens().iter().any(|token| token == "tok-dave" || token == "tok-alice"));

    assert_eq!(reasons(&bed.log("dave").await), [("skipped".to_owned(), "online".to_owned())]);
    assert_eq!(reasons(&bed.log("erin").await), [("skipped".to_owned(), "no_token".to_owned())]);
    assert_eq!(reasons(&bed.log("carol").await), [("failed".to_owned(), "unregistered".to_owned())]);
    assert!(bed.log("alice").await.is_empty(), "the sender is not a recipient");
    let bob = bed.log("bob").await;
    assert_eq!(bob.len(), 2);
    assert!(bob.iter().all(|entry| entry.outcome == "sent" && entry.status == Some(200)));
    assert!(bed.store.push_tokens_of(&[uid("carol")]).await.expect("tokens").is_empty(), "UNREGISTERED deletes it");

    // Pushed to online users too when configured so.
    let policy = comet_notifications::decision::Policy { push_to_online: true, ..Default::default() };
    let eager = bed.notifications(&["dave"], NotificationSettings { policy, ..bed.settings.clone() });
    bed.send("alice", ConversationId::group(&guid), "hikers", ReceiverType::Group, "again").await;
    for event in bed.events(EventType::MessageSent).await {
        assert_eq!(eager.handler.handle(&event).await, Outcome::Done);
    }
    eventually("dave's push", async || bed.fcm.delivered_tokens().contains(&"tok-dave".to_owned())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutes_dnd_and_mentions_decide_and_edits_share_the_collapse_id() {
    let bed = Bed::new().await;
    for (owner, token) in [("bob", "tok-bob"), ("carol", "tok-carol"), ("dave", "tok-dave")] {
        bed.token(owner, token).await;
    }
    let guid = bed.group("hikers", &["alice", "bob", "carol", "dave"]).await;
    let key = ConversationId::group(&guid).key().to_owned();
    let now = bed.clock.now();
    let preferences: &dyn PreferenceStore = &bed.store;
    preferences.mute(&uid("bob"), &key, now + 3_600_000).await.expect("mute");
    let dnd = Preferences { dnd: Some(true), ..Preferences::default() };
    preferences.save_preferences(&uid("carol"), &dnd, now).await.expect("dnd");
    let role = bed.notifications(&[], bed.settings.clone());

    let first = bed.send("alice", ConversationId::group(&guid), "hikers", ReceiverType::Group, "plain").await;
    let second = bed
        .send("alice", ConversationId::group(&guid), "hikers", ReceiverType::Group, "<@uid:carol> and <@uid:bob>?")
        .await;
    for event in bed.events(EventType::MessageSent).await {
        assert_eq!(role.handler.handle(&event).await, Outcome::Done);
    }
    let edit = comet_model::MessageEdit { data: Some(serde_json::json!({"text": "plain, edited"})), tags: None };
    bed.store.edit_message(&first, &edit, Some(&uid("alice")), now_millis()).await.expect("edit");
    for event in bed.events(EventType::MessageEdited).await {
        assert_eq!(role.handler.handle(&event).await, Outcome::Done);
    }
    eventually("five pushes", async || bed.fcm.state.delivered.lock().expect("lock").len() == 5).await;
    let delivered = bed.fcm.state.delivered.lock().expect("lock").clone();
    let of = |token: &str| -> Vec<(String, String)> {
        delivered
            .iter()
            .filter(|message| message["token"] == token)
            .map(|message| {
                (
                    message["android"]["collapse_key"].as_str().unwrap_or_default().to_owned(),
                    message["notification"]["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let mut dave = of("tok-dave");
    dave.sort();
    let mut expected = vec![(first.clone(), "plain".to_owned()), (first.clone(), "plain, edited".to_owned())];
    expected.push((second.clone(), "<@uid:carol> and <@uid:bob>?".to_owned()));
    expected.sort();
    assert_eq!(dave, expected, "the edit carries the message's collapse id, so it replaces the first push");
    assert_eq!(of("tok-bob"), [(second.clone(), "<@uid:carol> and <@uid:bob>?".to_owned())], "muted, but mentioned");
    assert_eq!(of("tok-carol"), [(second, "<@uid:carol> and <@uid:bob>?".to_owned())], "DND, but mentioned");
    let bob = reasons(&bed.log("bob").await);
    assert_eq!(bob.iter().filter(|(_, reason)| reason == "muted").count(), 2, "the message and its edit: {bob:?}");
    let carol = reasons(&bed.log("carol").await);
    assert_eq!(carol.iter().filter(|(_, reason)| reason == "dnd").count(), 2, "{carol:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_push_is_retried_after_its_retry_after() {
    let bed = Bed::new().await;
    bed.token("bob", "throttle-bob").await;
    let role = bed.notifications(&[], bed.settings.clone());
    bed.send("alice", ConversationId::direct(&uid("alice"), &uid("bob")), "bob", ReceiverType::User, "hi").await;
    for event in bed.events(EventType::MessageSent).await {
        assert_eq!(role.handler.handle(&event).await, Outcome::Done);
    }
    eventually("the 429", async || bed.fcm.state.attempts.lock().expect("lock").len() == 1).await;
    let due_after = |at: Millis| {
        let store = bed.store.clone();
        async move { store.due_notification_pushes(at, 10).await.expect("due").len() }
    };
    eventually("the push rescheduled", async || due_after(bed.clock.now() + 2_000).await == 1).await;
    assert_eq!(due_after(bed.clock.now() + 1_999).await, 0, "not before the Retry-After of 2 s");
    assert_eq!(role.sender.poll_once().await, 0);
    bed.clock.advance(2_000);
    assert_eq!(role.sender.poll_once().await, 1);
    eventually("the retry delivered", async || bed.fcm.delivered_tokens() == ["throttle-bob"]).await;
    eventually("logged", async || reasons(&bed.log("bob").await) == [("sent".to_owned(), "delivered".to_owned())])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_mid_fan_out_misses_nobody_once_its_claims_expire() {
    let bed = Bed::new().await;
    let members: Vec<String> = (0..40).map(|n| format!("m{n:02}")).collect();
    for name in &members {
        let user = NewUser { uid: uid(name), name: name.clone(), avatar: None, link: None, role: None, metadata: None };
        bed.store.create_user(&user, now_millis()).await.expect("user");
        bed.token(name, &format!("tok-{name}")).await;
    }
    let mut everyone: Vec<&str> = members.iter().map(String::as_str).collect();
    everyone.push("alice");
    let guid = bed.group("crowd", &everyone).await;
    let message = bed.send("alice", ConversationId::group(&guid), "crowd", ReceiverType::Group, "all here?").await;
    let events = bed.events(EventType::MessageSent).await;

    // The first replica runs on its own runtime, one request at a time (each held 50 ms by the server), and
    // is stopped after a few deliveries.
    bed.fcm.state.delay_ms.store(50, std::sync::atomic::Ordering::SeqCst);
    let slow = NotificationSettings { per_provider: 1, ..bed.settings.clone() };
    let first = bed.notifications(&[], slow);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let handler = first.handler.clone();
    let event = events[0].clone();
    let outcome = runtime.spawn(async move { handler.handle(&event).await }).await.expect("handled");
    assert_eq!(outcome, Outcome::Done);
    eventually("a few deliveries", async || bed.fcm.state.delivered.lock().expect("lock").len() >= 3).await;
    runtime.shutdown_background();
    bed.fcm.state.delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let before = bed.fcm.state.delivered.lock().expect("lock").len();
    assert!(before < members.len(), "stopped mid-fan-out ({before} of {})", members.len());

    // The event is handed to another replica (the first never committed it): nothing new is made, and the
    // pushes still owed wait for their claims.
    let second = bed.notifications(&[], bed.settings.clone());
    assert_eq!(second.handler.handle(&events[0]).await, Outcome::Done);
    assert_eq!(second.sender.poll_once().await, 0, "claimed by the stopped replica");
    bed.clock.advance(61_000);
    assert!(second.sender.poll_once().await > 0);
    eventually("every member pushed", async || {
        let tokens: HashSet<String> = bed.fcm.delivered_tokens().into_iter().collect();
        members.iter().all(|name| tokens.contains(&format!("tok-{name}")))
    })
    .await;
    eventually("nothing owed", async || bed.store.pending_notification_pushes().await.expect("pending") == 0).await;
    let delivered = bed.fcm.state.delivered.lock().expect("lock").clone();
    assert!(delivered.iter().all(|push| push["android"]["collapse_key"] == message.as_str()), "duplicates collapse");
}
