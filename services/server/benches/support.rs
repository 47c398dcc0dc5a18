//! What the benches share: knobs from the environment, ports, and reading a process's CPU and memory from
//! /proc. Each bench declares `mod support;` (benches are separate crates; `autobenches = false` keeps this
//! file from being a bench of its own).
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

pub use comet_testkit::free_port;

/// CPU seconds (user + system) a process has used, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// VmRSS of a process in KiB, from /proc/<pid>/status.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// The pid of the first process named exactly `name`.
pub fn pid_of(name: &str) -> Option<u32> {
    let output = Command::new("pgrep").args(["-x", name]).output().ok()?;
    String::from_utf8_lossy(&output.stdout).lines().next()?.trim().parse().ok()
}

/// Waits until comet-server's admin port answers `/ready`, for at most `within`.
pub async fn wait_ready(client: &reqwest::Client, admin_port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while client
        .get(format!("http://127.0.0.1:{admin_port}/ready"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "server on admin port {admin_port} not ready within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
