#![allow(dead_code)] // Shared with benches/deploy.rs, which reads the timings the tests do not.
//! A load generator through NGINX while a cometctl command runs: one sender (alice → bob), one request at a
//! time, every outcome kept. Shared by the upgrade test and the deploy benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::chat::Chat;
use crate::harness::Deployment;
use crate::support::Run;

/// What the load saw while the command ran.
pub struct Outcome {
    /// The command's result.
    pub run: Run,
    /// The wall time of the command.
    pub elapsed: Duration,
    /// Ids of the acknowledged messages, in send order.
    pub acknowledged: Vec<String>,
    /// One line per failed request.
    pub failures: Vec<String>,
    /// Latency of every acknowledged request.
    pub latencies: Vec<Duration>,
}

impl Outcome {
    /// The `q` quantile (0..=1) of the latencies.
    pub fn latency(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }

    /// The failures, with what NGINX logged about failed requests and the backend network, for a message.
    pub fn explain(&self, deployment: &Deployment) -> String {
        let nginx = format!("{}-nginx-1", deployment.name);
        let (_, logs, errors) = crate::harness::docker(&["logs", &nginx]);
        let nginx_lines: Vec<&str> = logs
            .lines()
            .chain(errors.lines())
            .filter(|line| {
                line.contains("\"status\":\"4") || line.contains("\"status\":\"5") || line.contains("[error]")
            })
            .collect();
        format!(
            "{} failed requests: {:?}\nNGINX:\n{}\ncometctl stdout:\n{}\nstderr:\n{}",
            self.failures.len(),
            &self.failures[..self.failures.len().min(5)],
            nginx_lines.join("\n"),
            self.run.stdout,
            self.run.stderr
        )
    }
}

async fn send_until(chat: Arc<Chat>, stop: Arc<AtomicBool>) -> (Vec<String>, Vec<String>, Vec<Duration>) {
    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    let mut latencies = Vec::new();
    let mut n = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let started = Instant::now();
        match chat.send("alice", "bob", &format!("load {n}")).await {
            Ok(message) => {
                latencies.push(started.elapsed());
                acknowledged.push(message["id"].to_string());
            }
            Err(error) => failures.push(error),
        }
    }
    (acknowledged, failures, latencies)
}

/// Runs cometctl `args` against `deployment` while alice sends to bob continuously.
pub fn during(runtime: &tokio::runtime::Runtime, deployment: &Deployment, chat: &Arc<Chat>, args: &[&str]) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let generator = runtime.spawn(send_until(chat.clone(), stop.clone()));
    let started = Instant::now();
    let run = deployment.run(args);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failures, latencies) = runtime.block_on(generator).expect("load generator");
    Outcome { run, elapsed, acknowledged, failures, latencies }
}
