//! Waiting for what a deploy started to become ready, and the report when it does not: the Engine's own
//! evidence (state, last health checks, log tail), ending in a `DeployFailed` (exit 3).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::engine::Engine;
use crate::error::DeployFailed;
use crate::printer::ProgressLine;

/// How often readiness is polled.
pub const POLL: Duration = Duration::from_millis(500);
/// Log lines shown for a service that failed.
const LOG_TAIL: usize = 25;

/// Something a deploy starts and then waits for: a container (compose) or a service (swarm).
pub trait Awaited {
    /// How long it may take to be ready, in seconds.
    fn timeout_seconds(&self) -> u64;
    fn readiness(&self, engine: &Engine) -> Result<Readiness>;
    /// Why it did not become ready (`what`), with what the Engine can tell: a `DeployFailed`.
    fn failure(&self, engine: &Engine, what: &str) -> anyhow::Error;
}

#[derive(Debug)]
pub enum Readiness {
    Ready(String),
    Waiting(String),
    Failed(String),
}

/// Waits until every entry is ready (each line then shows how), or one fails or times out (its report).
pub fn wait_all<T: Awaited>(engine: &Engine, entries: &[(T, ProgressLine)]) -> Result<()> {
    let mut pending: Vec<&(T, ProgressLine)> = entries.iter().collect();
    let started = Instant::now();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for entry in pending {
            let (awaited, line) = entry;
            match awaited.readiness(engine)? {
                Readiness::Ready(message) => line.finish(&message),
                Readiness::Waiting(message) => {
                    if started.elapsed().as_secs() > awaited.timeout_seconds() {
                        line.finish("timed out");
                        return Err(awaited.failure(engine, &format!("not ready after {}s", awaited.timeout_seconds())));
                    }
                    line.set(&message);
                    still.push(entry);
                }
                Readiness::Failed(message) => {
                    line.finish("failed");
                    return Err(awaited.failure(engine, &message));
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            std::thread::sleep(POLL);
        }
    }
    Ok(())
}

/// Waits for one entry, showing its progress on `line` without finishing it (the caller says how it ended).
pub fn wait_one<T: Awaited>(engine: &Engine, awaited: &T, line: &ProgressLine) -> Result<()> {
    let started = Instant::now();
    loop {
        match awaited.readiness(engine)? {
            Readiness::Ready(_) => return Ok(()),
            Readiness::Failed(message) => return Err(awaited.failure(engine, &message)),
            Readiness::Waiting(message) => {
                if started.elapsed().as_secs() > awaited.timeout_seconds() {
                    return Err(awaited.failure(engine, &format!("not ready after {}s", awaited.timeout_seconds())));
                }
                line.set(&message);
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Appends a container's last health checks and log tail to a failure report.
pub fn append_container_report(engine: &Engine, container: &str, report: &mut String) {
    if let Ok(Some(detail)) = engine.container_detail(container)
        && !detail.health_log.is_empty()
    {
        report.push_str("\n  last health checks:");
        for probe in detail.health_log.iter().rev().take(3).rev() {
            let _ = write!(report, "\n    {probe}");
        }
    }
    match engine.log_tail(container, LOG_TAIL) {
        Ok(lines) if !lines.is_empty() => {
            let _ = write!(report, "\n  last {} log lines:", lines.len());
            for log_line in lines {
                let _ = write!(report, "\n    {log_line}");
            }
        }
        Ok(_) => report.push_str("\n  (no log output)"),
        Err(error) => {
            let _ = write!(report, "\n  (logs unavailable: {error})");
        }
    }
}

/// A deploy that stopped at a service, with its report.
pub fn deploy_failed(mut report: String) -> anyhow::Error {
    report.push_str("\n  services that were already running were left running; fix the cause and deploy again");
    anyhow::Error::new(DeployFailed(report)).context("deploy stopped")
}
