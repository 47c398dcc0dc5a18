//! WebSocket gateway load (issue #4): many authenticated idle sockets on one gateway process (RSS per socket
//! and idle CPU from /proc), then paced REST sends while a subset of them stays connected (send → deliver
//! latency as measured by the receiving sockets, deliveries/s, failed sends, CPU of every process involved).
//!
//! Run (MariaDB, Redis and tansu from `bash .ci/services.sh`):
//!   cargo bench -p comet-server --bench ws_load                           # split: api + relay + gateway
//!   COMET_BENCH_SHAPE=all cargo bench -p comet-server --bench ws_load     # `all` on MariaDB, in-process bus
//!
//! What it does: creates one user (with its auth token) per socket through REST, 1:1 pairs (u0↔u1, u2↔u3, …)
//! and groups of 10 to 100 members among the first COMET_BENCH_LOAD_SOCKETS users; then client processes (this
//! bench re-executed with COMET_BENCH_WS_CLIENT set, at most COMET_BENCH_PER_PROCESS sockets each, one lean
//! task per socket on a current-thread runtime) open one socket per user, read `hello` and send a `ping` so
//! live events flow. Phase 1 connects the load users, reads the gateway's VmRSS, connects the rest, reads it
//! again and samples the gateway's idle CPU. Phase 2 closes the extra sockets and sends, open loop at a fixed
//! rate, `POST /v3/messages` whose text carries the send's wall-clock time; the receiving clients record
//! `now − sent` for every `message.new` (same machine, same clock).
//!
//! Knobs (environment):
//!   COMET_BENCH_SHAPE         split | all (split)
//!   COMET_BENCH_SOCKETS       sockets in phase 1, one user each (19000)
//!   COMET_BENCH_LOAD_SOCKETS  sockets kept for phase 2; also the phase 1 intermediate reading (10000)
//!   COMET_BENCH_PER_PROCESS   sockets per client process, ≤ ~9,500 under the 20k open-file limit (5000)
//!   COMET_BENCH_RATE          sends per second in phase 2 (1000)
//!   COMET_BENCH_SECONDS       length of phase 2 (30)
//!   COMET_BENCH_IDLE_SECONDS  idle CPU sampling window (30)
//!   COMET_BENCH_GROUPS        groups, sizes spread evenly over 10..=100 (100)
//!   COMET_BENCH_GROUP_EVERY   one send in N goes to a group, the rest to 1:1 pairs (10)
//!   COMET_BENCH_PHASES        idle,load or either alone (idle,load)
//!   COMET_BENCH_SOURCE        rest | kafka (rest). `kafka` (split shape only) skips the API and the database:
//!                             the load generator produces `message.sent` events straight onto comet.messages,
//!                             which isolates what the gateway (and the broker) cost per delivered message
//!   COMET_BENCH_MAX_IN_FLIGHT sends awaiting their HTTP answer at most; a send due beyond it is not made and
//!                             counts as failed, so an overloaded API cannot exhaust file descriptors (1000)
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod support;

use support::{cpu_seconds, env_number, free_port, pid_of, rss_kib};

const KEY: &str = "bench-full-key";
const CLIENT_ENV: &str = "COMET_BENCH_WS_CLIENT";
/// The marker a send's text starts with, followed by its wall-clock time in microseconds.
const MARK: &str = "bench-t=";

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn main() {
    if std::env::var_os(CLIENT_ENV).is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(client::run());
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(driver());
    }
}

/// One client process: its share of sockets, and the latencies they observe.
mod client {
    use super::*;

    type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    #[derive(Default)]
    struct Observed {
        latencies_us: Mutex<Vec<u32>>,
        received: AtomicU64,
        closed: AtomicU64,
        reasons: Mutex<HashMap<String, u64>>,
    }

    impl Observed {
        fn on_text(&self, text: &str) {
            if !text.contains("\"message.new\"") {
                return;
            }
            let at = now_micros();
            let value: serde_json::Value = match serde_json::from_str(text) {
                Ok(value) => value,
                Err(_) => return,
            };
            let Some(sent) = value
                .pointer("/data/data/text")
                .and_then(|text| text.as_str())
                .and_then(|text| text.strip_prefix(MARK))
                .and_then(|micros| micros.parse::<u64>().ok())
            else {
                return;
            };
            self.received.fetch_add(1, Ordering::Relaxed);
            let latency = u32::try_from(at.saturating_sub(sent)).unwrap_or(u32::MAX);
            self.latencies_us.lock().unwrap().push(latency);
        }

        fn ended(&self, reason: String) {
            self.closed.fetch_add(1, Ordering::Relaxed);
            *self.reasons.lock().unwrap().entry(reason).or_default() += 1;
        }
    }

    async fn open(url: &str, token: &str) -> Result<Socket, String> {
        let mut request = url.into_client_request().map_err(|error| error.to_string())?;
        request.headers_mut().insert("authtoken", token.parse().map_err(|_| "token is not a header value")?);
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .map_err(|error| error.to_string())?;
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.contains("\"hello\"") => {}
            other => return Err(format!("expected hello, got {other:?}")),
        }
        // The first client frame releases live events (otherwise held for COMET_GATEWAY_HOLD_LIVE_MS).
        socket.send(Message::text(r#"{"type":"ping"}"#)).await.map_err(|error| error.to_string())?;
        Ok(socket)
    }

    async fn listen(mut socket: Socket, observed: Arc<Observed>) {
        let reason = loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => observed.on_text(text.as_str()),
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or("close".to_owned(), |frame| format!("close {}", frame.code));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break format!("error {error}"),
                None => break "eof".to_owned(),
            }
        };
        observed.ended(reason);
    }

    /// Reads its tokens, opens its sockets (a bounded number of handshakes at a time), prints `ready OK FAILED`,
    /// then listens until stdin says `stop` (or closes): writes the latencies to the output file and prints
    /// `done RECEIVED CLOSED`.
    pub async fn run() {
        let url = std::env::var("COMET_BENCH_WS_URL").unwrap();
        let tokens = std::fs::read_to_string(std::env::var("COMET_BENCH_WS_TOKENS").unwrap()).unwrap();
        let (start, end) = std::env::var(CLIENT_ENV)
            .unwrap()
            .split_once("..")
            .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
            .unwrap();
        let out = std::env::var("COMET_BENCH_WS_OUT").unwrap();
        let tokens: Vec<String> = tokens
            .lines()
            .skip(start)
            .take(end - start)
            .map(|line| line.split('\t').nth(1).unwrap().to_owned())
            .collect();
        let observed = Arc::new(Observed::default());
        let failed = Arc::new(Mutex::new(Vec::<String>::new()));
        let opened = futures::stream::iter(tokens)
            .map(|token| {
                let (url, observed, failed) = (url.clone(), observed.clone(), failed.clone());
                async move {
                    let mut last = String::new();
                    for attempt in 0..3u64 {
                        match open(&url, &token).await {
                            Ok(socket) => {
                                tokio::spawn(listen(socket, observed));
                                return true;
                            }
                            Err(error) => last = error,
                        }
                        tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                    }
                    failed.lock().unwrap().push(last);
                    false
                }
            })
            .buffer_unordered(16)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await;
        let failed = failed.lock().unwrap().clone();
        for error in failed.iter().take(3) {
            eprintln!("ws client {start}..{end}: a socket failed to open: {error}");
        }
        println!("ready {opened} {}", failed.len());
        std::io::stdout().flush().unwrap();
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line.trim() == "stop" {
                    break;
                }
                line.clear();
            }
        })
        .await;
        let latencies = std::mem::take(&mut *observed.latencies_us.lock().unwrap());
        let bytes: Vec<u8> = latencies.iter().flat_map(|latency| latency.to_le_bytes()).collect();
        std::fs::write(&out, bytes).unwrap();
        let reasons = observed.reasons.lock().unwrap().clone();
        if !reasons.is_empty() {
            eprintln!("ws client {start}..{end}: sockets that ended: {reasons:?}");
        }
        println!("done {} {}", observed.received.load(Ordering::Relaxed), observed.closed.load(Ordering::Relaxed));
        std::io::stdout().flush().unwrap();
        std::process::exit(0);
    }
}

/// A client process as the driver sees it.
struct ClientProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    out: std::path::PathBuf,
}

impl ClientProcess {
    fn spawn(
        url: &str,
        tokens: &std::path::Path,
        range: std::ops::Range<usize>,
        dir: &std::path::Path,
    ) -> ClientProcess {
        let out = dir.join(format!("latencies-{}-{}", range.start, range.end));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 20000 && exec \"$0\"")
            .arg(std::env::current_exe().unwrap())
            .env(CLIENT_ENV, format!("{}..{}", range.start, range.end))
            .env("COMET_BENCH_WS_URL", url)
            .env("COMET_BENCH_WS_TOKENS", tokens)
            .env("COMET_BENCH_WS_OUT", &out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        ClientProcess { child, stdin, stdout, out }
    }

    /// The next line the process prints, split into words.
    fn line(&mut self) -> Vec<u64> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.split_whitespace().skip(1).map(|word| word.parse().unwrap()).collect()
    }

    /// Stops it: `(latencies in µs, received, closed)`.
    fn stop(mut self) -> (Vec<u32>, u64, u64) {
        writeln!(self.stdin, "stop").unwrap();
        let done = self.line();
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.out).unwrap_or_default();
        let latencies = bytes.chunks_exact(4).map(|chunk| u32::from_le_bytes(chunk.try_into().unwrap())).collect();
        (latencies, done.first().copied().unwrap_or(0), done.get(1).copied().unwrap_or(0))
    }
}

/// Spawns client processes for `range` (at most `per_process` sockets each) and waits until all opened theirs.
async fn connect(
    url: &str,
    tokens: &std::path::Path,
    range: std::ops::Range<usize>,
    per_process: usize,
    dir: &std::path::Path,
) -> (Vec<ClientProcess>, u64, u64) {
    let mut processes: Vec<ClientProcess> = (range.start..range.end)
        .step_by(per_process)
        .map(|start| ClientProcess::spawn(url, tokens, start..(start + per_process).min(range.end), dir))
        .collect();
    let (mut opened, mut failed) = (0, 0);
    let started = Instant::now();
    for process in &mut processes {
        let ready = tokio::task::block_in_place(|| process.line());
        opened += ready.first().copied().unwrap_or(0);
        failed += ready.get(1).copied().unwrap_or(0);
    }
    println!(
        "  opened {opened} sockets ({failed} failed) in {:.1} s over {} client processes",
        started.elapsed().as_secs_f64(),
        processes.len()
    );
    (processes, opened, failed)
}

fn spawn_server(role: &str, envs: &[(&'static str, String)]) -> Child {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -n 20000 && exec \"$0\" \"$1\"")
        .arg(env!("CARGO_BIN_EXE_comet-server"))
        .arg(role)
        .env("COMET_API_KEY", KEY)
        .env("COMET_AUTH_KEY", "bench-auth-key")
        .env("COMET_LOG", "warn")
        .env("COMET_LOG_FORMAT", "json")
        .stdout(Stdio::null());
    for (name, value) in envs {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

async fn metric(client: &reqwest::Client, admin_port: u16, name: &str) -> f64 {
    let text = match client.get(format!("http://127.0.0.1:{admin_port}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => return -1.0,
    };
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// Waits until the gateway reports `expected` open sockets, then lets it settle.
async fn settle(client: &reqwest::Client, admin_port: u16, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = metric(client, admin_port, "comet_gateway_connections").await;
        if now as u64 == expected || Instant::now() > deadline {
            println!("  gateway reports {now} connections (expected {expected})");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |&us| f64::from(us) / 1000.0)
}

/// Groups: size of group `g` of `groups`, spread evenly over 10..=100, and its members among `users`.
fn group_members(g: u64, groups: u64, users: u64) -> Vec<u64> {
    let size = 10 + 90 * g / (groups - 1).max(1);
    let first = (g * 97) % users;
    (0..size).map(|n| (first + n) % users).collect()
}

async fn driver() {
    let shape = std::env::var("COMET_BENCH_SHAPE").unwrap_or_else(|_| "split".to_owned());
    let phases = std::env::var("COMET_BENCH_PHASES").unwrap_or_else(|_| "idle,load".to_owned());
    let load_sockets = env_number("COMET_BENCH_LOAD_SOCKETS", 10_000);
    let sockets = env_number("COMET_BENCH_SOCKETS", 19_000).max(load_sockets);
    let per_process = env_number("COMET_BENCH_PER_PROCESS", 5_000) as usize;
    let rate = env_number("COMET_BENCH_RATE", 1_000);
    let seconds = env_number("COMET_BENCH_SECONDS", 30);
    let idle_seconds = env_number("COMET_BENCH_IDLE_SECONDS", 30);
    let groups = env_number("COMET_BENCH_GROUPS", 100);
    let group_every = env_number("COMET_BENCH_GROUP_EVERY", 10).max(1);
    let users = if phases.contains("idle") { sockets } else { load_sockets };
    let dir = tempfile::tempdir().unwrap();

    let server =
        std::env::var("COMET_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://app:app@127.0.0.1:3306/app".to_owned());
    let admin = sqlx::mysql::MySqlPool::connect(&server).await.expect("MariaDB: run `bash .ci/services.sh`");
    let name = format!("comet_ws_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    let database_url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
    let brokers = std::env::var("COMET_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let redis = std::env::var("COMET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let common: Vec<(&'static str, String)> = vec![
        ("COMET_DATABASE_URL", database_url.clone()),
        ("COMET_DATA_DIR", dir.path().display().to_string()),
        ("COMET_GATEWAY_MAX_SOCKETS_PER_USER", "10".to_owned()),
    ];
    let with = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        common.iter().cloned().chain(extra.iter().map(|(name, value)| (*name, value.clone()))).collect()
    };
    // (role, process) of every comet-server process; the gateway's admin port and the app ports.
    let mut servers: Vec<(&str, Child)> = Vec::new();
    let (api_port, gateway_port, gateway_admin);
    if shape == "all" {
        let (port, admin_port) = (free_port(), free_port());
        servers.push((
            "all",
            spawn_server(
                "all",
                &with(&[
                    ("COMET_LISTEN", format!("127.0.0.1:{port}")),
                    ("COMET_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}")),
                ]),
            ),
        ));
        support::wait_ready(&client, admin_port, Duration::from_secs(60)).await;
        (api_port, gateway_port, gateway_admin) = (port, port, admin_port);
    } else {
        let kafka = [("COMET_KAFKA_BROKERS", brokers.clone()), ("COMET_REDIS_URL", redis.clone())];
        let status = spawn_server("migrate", &with(&[("COMET_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))]))
            .wait()
            .unwrap();
        assert!(status.success(), "migrate failed");
        let (api, api_admin, relay_admin, gateway, gw_admin) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let mut api_env = with(&kafka);
        api_env.extend([
            ("COMET_LISTEN", format!("127.0.0.1:{api}")),
            ("COMET_ADMIN_LISTEN", format!("127.0.0.1:{api_admin}")),
        ]);
        servers.push(("api", spawn_server("api", &api_env)));
        let mut relay_env = with(&kafka);
        relay_env.push(("COMET_ADMIN_LISTEN", format!("127.0.0.1:{relay_admin}")));
        servers.push(("relay", spawn_server("relay", &relay_env)));
        let mut gateway_env = with(&kafka);
        gateway_env.extend([
            ("COMET_LISTEN", format!("127.0.0.1:{gateway}")),
            ("COMET_ADMIN_LISTEN", format!("127.0.0.1:{gw_admin}")),
        ]);
        servers.push(("gateway", spawn_server("gateway", &gateway_env)));
        for port in [api_admin, relay_admin, gw_admin] {
            support::wait_ready(&client, port, Duration::from_secs(60)).await;
        }
        (api_port, gateway_port, gateway_admin) = (api, gateway, gw_admin);
    }
    let gateway_pid = servers.iter().find(|(role, _)| *role == "all" || *role == "gateway").unwrap().1.id();
    let base = format!("http://127.0.0.1:{api_port}");
    let url = format!("ws://127.0.0.1:{gateway_port}/v3/ws");
    println!(
        "shape {shape}: {}",
        servers.iter().map(|(role, child)| format!("{role} pid {}", child.id())).collect::<Vec<_>>().join(", ")
    );

    // Users u0..u{users}, each with its auth token.
    let started = Instant::now();
    let mut tokens: Vec<(u64, String)> = futures::stream::iter(0..users)
        .map(|user| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let response = client
                    .post(format!("{base}/v3/users"))
                    .header("apikey", KEY)
                    .json(&serde_json::json!({"uid": format!("u{user}"), "name": "bench", "withAuthToken": true}))
                    .send()
                    .await
                    .unwrap();
                let body: serde_json::Value = response.json().await.unwrap();
                (user, body["data"]["authToken"].as_str().expect("authToken").to_owned())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    tokens.sort();
    let tokens_file = dir.path().join("tokens");
    let text: String = tokens.iter().map(|(user, token)| format!("u{user}\t{token}\n")).collect();
    std::fs::write(&tokens_file, text).unwrap();
    println!("created {users} users with tokens in {:.1} s", started.elapsed().as_secs_f64());
    // Groups among the load users; the first member owns the group.
    let started = Instant::now();
    for g in 0..groups {
        let members = group_members(g, groups, load_sockets);
        let owner = format!("u{}", members[0]);
        let created = client
            .post(format!("{base}/v3/groups"))
            .header("apikey", KEY)
            .header("onBehalfOf", &owner)
            .json(&serde_json::json!({"guid": format!("g{g}"), "name": "g", "type": "private"}))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "group g{g}: {}", created.text().await.unwrap_or_default());
        let participants: Vec<String> = members[1..].iter().map(|member| format!("u{member}")).collect();
        let added = client
            .post(format!("{base}/v3/groups/g{g}/members"))
            .header("apikey", KEY)
            .header("onBehalfOf", &owner)
            .json(&serde_json::json!({ "participants": participants }))
            .send()
            .await
            .unwrap();
        assert!(added.status().is_success(), "members of g{g}: {}", added.text().await.unwrap_or_default());
    }
    println!("created {groups} groups (10 to 100 members) in {:.1} s", started.elapsed().as_secs_f64());

    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = rss_kib(gateway_pid);
    println!("gateway VmRSS before connecting: {rss_before} KiB");
    let (mut load_clients, opened, _) =
        connect(&url, &tokens_file, 0..load_sockets as usize, per_process, dir.path()).await;
    settle(&client, gateway_admin, opened).await;
    let rss_load = rss_kib(gateway_pid);
    println!(
        "RESULT idle {opened} sockets: gateway VmRSS {rss_load} KiB, {:.2} KiB per socket",
        (rss_load.saturating_sub(rss_before)) as f64 / opened.max(1) as f64
    );

    if phases.contains("idle") && sockets > load_sockets {
        let (extra, more, _) =
            connect(&url, &tokens_file, load_sockets as usize..sockets as usize, per_process.max(9_000), dir.path())
                .await;
        let total = opened + more;
        settle(&client, gateway_admin, total).await;
        let rss_all = rss_kib(gateway_pid);
        println!(
            "RESULT idle {total} sockets: gateway VmRSS {rss_all} KiB, {:.2} KiB per socket",
            (rss_all.saturating_sub(rss_before)) as f64 / total.max(1) as f64
        );
        let (cpu_0, at) = (cpu_seconds(gateway_pid), Instant::now());
        tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
        let idle_cpu = (cpu_seconds(gateway_pid) - cpu_0) / at.elapsed().as_secs_f64();
        println!(
            "RESULT idle {total} sockets: gateway CPU {:.3} cores over {idle_seconds} s, VmRSS after {} KiB, connections {}",
            idle_cpu,
            rss_kib(gateway_pid),
            metric(&client, gateway_admin, "comet_gateway_connections").await
        );
        for process in extra {
            let (_, _, closed) = tokio::task::block_in_place(|| process.stop());
            if closed > 0 {
                println!("  {closed} extra sockets had been closed by the server before the stop");
            }
        }
        settle(&client, gateway_admin, opened).await;
    }

    if phases.contains("load") {
        load(
            &client,
            &base,
            rate,
            seconds,
            groups,
            group_every,
            load_sockets,
            &servers,
            gateway_admin,
            &mut load_clients,
        )
        .await;
    }
    println!("gateway errors: {}", errors(&client, gateway_admin).await);
    for process in load_clients {
        let _ = tokio::task::block_in_place(|| process.stop());
    }
    for (_, child) in &mut servers {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&admin).await;
}

async fn errors(client: &reqwest::Client, admin_port: u16) -> String {
    let text = match client.get(format!("http://127.0.0.1:{admin_port}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => return "metrics unavailable".to_owned(),
    };
    text.lines()
        .filter(|line| line.starts_with("comet_gateway_connection_errors_total") && !line.ends_with(" 0"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[allow(clippy::too_many_arguments)]
async fn load(
    client: &reqwest::Client,
    base: &str,
    rate: u64,
    seconds: u64,
    groups: u64,
    group_every: u64,
    load_sockets: u64,
    servers: &[(&str, Child)],
    gateway_admin: u16,
    clients: &mut Vec<ClientProcess>,
) {
    let group_sizes: Vec<u64> = (0..groups).map(|g| group_members(g, groups, load_sockets).len() as u64).collect();
    let mut watched: Vec<(String, u32)> =
        servers.iter().map(|(role, child)| (format!("comet-server {role}"), child.id())).collect();
    for name in ["mariadbd", "tansu", "redis-server"] {
        if let Some(pid) = pid_of(name) {
            watched.push((name.to_owned(), pid));
        }
    }
    let generators: Vec<u32> =
        std::iter::once(std::process::id()).chain(clients.iter().map(|process| process.child.id())).collect();
    let cpu_0: Vec<f64> = watched.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let generator_0: f64 = generators.iter().map(|pid| cpu_seconds(*pid)).sum();
    let deliveries_0 = metric(client, gateway_admin, "comet_gateway_deliveries_total").await;

    let sent_ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(AtomicU64::new(0));
    let send_latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(env_number("COMET_BENCH_MAX_IN_FLIGHT", 1_000) as usize));
    let producer: Option<rdkafka::producer::FutureProducer> =
        (std::env::var("COMET_BENCH_SOURCE").as_deref() == Ok("kafka")).then(|| {
            let brokers = std::env::var("COMET_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("linger.ms", "1")
                .create()
                .expect("Kafka producer")
        });
    let mut skipped = 0u64;
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut late = 0u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + interval * n as u32;
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        } else if now - due > Duration::from_millis(10) {
            late += 1;
        }
        let (sender, receiver, receiver_type, fanout) = if n.is_multiple_of(group_every) {
            let g = (n / group_every) % groups;
            (group_members(g, groups, load_sockets)[0], format!("g{g}"), "group", group_sizes[g as usize])
        } else {
            let pair = (n * 7_919) % (load_sockets / 2);
            let (a, b) = if n.is_multiple_of(2) { (2 * pair, 2 * pair + 1) } else { (2 * pair + 1, 2 * pair) };
            (a, format!("u{b}"), "user", 2)
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            skipped += 1;
            failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (client, base, producer) = (client.clone(), base.to_owned(), producer.clone());
        let (sent_ok, failed, expected, send_latencies) =
            (sent_ok.clone(), failed.clone(), expected.clone(), send_latencies.clone());
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            if let Some(producer) = producer {
                let ok = produce(&producer, n, sender, &receiver, receiver_type).await;
                let counter = if ok { &sent_ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                if ok {
                    expected.fetch_add(fanout, Ordering::Relaxed);
                    send_latencies.lock().unwrap().push(at.elapsed().as_micros() as u32);
                }
                drop(permit);
                return;
            }
            let body = serde_json::json!({
                "receiver": receiver,
                "receiverType": receiver_type,
                "type": "text",
                "data": {"text": format!("{MARK}{}", now_micros())},
            });
            let ok = client
                .post(format!("{base}/v3/messages"))
                .header("apikey", KEY)
                .header("onBehalfOf", format!("u{sender}"))
                .json(&body)
                .send()
                .await
                .map(|response| response.status().is_success())
                .unwrap_or(false);
            if ok {
                sent_ok.fetch_add(1, Ordering::Relaxed);
                expected.fetch_add(fanout, Ordering::Relaxed);
                send_latencies.lock().unwrap().push(at.elapsed().as_micros() as u32);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        }));
    }
    let send_window = started.elapsed().as_secs_f64();
    // CPU over the dispatch window: the steady state at the offered rate.
    let cpu: Vec<f64> =
        watched.iter().zip(&cpu_0).map(|((_, pid), before)| (cpu_seconds(*pid) - before) / send_window).collect();
    let generator = (generators.iter().map(|pid| cpu_seconds(*pid)).sum::<f64>() - generator_0) / send_window;
    for task in tasks {
        task.await.unwrap();
    }
    // Let the last deliveries arrive: until the gateway wrote every expected one, for at most 30 s.
    let drain = Instant::now();
    while metric(client, gateway_admin, "comet_gateway_deliveries_total").await - deliveries_0
        < expected.load(Ordering::Relaxed) as f64
        && drain.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gateway_deliveries = metric(client, gateway_admin, "comet_gateway_deliveries_total").await - deliveries_0;

    let mut latencies = Vec::new();
    let (mut received, mut closed) = (0, 0);
    for process in std::mem::take(clients) {
        let (samples, got, ended) = tokio::task::block_in_place(|| process.stop());
        latencies.extend(samples);
        received += got;
        closed += ended;
    }
    latencies.sort_unstable();
    let mut send_latencies = send_latencies.lock().unwrap().clone();
    send_latencies.sort_unstable();
    let sent = sent_ok.load(Ordering::Relaxed);
    println!(
        "load: {rate} sends/s for {seconds} s (one in {group_every} to a group of 10..100), {load_sockets} sockets; \
         dispatch took {send_window:.1} s, {late} sends dispatched > 10 ms late, {skipped} not made (in-flight cap)"
    );
    println!(
        "RESULT sends ok {sent} ({:.0}/s), failed {}; HTTP send ms p50 {:.1} p99 {:.1} max {:.1}",
        sent as f64 / send_window,
        failed.load(Ordering::Relaxed),
        percentile(&send_latencies, 0.5),
        percentile(&send_latencies, 0.99),
        percentile(&send_latencies, 1.0)
    );
    println!(
        "RESULT deliveries received {received} of {} expected ({:.0}/s over the send window), gateway counted {gateway_deliveries}; sockets closed during load {closed}",
        expected.load(Ordering::Relaxed),
        received as f64 / send_window
    );
    println!(
        "RESULT send→deliver ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    let cores: Vec<String> = watched.iter().zip(cpu).map(|((name, _), cores)| format!("{name} {cores:.2}")).collect();
    println!("RESULT CPU cores: {}, load generator {generator:.2}", cores.join(", "));
}

/// Produces one `message.sent` event as the relay would (key: the conversation id), stamped like a REST send.
async fn produce(
    producer: &rdkafka::producer::FutureProducer,
    n: u64,
    sender: u64,
    receiver: &str,
    receiver_type: &str,
) -> bool {
    let sender = format!("u{sender}");
    // The relay's key (`ConversationId::key`) and the display id in the event's data.
    let (key, conversation) = if receiver_type == "group" {
        (format!("g:{receiver}"), format!("group_{receiver}"))
    } else if sender.as_str() < receiver {
        (format!("u:{sender}:{receiver}"), format!("{sender}_user_{receiver}"))
    } else {
        (format!("u:{receiver}:{sender}"), format!("{receiver}_user_{sender}"))
    };
    let time = (now_micros() / 1000) as i64;
    let event = serde_json::json!({
        "id": uuid::Uuid::now_v7().simple().to_string(),
        "type": "message.sent",
        "time": time,
        "key": key,
        "data": {
            "id": uuid::Uuid::now_v7().simple().to_string(),
            "conversationId": conversation,
            "seq": n + 1,
            "sender": sender,
            "receiver": receiver,
            "receiverType": receiver_type,
            "category": "message",
            "type": "text",
            "data": {"text": format!("{MARK}{}", now_micros())},
            "sentAt": time,
        },
    })
    .to_string();
    let record = rdkafka::producer::FutureRecord::to("comet.messages").key(&key).payload(&event);
    producer.send(record, Duration::from_secs(5)).await.is_ok()
}
