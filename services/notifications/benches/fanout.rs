//! Push fan-out throughput and decision latency.
//!
//! 1. A 1,000-member group (the sender and 999 recipients, each with one FCM token, nobody online) on a store (SQLite by default,
//!    `BENCH_DATABASE_URL=mysql://…` for MariaDB); `BENCH_MESSAGES` messages (default 5) sent to it, each event
//!    handled by the role (handler + sender, on its own runtime whose threads are named `notify-role`) and pushed
//!    to the local FCM server of tests/support (its own runtime, `provider` threads, which verifies every access
//!    token). Reported: pushes/s from the first event handed to the handler to the last push the server
//!    accepted, and the CPU of the role's threads plus SQLite's worker thread, per second of the run.
//! 2. The decision alone: `decide` for recipients with quiet hours in a time zone (the costly case: a zone
//!    conversion), `BENCH_DECISIONS` calls (default 200,000), p50/p99/max per call.
//!
//! `cargo bench -p comet-notifications --bench fanout`; docs/benchmarks.md has the figures and the machine.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet_cluster::Cluster;
use comet_model::{
    Category, ConversationId, EventType, GroupType, Guid, NewGroup, NewMember, NewMessage, NewUser, ReceiverType,
    Scope, Uid, now_millis,
};
use comet_notifications::decision::{Facts, Happening, Policy, decide};
use comet_notifications::preferences::{Defaults, Effective, Preferences, QuietHours, QuietSpan};
use comet_notifications::{
    Clock, NotificationSettings, Notifications, Presence, ProviderConfig, SystemClock, token_hash,
};
use comet_store::{ProviderRecord, PushToken, Store};
use comet_testkit::{env_number, threads_cpu_seconds};
use comet_worker::Handler;

const MEMBERS: usize = 1000;

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build().unwrap()
}

fn uid(text: &str) -> Uid {
    Uid::parse(text).unwrap()
}

fn fan_out() {
    let messages = env_number("BENCH_MESSAGES", 5) as usize;
    let provider_runtime = runtime("provider", 1);
    let role_runtime = runtime("notify-role", 1);
    let fcm = provider_runtime.block_on(support::FcmServer::start());
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("fcm.json"), fcm.service_account()).unwrap();
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", folder.path().join("bench.db").display()));
    let (store, guid) = role_runtime.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let at = now_millis();
        let config = ProviderConfig::Fcm { service_account: "fcm.json".to_owned() };
        let record = ProviderRecord {
            id: "fcm-bench".to_owned(),
            kind: "fcm".to_owned(),
            is_default: true,
            body: serde_json::to_string(&config).unwrap(),
            created_at: at,
            updated_at: at,
        };
        store.create_push_provider(&record).await.unwrap();
        let mut members = Vec::new();
        // MEMBERS members in all, the sender (the owner) among them: the largest group that gets pushes.
        for n in 0..MEMBERS {
            let name = format!("u{n:04}");
            let user =
                NewUser { uid: uid(&name), name: name.clone(), avatar: None, link: None, role: None, metadata: None };
            store.create_user(&user, at).await.unwrap();
            let token = format!("bench-token-{n:04}");
            let push_token = PushToken {
                id: format!("t{n:04}"),
                uid: uid(&name),
                session: "phone".to_owned(),
                platform: "android".to_owned(),
                provider_id: "fcm-bench".to_owned(),
                token_hash: token_hash(&token),
                token,
                created_at: at,
                updated_at: at,
            };
            store.register_push_token(&push_token, 100).await.unwrap();
            if n > 0 {
                members.push(NewMember { uid: uid(&name), scope: Scope::Participant });
            }
        }
        let guid = Guid::parse("bench-group").unwrap();
        let group = NewGroup {
            guid: guid.clone(),
            name: "Bench".to_owned(),
            group_type: GroupType::Public,
            password_hash: None,
            description: None,
            icon: None,
            owner: uid("u0000"),
            metadata: None,
        };
        store.create_group(&group, at).await.unwrap();
        for chunk in members.chunks(100) {
            store.add_members(&guid, chunk, at).await.unwrap();
        }
        (store, guid)
    });
    let settings = NotificationSettings {
        secrets_dir: folder.path().to_owned(),
        fcm_url: fcm.url.clone(),
        ..NotificationSettings::default()
    };
    let role = role_runtime.block_on(async {
        let cluster = Arc::new(Cluster::local("bench".to_owned(), Duration::from_secs(30)));
        let presence = Presence::new(cluster, Arc::new(|_: &Uid| false));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Notifications::new(store.clone(), Arc::new(store.clone()), presence, settings, clock)
    });
    let events = role_runtime.block_on(async {
        let _ = store.unpublished_events(100_000).await.unwrap();
        for n in 0..messages {
            let message = NewMessage {
                conversation_id: ConversationId::group(&guid),
                sender: uid("u0000"),
                receiver: guid.as_str().to_owned(),
                receiver_type: ReceiverType::Group,
                category: Category::Message,
                message_type: "text".to_owned(),
                data: serde_json::json!({ "text": format!("bench message {n}") }),
                muid: None,
                parent_id: None,
                tags: Vec::new(),
            };
            store.send_message(&message, now_millis()).await.unwrap();
        }
        let all = store.unpublished_events(100_000).await.unwrap();
        all.into_iter().filter(|event| event.event_type == EventType::MessageSent).collect::<Vec<_>>()
    });
    assert_eq!(events.len(), messages);
    let recipients = MEMBERS - 1;
    let expected = messages * recipients;
    let cpu_before = threads_cpu_seconds(&["notify-role", "sqlx-sqlite"]);
    let started = Instant::now();
    let handler = role.handler.clone();
    let sender = role.sender.clone();
    role_runtime.spawn(async move { sender.run(std::future::pending()).await });
    role_runtime.block_on(async move {
        for event in &events {
            handler.handle(event).await;
        }
    });
    let handled = started.elapsed();
    while fcm.state.delivered.lock().unwrap().len() < expected {
        if started.elapsed() > Duration::from_secs(120) {
            let delivered = fcm.state.delivered.lock().unwrap().len();
            let filter = comet_store::LogFilter { limit: 5, ..comet_store::LogFilter::default() };
            let log = provider_runtime.block_on(store.notification_log(&filter)).unwrap();
            panic!("{delivered} of {expected} pushes arrived; the log ends with {log:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    let cpu = threads_cpu_seconds(&["notify-role", "sqlx-sqlite"]) - cpu_before;
    let tokens: HashSet<String> = fcm.delivered_tokens().into_iter().collect();
    assert_eq!(tokens.len(), recipients, "every member but the sender pushed");
    let exchanges = fcm.state.token_requests.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "fan-out: {messages} messages to a {MEMBERS}-member group = {expected} pushes in {:.2} s ({:.0} pushes/s); \
         handler done after {:.2} s; role CPU {:.2} s ({:.2} cores during the run); {exchanges} token exchange(s)",
        took.as_secs_f64(),
        expected as f64 / took.as_secs_f64(),
        handled.as_secs_f64(),
        cpu,
        cpu / took.as_secs_f64(),
    );
    drop(role_runtime);
    drop(provider_runtime);
}

fn decisions() {
    let calls = env_number("BENCH_DECISIONS", 200_000) as usize;
    let preferences = Preferences {
        quiet_hours: Some(QuietHours {
            time_zone: "America/New_York".to_owned(),
            spans: ["monday", "tuesday", "wednesday", "thursday", "friday"]
                .iter()
                .map(|day| QuietSpan { day: (*day).to_owned(), from: "2200".to_owned(), to: "0700".to_owned() })
                .collect(),
        }),
        ..Preferences::default()
    };
    let effective = Effective::of(&Defaults::default(), &preferences);
    let policy = Policy::default();
    let now = now_millis();
    let mut took = Vec::with_capacity(calls);
    let mut sent = 0usize;
    for n in 0..calls {
        let facts = Facts {
            happening: Happening::Message { custom: false, flagged: false },
            is_sender: false,
            is_member: true,
            group_members: Some(1000),
            online: false,
            mentioned: n % 10 == 0,
            muted_until: None,
            preferences: &effective,
            now: now + (n as i64) * 60_000,
        };
        let started = Instant::now();
        let verdict = decide(&policy, &facts);
        took.push(started.elapsed());
        sent += usize::from(verdict.is_ok());
    }
    took.sort();
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q) as usize];
    println!(
        "decision: {calls} calls with quiet hours in America/New_York: p50 {:?}, p99 {:?}, max {:?} ({sent} pushed)",
        at(0.5),
        at(0.99),
        took[took.len() - 1],
    );
}

fn main() {
    decisions();
    fan_out();
}
