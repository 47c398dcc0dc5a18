//! Persisted sends through HTTP: comet-server `all` (API + relay in one process) on MariaDB or SQLite,
//! driven by concurrent keep-alive clients for a fixed time. Reports sends/s, latency percentiles and the CPU
//! used by the server and by MariaDB (from /proc), beside the load generator's own.
//!
//! Run (MariaDB from `bash .ci/services.sh`):
//!   cargo bench -p comet-server --bench send_load                      # MariaDB
//!   COMET_BENCH_BACKEND=sqlite cargo bench -p comet-server --bench send_load
//! Knobs: COMET_BENCH_SECONDS (20), COMET_BENCH_CLIENTS (64), COMET_BENCH_CONVERSATIONS (200).
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

    let server_pid = child.id();
    let mariadb = if backend == "sqlite" { None } else { mariadb_pid() };
    let (server_cpu_0, mariadb_cpu_0, self_cpu_0) =
        (cpu_seconds(server_pid), mariadb.map(cpu_seconds), self_cpu_seconds());
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (client, base, latencies, failures) = (client.clone(), base.clone(), latencies.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let mut n = worker;
            while Instant::now() < stop_at {
                let conversation = n % conversations;
                let (sender, body) = if conversation.is_multiple_of(10) {
                    ("u0".to_owned(), serde_json::json!({"receiver": format!("g{}", conversation / 10), "receiverType": "group", "type": "text", "data": {"text": "bench"}, "muid": format!("w{worker}-{n}")}))
                } else {
                    (format!("u{}", conversation * 2), serde_json::json!({"receiver": format!("u{}", conversation * 2 + 1), "receiverType": "user", "type": "text", "data": {"text": "bench"}, "muid": format!("w{worker}-{n}")}))
                };
                let sent = Instant::now();
                let ok = client.post(format!("{base}/v3/messages")).header("apikey", KEY).header("onBehalfOf", sender).json(&body).send().await.map(|r| r.status().is_success()).unwrap_or(false);
                if ok { local.push(sent.elapsed()) } else { failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed); }
                n += clients;
            }
            latencies.lock().unwrap().extend(local);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server_pid) - server_cpu_0;
    let mariadb_cpu = mariadb.map(|pid| cpu_seconds(pid) - mariadb_cpu_0.unwrap_or(0.0));
    let self_cpu = self_cpu_seconds() - self_cpu_0;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let at = |q: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "backend {backend}, {clients} clients, {conversations} conversations (1 in 10 a group of 20), {seconds} s"
    );
    println!(
        "persisted sends: {} ({:.0}/s), failed: {}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        failures.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!("latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}", at(0.5), at(0.9), at(0.99), at(1.0));
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
