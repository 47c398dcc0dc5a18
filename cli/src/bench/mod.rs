//! `cometctl bench` (issue #13): load against a live deployment through its NGINX, the way users reach it
//! (HTTPS and WSS on this host, the deployment's certificate): sockets of distinct users, 1:1 sends at a rate
//! for a duration, each send timed until its recipient's socket has it. `edge` is the client, `report` the
//! figures and the verdict (pure). Bounded: at most `MAX_SOCKETS` sockets, `MAX_DURATION`, and never more
//! than the edge's own per-client-IP limits allow one address; only 127.0.0.1 is ever connected to.

mod edge;
pub mod report;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

use self::edge::Edge;
pub use self::report::Report;
use self::report::{Deliveries, Latency, PlanFigures, Sends, Sockets};
use crate::context::Context;
use crate::deploy::{self, Choice};
use crate::error::Refusal;
use crate::printer::ProgressLine;
use crate::sizing::{self, Profile, SizingRequest};

pub const MAX_SOCKETS: u32 = 20_000;
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Sends in flight at once.
const IN_FLIGHT: usize = 512;
/// How long deliveries may trail the last acknowledged send.
const DELIVERY_GRACE: Duration = Duration::from_secs(10);
/// The share of the edge's per-IP request rate the bench may use (the rest is headroom for its own setup).
const EDGE_SHARE: f64 = 0.8;

/// What the operator asked for; `None` takes the plan's figure within the edge's limits.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub sockets: Option<u32>,
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
}

/// The bench as it will run.
#[derive(Debug, Clone, Copy)]
struct Load {
    sockets: u32,
    rate: f64,
    duration: Duration,
    /// Setup requests (users, tokens) per second.
    setup_rate: f64,
}

/// Runs the bench against the deployment of `context`.
pub fn run(context: &Context<'_>, profile: &Profile, request: &Request) -> Result<Report> {
    let spec = context.spec()?;
    let sized = sizing::plan(
        profile,
        &SizingRequest {
            mau: spec.mau,
            concurrency: spec.concurrency,
            target: spec.target,
            message_retention_days: spec.retention.message_days,
        },
    )
    .map_err(|error| Refusal(error.to_string()))?;
    let plan = PlanFigures {
        mau: spec.mau.get(),
        peak_connections: sized.load.peak_connections,
        peak_sends_per_second: sized.load.peak_sends_per_second,
    };
    let edge_rate = f64::from(spec.edge.rate_limit_per_second) * EDGE_SHARE;
    let edge_sockets = spec.edge.ws_connections_per_ip;
    let load = Load {
        sockets: request
            .sockets
            .unwrap_or_else(|| u32::try_from(plan.peak_connections).unwrap_or(u32::MAX).min(edge_sockets).min(1_000)),
        rate: request.rate.unwrap_or_else(|| plan.peak_sends_per_second.clamp(1.0, edge_rate)),
        duration: request.duration.unwrap_or(Duration::from_secs(30)),
        setup_rate: edge_rate.max(1.0),
    };
    if load.sockets < 2 || load.sockets > MAX_SOCKETS.min(edge_sockets) {
        return Err(Refusal(format!(
            "--sockets {} is outside 2..={}: the edge allows {edge_sockets} WebSockets per client IP \
             (edge.ws_connections_per_ip) and a bench runs from this one address",
            load.sockets,
            MAX_SOCKETS.min(edge_sockets)
        ))
        .into());
    }
    if !(load.rate > 0.0 && load.rate <= edge_rate) {
        return Err(Refusal(format!(
            "--rate {} is outside (0, {edge_rate:.0}]: the edge allows {} requests/s per client IP \
             (edge.rate_limit_per_second) and a bench from one address keeps {:.0}% of it; raise that limit in \
             cometctl.yaml and deploy to bench faster",
            load.rate,
            spec.edge.rate_limit_per_second,
            EDGE_SHARE * 100.0
        ))
        .into());
    }
    if load.duration.is_zero() || load.duration > MAX_DURATION {
        return Err(Refusal(format!("--duration must be within 1s..{}s", MAX_DURATION.as_secs())).into());
    }
    let backend = deploy::backend_for(context, Choice::Observed)?;
    if backend.status(spec)?.services.is_empty() {
        return Err(Refusal(format!("nothing of `{}` runs on this Docker Engine: deploy it first", spec.name)).into());
    }
    let folder = &context.folder;
    let cert = folder.read_existing(&spec.tls.cert_file)?.ok_or_else(|| {
        Refusal(format!("{} is missing: the bench trusts the deployment's certificate", spec.tls.cert_file))
    })?;
    let key = folder
        .read_existing("secrets/api_key")?
        .ok_or_else(|| Refusal("secrets/api_key is missing: the bench creates its users with it".to_owned()))?;
    let key = String::from_utf8_lossy(&key).trim().to_owned();
    let edge = Edge::new(&spec.domain, spec.edge.https_port.get(), &cert, &key).map_err(anyhow::Error::msg)?;
    let prefix = format!("bench-{}", context.clock.now_unix_seconds());
    let line = context.printer.progress().line("bench");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut report = runtime.block_on(measure(Arc::new(edge), &prefix, load, plan, &line))?;
    report::verdict(&mut report);
    line.finish(if report.pass { "pass" } else { "fail" });
    Ok(report)
}

/// One delivery a socket saw: the send's number, when.
type Seen = (u64, Instant);

async fn measure(edge: Arc<Edge>, prefix: &str, load: Load, plan: PlanFigures, line: &ProgressLine) -> Result<Report> {
    let uids: Vec<String> = (0..load.sockets).map(|n| format!("{prefix}-{n}")).collect();
    line.set(&format!("creating {} users", uids.len()));
    let pace = Duration::from_secs_f64(2.0 / load.setup_rate);
    let mut tokens = Vec::with_capacity(uids.len());
    for uid in &uids {
        let started = Instant::now();
        tokens.push(edge.user(uid).await.map_err(|error| anyhow::anyhow!("creating bench user {uid}: {error}"))?);
        tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
    }
    line.set(&format!("connecting {} sockets", uids.len()));
    let connects = futures::stream::iter(tokens.iter().map(|token| edge.connect(token))).buffered(32);
    let connected: Vec<Result<edge::Socket, String>> = connects.collect().await;
    let ending = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let mut held = Vec::new();
    let mut readers = Vec::new();
    for (uid, socket) in uids.iter().zip(connected) {
        let Ok(socket) = socket else { continue };
        held.push(uid.clone());
        readers.push(tokio::spawn(read(socket, uid.clone(), seen_tx.clone(), ending.clone(), dropped.clone())));
    }
    drop(seen_tx);
    let mut report = Report {
        duration_seconds: load.duration.as_secs_f64(),
        sockets: Sockets { requested: u64::from(load.sockets), held: held.len() as u64, dropped: 0 },
        sends: Sends {
            offered_per_second: load.rate,
            acknowledged: 0,
            acknowledged_per_second: 0.0,
            errors: 0,
            first_errors: vec![],
        },
        deliveries: Deliveries { delivered: 0, per_second: 0.0, missing: 0, duplicates: 0 },
        latency_ms: Latency { p50: 0.0, p90: 0.0, p99: 0.0, max: 0.0 },
        plan,
        pass: false,
        notes: vec![],
    };
    if held.len() < 2 {
        report.sends.first_errors.push("fewer than two sockets connected: nothing to send between".to_owned());
        ending.store(true, Ordering::SeqCst);
        return Ok(report);
    }

    // Sends at the rate: user n to user n+1, each timed from just before its request.
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let total = (load.rate * load.duration.as_secs_f64()).ceil() as u64;
    let interval = Duration::from_secs_f64(1.0 / load.rate);
    let started = Instant::now();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut latencies = Vec::new();
    let mut record = |(number, at): Seen, seen: &mut HashMap<u64, u32>| {
        let count = seen.entry(number).or_default();
        *count += 1;
        let sent = sent_at.lock().ok().and_then(|map| map.get(&number).copied());
        if *count == 1
            && let Some(sent) = sent
        {
            latencies.push(at.saturating_duration_since(sent));
        }
    };
    for number in 0..total {
        let due = started + interval.mul_f64(number as f64);
        tokio::time::sleep_until(due.into()).await;
        while let Ok(one) = seen_rx.try_recv() {
            record(one, &mut seen);
        }
        let permit = slots.clone().acquire_owned().await?;
        let index = usize::try_from(number).unwrap_or_default() % held.len();
        let (from, to) = (held[index].clone(), held[(index + 1) % held.len()].clone());
        let (edge, times, acks, failures) = (edge.clone(), sent_at.clone(), acknowledged.clone(), errors.clone());
        tokio::spawn(async move {
            let body = json!({"receiver": to, "receiverType": "user", "type": "text", "data": {"text": format!("bench {number}")}});
            if let Ok(mut map) = times.lock() {
                map.insert(number, Instant::now());
            }
            match edge.post("/v3/messages", Some(&from), &body).await {
                Ok(_) => acks.lock().map(|mut list| list.push(number)).unwrap_or(()),
                Err(error) => failures.lock().map(|mut list| list.push(error)).unwrap_or(()),
            }
            drop(permit);
        });
        if number % 50 == 0 {
            let done = acknowledged.lock().map(|list| list.len()).unwrap_or_default();
            line.set(&format!("{done} of {total} sends acknowledged, {} sockets", held.len()));
        }
    }
    let _all = slots.acquire_many(IN_FLIGHT as u32).await?;
    let sending = started.elapsed();
    let acknowledged: Vec<u64> = acknowledged.lock().map(|list| list.clone()).unwrap_or_default();
    let grace = Instant::now() + DELIVERY_GRACE;
    while acknowledged.iter().any(|number| !seen.contains_key(number)) && Instant::now() < grace {
        match tokio::time::timeout_at(grace.into(), seen_rx.recv()).await {
            Ok(Some(one)) => record(one, &mut seen),
            Ok(None) | Err(_) => break,
        }
    }
    while let Ok(one) = seen_rx.try_recv() {
        record(one, &mut seen);
    }
    ending.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.abort();
    }
    line.set("removing the bench users");
    for uid in &uids {
        // Soft deletes; a user left behind is only a deactivated `bench-` user.
        let _ = edge.delete(&format!("/v3/users/{uid}")).await;
    }
    let errors = errors.lock().map(|list| list.clone()).unwrap_or_default();
    let seconds = sending.as_secs_f64().max(f64::EPSILON);
    report.sockets.dropped = dropped.load(Ordering::SeqCst);
    report.sends.acknowledged = acknowledged.len() as u64;
    report.sends.acknowledged_per_second = acknowledged.len() as f64 / seconds;
    report.sends.errors = errors.len() as u64;
    report.sends.first_errors = errors.into_iter().take(5).collect();
    let delivered = acknowledged.iter().filter(|number| seen.contains_key(number)).count() as u64;
    report.deliveries.delivered = delivered;
    report.deliveries.per_second = delivered as f64 / seconds;
    report.deliveries.missing = report.sends.acknowledged - delivered;
    report.deliveries.duplicates = seen.values().map(|count| u64::from(count.saturating_sub(1))).sum();
    report.latency_ms = Latency::of(&mut latencies);
    Ok(report)
}

/// Reads one socket until the bench ends: each `message.new` addressed to `uid` reported with its number.
async fn read(
    mut socket: edge::Socket,
    uid: String,
    seen: mpsc::UnboundedSender<Seen>,
    ending: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    while let Some(frame) = socket.next().await {
        let Ok(Message::Text(text)) = frame else {
            if frame.is_err() || matches!(frame, Ok(Message::Close(_))) {
                break;
            }
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
        if frame["type"] != "message.new" || frame["data"]["receiver"] != uid.as_str() {
            continue;
        }
        let number = frame["data"]["data"]["text"].as_str().and_then(|text| text.strip_prefix("bench ")?.parse().ok());
        if let Some(number) = number {
            let _ = seen.send((number, Instant::now()));
        }
    }
    if !ending.load(Ordering::SeqCst) {
        dropped.fetch_add(1, Ordering::SeqCst);
    }
}
