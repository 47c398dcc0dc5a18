//! Persisted sends through HTTP: comet-server `all` (API + relay in one process) on MariaDB or SQLite,
//! driven by concurrent keep-alive clients for a fixed time. Reports sends/s, latency percentiles and the CPU
//! used by the server and by MariaDB (from /proc), beside the load generator's own.
//!
//! Run (MariaDB from `bash .ci/services.sh`):
//!   cargo bench -p comet-server --bench send_load                      # MariaDB
//!   COMET_BENCH_BACKEND=sqlite cargo bench -p comet-server --bench send_load
//! Knobs: COMET_BENCH_SECONDS (20), COMET_BENCH_CLIENTS (64), COMET_BENCH_CONVERSATIONS (200), COMET_BENCH_RATE
//! (sends/s offered open loop, instead of closed-loop clients; overload runs, issue #17 item 5). Extra server
//! settings pass through the environment (e.g. COMET_API_MAX_IN_FLIGHT). COMET_BENCH_MODERATION_KEYWORDS=N (issue #15)
//! first sets up moderation as an operator would: a keyword list of N keywords (imported as CSV) with a few
//! profanities, a phrase list, and three rules (keywords block, contact details mask, phrases flag), so every
//! send meets the engine. COMET_BENCH_TEXT sets what every message says (default `bench`).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::{cpu_seconds, env_number, free_port, pid_of};

const KEY: &str = "bench-full-key";

fn self_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

fn mariadb_pid() -> Option<u32> {
    pid_of("mariadbd")
}

#[tokio::main]
async fn main() {
    let backend = std::env::var("COMET_BENCH_BACKEND").unwrap_or_else(|_| "mariadb".to_owned());
    let seconds = env_number("COMET_BENCH_SECONDS", 20);
    let clients = env_number("COMET_BENCH_CLIENTS", 64);
    let conversations = env_number("COMET_BENCH_CONVERSATIONS", 200);
    // Sends per second offered whatever the answers (open loop); unset: closed-loop clients.
    let offered_rate = std::env::var("COMET_BENCH_RATE").ok().and_then(|rate| rate.parse::<u64>().ok());
    let data = tempfile::tempdir().unwrap();
    let mut cleanup: Option<(sqlx::mysql::MySqlPool, String)> = None;
    let database_url = if backend == "sqlite" {
        format!("sqlite://{}", data.path().join("bench.db").display())
    } else {
        let server =
            std::env::var("COMET_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://app:app@127.0.0.1:3306/app".to_owned());
        let admin = sqlx::mysql::MySqlPool::connect(&server).await.expect("MariaDB: run `bash .ci/services.sh`");
        let name = format!("comet_bench_{}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
        cleanup = Some((admin, name));
        url
    };
    let (app_port, admin_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("all")
        .env("COMET_LISTEN", format!("127.0.0.1:{app_port}"))
        .env("COMET_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("COMET_DATA_DIR", data.path())
        .env("COMET_DATABASE_URL", &database_url)
        .env("COMET_API_KEY", KEY)
        .env("COMET_AUTH_KEY", "bench-auth-key")
        .env("COMET_LOG", "warn")
        .env("COMET_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients as usize).build().unwrap();
    let base = format!("http://127.0.0.1:{app_port}");
    support::wait_ready(&client, admin_port, Duration::from_secs(30)).await;
    // Users u0..u{2n}: conversation i is u{2i} → u{2i+1}; every tenth conversation is a group of 20.
    for user in 0..(conversations * 2).max(20) {
        client
            .post(format!("{base}/v3/users"))
            .header("apikey", KEY)
            .json(&serde_json::json!({"uid": format!("u{user}"), "name": "bench"}))
            .send()
            .await
            .unwrap();
    }
    for group in 0..conversations / 10 {
        client
            .post(format!("{base}/v3/groups"))
            .header("apikey", KEY)
            .header("onBehalfOf", "u0")
            .json(&serde_json::json!({"guid": format!("g{group}"), "name": "g", "type": "private"}))
            .send()
            .await
            .unwrap();
        let members: Vec<String> = (1..20).map(|n| format!("u{n}")).collect();
        client
            .post(format!("{base}/v3/groups/g{group}/members"))
            .header("apikey", KEY)
            .header("onBehalfOf", "u0")
            .json(&serde_json::json!({"participants": members}))
            .send()
            .await
            .unwrap();
    }

    let keywords = env_number("COMET_BENCH_MODERATION_KEYWORDS", 0);
    if keywords > 0 {
        moderation_rules(&client, &base, keywords).await;
    }

    let server_pid = child.id();
    let mariadb = if backend == "sqlite" { None } else { mariadb_pid() };
    let (server_cpu_0, mariadb_cpu_0, self_cpu_0) =
        (cpu_seconds(server_pid), mariadb.map(cpu_seconds), self_cpu_seconds());
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::<(Outcome, Duration)>::new()));
    let mut tasks = Vec::new();
    if let Some(rate) = offered_rate {
        // Open loop: a send every 1/rate s whatever the answers, each on its own task (at most 20,000 at once).
        let in_flight = Arc::new(tokio::sync::Semaphore::new(20_000));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut n = 0;
        while Instant::now() < stop_at {
            tick.tick().await;
            let Ok(place) = in_flight.clone().acquire_owned().await else { break };
            let (client, base, outcomes) = (client.clone(), base.clone(), outcomes.clone());
            tasks.push(tokio::spawn(async move {
                let outcome = send_one(&client, &base, n, conversations, "open").await;
                outcomes.lock().unwrap().push(outcome);
                drop(place);
            }));
            n += 1;
        }
    } else {
        for worker in 0..clients {
            let (client, base, outcomes) = (client.clone(), base.clone(), outcomes.clone());
            tasks.push(tokio::spawn(async move {
                let mut local = Vec::new();
                let mut n = worker;
                let tag = format!("w{worker}");
                while Instant::now() < stop_at {
                    local.push(send_one(&client, &base, n, conversations, &tag).await);
                    n += clients;
                }
                outcomes.lock().unwrap().extend(local);
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server_pid) - server_cpu_0;
    let mariadb_cpu = mariadb.map(|pid| cpu_seconds(pid) - mariadb_cpu_0.unwrap_or(0.0));
    let self_cpu = self_cpu_seconds() - self_cpu_0;
    let outcomes = outcomes.lock().unwrap().clone();
    let latencies_of = |kind: Outcome| {
        let mut latencies: Vec<Duration> =
            outcomes.iter().filter(|(outcome, _)| *outcome == kind).map(|(_, latency)| *latency).collect();
        latencies.sort();
        latencies
    };
    let at = |latencies: &[Duration], q: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let load = match offered_rate {
        Some(rate) => format!("open loop, {rate} sends/s offered"),
        None => format!("{clients} closed-loop clients"),
    };
    println!("backend {backend}, {load}, {conversations} conversations (1 in 10 a group of 20), {seconds} s");
    let acknowledged = latencies_of(Outcome::Acknowledged);
    let shed = latencies_of(Outcome::Shed);
    let failed = latencies_of(Outcome::Failed);
    println!(
        "persisted sends: {} ({:.0}/s), shed (503/429 with Retry-After): {} ({:.0}/s), failed otherwise: {}",
        acknowledged.len(),
        acknowledged.len() as f64 / elapsed,
        shed.len(),
        shed.len() as f64 / elapsed,
        failed.len()
    );
    for (what, latencies) in [("acknowledged", &acknowledged), ("shed", &shed)] {
        if !latencies.is_empty() {
            println!(
                "{what} latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
                at(latencies, 0.5),
                at(latencies, 0.9),
                at(latencies, 0.99),
                at(latencies, 1.0)
            );
        }
    }
    println!(
        "CPU cores used: comet-server {:.2}, mariadbd {}, load generator {:.2}",
        server_cpu / elapsed,
        mariadb_cpu.map_or("n/a".to_owned(), |cpu| format!("{:.2}", cpu / elapsed)),
        self_cpu / elapsed
    );
    let _ = child.kill();
    let _ = child.wait();
    if let Some((admin, name)) = cleanup {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&admin).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 2xx: the message is stored.
    Acknowledged,
    /// 503 or 429 with Retry-After: refused before any work, to be retried.
    Shed,
    /// Anything else (an error status, a reset, a timeout).
    Failed,
}

/// Sends message `n` (conversation `n % conversations`; 1 in 10 to a group) and says how it went and how long
/// the answer took.
async fn send_one(client: &reqwest::Client, base: &str, n: u64, conversations: u64, tag: &str) -> (Outcome, Duration) {
    let conversation = n % conversations;
    let muid = format!("{tag}-{n}");
    let (sender, body) = if conversation.is_multiple_of(10) {
        (
            "u0".to_owned(),
            serde_json::json!({"receiver": format!("g{}", conversation / 10), "receiverType": "group", "type": "text", "data": {"text": bench_text()}, "muid": muid}),
        )
    } else {
        (
            format!("u{}", conversation * 2),
            serde_json::json!({"receiver": format!("u{}", conversation * 2 + 1), "receiverType": "user", "type": "text", "data": {"text": bench_text()}, "muid": muid}),
        )
    };
    let sent = Instant::now();
    let response = client
        .post(format!("{base}/v3/messages"))
        .header("apikey", KEY)
        .header("onBehalfOf", sender)
        .json(&body)
        .send()
        .await;
    let outcome = match response {
        Ok(response) if response.status().is_success() => Outcome::Acknowledged,
        Ok(response)
            if matches!(response.status().as_u16(), 429 | 503) && response.headers().contains_key("retry-after") =>
        {
            Outcome::Shed
        }
        _ => Outcome::Failed,
    };
    (outcome, sent.elapsed())
}

/// What every send says: `COMET_BENCH_TEXT`, default `bench`.
fn bench_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| std::env::var("COMET_BENCH_TEXT").unwrap_or_else(|_| "bench".to_owned()))
}

/// The default-like rules with `keywords` keywords (none of which the bench's texts contain).
async fn moderation_rules(client: &reqwest::Client, base: &str, keywords: u64) {
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).header("apikey", KEY).json(&body).send()
    };
    let lists = [
        serde_json::json!({ "id": "keywords", "name": "Keywords", "kind": "keywords", "entries": ["fuck", "shit", "cunt"] }),
        serde_json::json!({ "id": "phrases", "name": "Phrases", "kind": "phrases", "entries": ["kill yourself", "send nudes"] }),
    ];
    for list in lists {
        assert!(post("/v3/moderation/lists", list).await.unwrap().status().is_success());
    }
    let csv: String = (0..keywords).map(|index| format!("kw{index:x}zq\n")).collect();
    let imported = client
        .post(format!("{base}/v3/moderation/lists/keywords/import"))
        .header("apikey", KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert!(imported.status().is_success(), "import: {}", imported.text().await.unwrap_or_default());
    let rules = [
        serde_json::json!({ "id": "keywords", "name": "Keywords", "conditions": [{ "type": "keywords", "lists": ["keywords"] }], "action": "block" }),
        serde_json::json!({ "id": "contacts", "name": "Contacts", "conditions": [{ "type": "contactDetails", "email": true, "phone": true, "url": true }], "action": "mask" }),
        serde_json::json!({ "id": "phrases", "name": "Phrases", "conditions": [{ "type": "keywords", "lists": ["phrases"] }], "action": "flag" }),
    ];
    for rule in rules {
        assert!(post("/v3/moderation/rules", rule).await.unwrap().status().is_success());
    }
    println!("moderation: 3 rules, {} keywords", keywords + 3);
}
