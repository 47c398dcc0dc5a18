//! Webhook delivery throughput and latency, and the cost of the worker base.
//!
//! 1. The webhooks role (worker base + handler + dispatcher, on its own runtime whose threads are named
//!    `webhooks-role`) over a store (SQLite by default; `BENCH_DATABASE_URL=mysql://…` for MariaDB), 10 webhooks
//!    subscribed to `message_sent`, all pointing at one local receiver (its own runtime, `receiver` threads).
//!    Events are published on the in-process bus at `BENCH_RATE` events/s for `BENCH_EVENTS` events. Reported:
//!    deliveries/s, event→delivery latency (publish on the bus → the receiver has the request) p50/p99/max, and
//!    the CPU of the role's threads plus SQLite's worker thread (from /proc/self/task), per second of the run.
//! 2. The worker base alone: the same loop with a handler that does nothing, over `BENCH_BASE_EVENTS` events,
//!    as CPU seconds per 1,000 events (= cores per 1,000 events/s).
//!
//! `cargo bench -p comet-webhooks --bench deliveries`; docs/benchmarks.md has the figures and the machine.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use comet_bus::{GroupSubscription, InProcessBus, Publisher};
use comet_model::{Event, EventType, now_millis};
use comet_store::{Store, WebhookRecord};
use comet_testkit::{env_number, threads_cpu_seconds};
use comet_webhooks::signature::new_secret;
use comet_webhooks::{AllowList, MAX_WEBHOOKS, WebhookSettings, Webhooks};
use comet_worker::{Handler, Outcome, Worker, WorkerConfig, group_of};
use futures::future::BoxFuture;
use serde_json::json;

const WEBHOOKS: usize = 10;

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build().unwrap()
}

#[derive(Default)]
struct Arrivals {
    published: HashMap<String, Instant>,
    latencies: Vec<Duration>,
    last: Option<Instant>,
}

async fn receive(State(arrivals): State<Arc<Mutex<Arrivals>>>, headers: HeaderMap) -> StatusCode {
    let id = headers.get("webhook-id").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let event_id = id.split('_').next().unwrap_or_default();
    let mut arrivals = arrivals.lock().unwrap();
    if let Some(published) = arrivals.published.get(event_id).copied() {
        arrivals.latencies.push(published.elapsed());
        arrivals.last = Some(Instant::now());
    }
    StatusCode::OK
}

fn message_sent(n: u64) -> Event {
    Event {
        id: comet_model::new_id(),
        event_type: EventType::MessageSent,
        time: now_millis(),
        key: format!("u:a{}:b", n % 64),
        data: json!({ "id": format!("m{n}"), "sender": "alice", "receiver": "bob", "receiverType": "user",
                      "type": "text", "data": { "text": "benchmark message" }, "sentAt": now_millis() }),
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn deliveries(database_url: &str) {
    let events = env_number("BENCH_EVENTS", 2_000);
    let rate = env_number("BENCH_RATE", 100).max(1);
    let receiver_runtime = runtime("receiver", 1);
    let role_runtime = runtime("webhooks-role", 2);
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    let address = receiver_runtime.block_on(async {
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    });
    let bus = InProcessBus::new(65_536);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    role_runtime.block_on(async {
        let store = Store::connect(database_url).await.unwrap();
        store.migrate().await.unwrap();
        for n in 0..WEBHOOKS {
            let webhook = WebhookRecord::new(
                format!("bench{n}-{}", std::process::id()),
                format!("bench {n}"),
                format!("http://{address}/hook"),
                vec!["message_sent".to_owned()],
                new_secret().unwrap(),
                now_millis(),
            );
            assert!(store.create_webhook(&webhook, MAX_WEBHOOKS).await.unwrap(), "a fresh database");
        }
        let settings = WebhookSettings { allow: AllowList::parse("127.0.0.1").unwrap(), ..WebhookSettings::default() };
        let webhooks = Webhooks::new(store.clone(), std::sync::Arc::new(store.clone()), settings).unwrap();
        let worker = Worker::new(webhooks.handler.clone(), store.clone(), WorkerConfig::default());
        let subscription = GroupSubscription::in_process(&bus, &group_of(webhooks.handler.as_ref()));
        let until = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let stopped_worker = until(stopped.clone());
        tokio::spawn(async move { worker.run(subscription, stopped_worker).await });
        let dispatcher = webhooks.dispatcher;
        let stopped_dispatcher = until(stopped.clone());
        tokio::spawn(async move { dispatcher.run(stopped_dispatcher).await });
    });

    let cpu_threads = ["webhooks-role", "sqlx-sqlite"];
    let (cpu_0, started) = (threads_cpu_seconds(&cpu_threads), Instant::now());
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    receiver_runtime.block_on(async {
        let mut ticker = tokio::time::interval(interval);
        for n in 0..events {
            ticker.tick().await;
            let event = message_sent(n);
            arrivals.lock().unwrap().published.insert(event.id.clone(), Instant::now());
            bus.publish(std::slice::from_ref(&event)).await.unwrap();
        }
        let expected = events as usize * WEBHOOKS;
        let deadline = Instant::now() + Duration::from_secs(600);
        while arrivals.lock().unwrap().latencies.len() < expected {
            assert!(Instant::now() < deadline, "not every delivery arrived within 10 minutes");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let cpu = threads_cpu_seconds(&cpu_threads) - cpu_0;
    let arrivals = arrivals.lock().unwrap();
    let elapsed = arrivals.last.unwrap().duration_since(started).as_secs_f64();
    let mut latencies = arrivals.latencies.clone();
    latencies.sort();
    let delivered = latencies.len();
    println!(
        "webhooks: {events} events at {rate}/s × {WEBHOOKS} webhooks on {}: {delivered} deliveries in {elapsed:.1} s = \
         {:.0} deliveries/s; event→delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; role CPU {:.2} s = {:.2} cores \
         ({:.2} cores per 1,000 deliveries/s)",
        database_url.split(':').next().unwrap_or_default(),
        delivered as f64 / elapsed,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        cpu,
        cpu / elapsed,
        cpu / elapsed / (delivered as f64 / elapsed) * 1000.0,
    );
    let _ = stop.send(true);
    drop(role_runtime);
}

/// A handler with no work: what the worker base costs by itself.
struct Nothing;

impl Handler for Nothing {
    fn name(&self) -> &'static str {
        "bench-nothing"
    }

    fn handle<'a>(&'a self, _event: &'a Event) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Outcome::Done })
    }
}

fn worker_base(database_url: &str) {
    let events = env_number("BENCH_BASE_EVENTS", 50_000);
    let runtime = runtime("worker-base", 1);
    let bus = InProcessBus::new(usize::try_from(events).unwrap() + 16);
    let worker = runtime.block_on(async {
        let store = Store::connect(database_url).await.unwrap();
        Worker::new(Arc::new(Nothing), store, WorkerConfig::default())
    });
    let metrics = worker.metrics();
    let subscription = GroupSubscription::in_process(&bus, "comet-bench-nothing");
    let batch: Vec<Event> = (0..events).map(message_sent).collect();
    // Published before the loop starts, so the measurement is the loop's alone.
    runtime.block_on(bus.publish(&batch)).unwrap();
    let (cpu_0, started) = (threads_cpu_seconds(&["worker-base"]), Instant::now());
    runtime.block_on(async {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            worker
                .run(subscription, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        while metrics.done() < events {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop.send(true);
        task.await.unwrap();
    });
    let (cpu, elapsed) = (threads_cpu_seconds(&["worker-base"]) - cpu_0, started.elapsed().as_secs_f64());
    println!(
        "worker base: {events} events in {elapsed:.2} s ({:.0} events/s on one thread); CPU {cpu:.2} s = {:.3} CPU \
         seconds per 1,000 events (cores per 1,000 events/s)",
        events as f64 / elapsed,
        cpu / events as f64 * 1000.0,
    );
}

fn main() {
    let folder = tempfile::tempdir().unwrap();
    let database_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", folder.path().join("bench.db").display()));
    worker_base(&database_url);
    deliveries(&database_url);
}
