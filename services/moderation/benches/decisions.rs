//! Custom API decisions per second, and the CPU the moderation role spends on them: held messages on MariaDB
//! decided by the role's handler (`Decider`, the same code the worker base calls) against a local adapter
//! server that answers at once, `BENCH_CONCURRENCY` decisions in flight (the worker base's
//! `COMET_WORKER_CONCURRENCY`, default 16).
//!
//! The adapter runs on a thread of its own, whose CPU is measured and taken out of the process's, so "role CPU"
//! is the handler, its HTTP client and its database client; MariaDB's own CPU is reported beside it.
//!
//! `cargo bench -p comet-moderation --bench decisions` (knobs: `BENCH_MESSAGES` 3000, `BENCH_CONCURRENCY` 16,
//! `BENCH_CONTEXT` 0..10 earlier messages per request); docs/benchmarks.md has the figures and the machine.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use comet_model::{ConversationId, Event, EventType, NewMessage, ReceiverType, Uid, new_id};
use comet_moderation::{CustomApi, CustomApiConfig, Decider, DecisionMetrics};
use comet_store::Store;
use comet_webhooks::{AllowList, Guard};
use comet_worker::Handler;
use serde_json::json;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) of a `/proc/.../stat` line, at 100 ticks per second (Linux's USER_HZ).
fn cpu_seconds(stat: &str) -> f64 {
    // The fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th after the command.
    (ticks(11) + ticks(12)) / 100.0
}

fn stat_of(path: &str) -> f64 {
    std::fs::read_to_string(path).map(|text| cpu_seconds(&text)).unwrap_or(0.0)
}

fn mariadb_cpu() -> Option<f64> {
    let output = std::process::Command::new("pidof").arg("mariadbd").output().ok()?;
    let pid = String::from_utf8_lossy(&output.stdout).split_whitespace().next()?.to_owned();
    Some(stat_of(&format!("/proc/{pid}/stat")))
}

/// The adapter: answers every request at once, not matching. On its own thread and runtime; the channel gets
/// its address, and the thread's CPU seconds when `stop` fires.
fn adapter() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, std::sync::mpsc::Receiver<f64>) {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (cpu_tx, cpu_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/moderate",
                axum::routing::post(|| async { r#"{"isMatchingCondition":false,"confidence":0.1,"reason":"fine"}"# }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            address_tx.send(listener.local_addr().expect("address")).expect("send address");
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            });
            serve.await.expect("serve");
        });
        cpu_tx.send(stat_of("/proc/thread-self/stat")).expect("send cpu");
    });
    (address_rx.recv().expect("adapter address"), stop_tx, cpu_rx)
}

fn main() {
    let messages = env_number("BENCH_MESSAGES", 3000);
    let concurrency = env_number("BENCH_CONCURRENCY", 16).max(1);
    let context = env_number("BENCH_CONTEXT", 0).min(10);
    let (address, stop, adapter_cpu) = adapter();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let database = comet_testkit::TestDatabase::mariadb().await;
        let store = Store::connect(&database.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let checks = json!([{
            "ruleId": "ai", "action": "block", "threshold": 0.8, "onFailure": "approve-message",
            "contextMessages": context,
        }]);
        // 100 conversations, so decisions of different conversations run side by side as in the worker base.
        let started = Instant::now();
        let mut events = Vec::with_capacity(messages);
        for index in 0..messages {
            let sender = Uid::parse(&format!("sender{}", index % 100)).unwrap();
            let receiver = Uid::parse(&format!("receiver{}", index % 100)).unwrap();
            let new_message = NewMessage {
                conversation_id: ConversationId::direct(&sender, &receiver),
                sender,
                receiver: receiver.to_string(),
                receiver_type: ReceiverType::User,
                category: comet_model::Category::Message,
                message_type: "text".to_owned(),
                data: json!({ "text": format!("message {index}: are we still on for lunch tomorrow?") }),
                muid: None,
                parent_id: None,
                tags: Vec::new(),
            };
            let (held, _) = store.hold_message(&new_message, &checks, comet_model::now_millis()).await.expect("hold");
            events.push(Event {
                id: new_id(),
                event_type: EventType::MessagePending,
                time: held.created_at,
                key: held.message.conversation_id.key().to_owned(),
                data: json!({ "id": held.message.id }),
            });
        }
        println!("held {messages} messages in {:.1} s", started.elapsed().as_secs_f64());

        let guard = Guard::new(AllowList::parse("127.0.0.1").unwrap());
        let config = CustomApiConfig {
            url: format!("http://{address}/moderate"),
            username: Some("bench".to_owned()),
            password: Some("bench-password".to_owned()),
            timeout: Duration::from_secs(2),
            guard,
        };
        let metrics = Arc::new(DecisionMetrics::default());
        let decider = Arc::new(Decider::new(
            store.clone(),
            Arc::new(store.clone()),
            CustomApi::new(Some(config)).expect("client"),
            metrics.clone(),
        ));
        let process_before = stat_of("/proc/self/stat");
        let mariadb_before = mariadb_cpu();
        let started = Instant::now();
        let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut running = tokio::task::JoinSet::new();
        for event in events {
            let permit = semaphore.clone().acquire_owned().await.expect("permit");
            let decider = decider.clone();
            running.spawn(async move {
                let outcome = decider.handle(&event).await;
                drop(permit);
                outcome
            });
        }
        while let Some(outcome) = running.join_next().await {
            assert_eq!(outcome.expect("task"), comet_worker::Outcome::Done);
        }
        let wall = started.elapsed().as_secs_f64();
        let process = stat_of("/proc/self/stat") - process_before;
        let mariadb = mariadb_cpu().zip(mariadb_before).map(|(after, before)| after - before);
        let _ = stop.send(());
        let adapter = adapter_cpu.recv_timeout(Duration::from_secs(10)).unwrap_or(0.0);
        let (approved, disapproved) = metrics.decided();
        assert_eq!((approved + disapproved) as usize, messages, "every held message decided");
        assert_eq!(store.pending_held().await.expect("pending"), 0);
        // The adapter thread's CPU over its whole life (it idled while the messages were held).
        let role = (process - adapter).max(0.0);
        println!(
            "{messages} decisions, {concurrency} in flight, {context} context messages: {:.0} decisions/s \
             ({wall:.2} s); role CPU {role:.2} s = {:.2} cores, {:.0} decisions per role CPU second; adapter \
             {adapter:.2} s; MariaDB {}",
            messages as f64 / wall,
            role / wall,
            messages as f64 / role.max(0.01),
            mariadb.map_or("unknown".to_owned(), |seconds| format!("{seconds:.2} s = {:.2} cores", seconds / wall)),
        );
        database.finish().await;
    });
}
