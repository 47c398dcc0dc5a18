//! What the server tests share: starting comet-server processes, free ports, fresh MariaDB databases, REST calls.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use comet_testkit::free_port;
use serde_json::Value;

/// Held by the tests whose roles join Kafka consumer groups and kill a member: run side by side on the one
/// test broker (tansu), one test's group rebalances (a SIGKILLed member's session timing out) held up the
/// other's for more than its 90 s wait in the full suite, while each passed alone in seconds.
pub static KAFKA_GROUP_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Server {
    pub child: Child,
    pub app: String,
    pub admin: String,
}

impl Server {
    pub fn start(role: &str, data_dir: &Path, extra_env: &[(&str, String)]) -> Server {
        Server::start_logging(role, data_dir, extra_env, Stdio::null())
    }

    /// [`Server::start`] with the server's log (JSON lines on stderr) going to `log`.
    pub fn start_logging(role: &str, data_dir: &Path, extra_env: &[(&str, String)], log: Stdio) -> Server {
        let (app_port, admin_port) = (free_port(), free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_comet-server"));
        command
            .arg(role)
            .env_clear()
            .env("COMET_LISTEN", format!("127.0.0.1:{app_port}"))
            .env("COMET_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("COMET_DATA_DIR", data_dir)
            .env("COMET_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(log);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().expect("comet-server starts");
        Server { child, app: format!("http://127.0.0.1:{app_port}"), admin: format!("http://127.0.0.1:{admin_port}") }
    }

    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("comet-server exited early with {status}");
            }
            if let Ok(response) = client.get(format!("{}/ready", self.admin)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "comet-server was not ready within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "comet-server did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn post(client: &reqwest::Client, url: String, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    let mut request = client.post(url).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A name no other test of this run (or of a concurrent run) uses: the process id and a per-process counter.
/// (A port from `free_port` is not enough: two tests can be handed the same free port one after the other.)
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{prefix}{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The MariaDB server and the account (`app`, every privilege with GRANT OPTION) that `bash .ci/services.sh`
/// provides.
pub fn mysql_server_url() -> String {
    comet_testkit::mysql_url()
}

/// A fresh, empty MariaDB database for one test (left behind, for a look after a failure).
pub async fn fresh_mysql_database() -> String {
    comet_testkit::TestDatabase::mariadb().await.url
}

/// Runs `comet-server migrate` with `env` only (and JSON logs) and returns its exit status and output.
pub fn run_migrate(env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("migrate")
        .env_clear()
        .env("COMET_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .output()
        .expect("migrate runs")
}

/// Runs `comet-server migrate` on `database_url` and asserts it exits 0.
pub fn migrate(database_url: &str) {
    let output = run_migrate(&[("COMET_DATABASE_URL", database_url)]);
    assert!(output.status.success(), "migrate failed: {}", String::from_utf8_lossy(&output.stderr));
}
