//! Logs and metrics. Logs go to stderr: JSON when `COMET_LOG_FORMAT=json` or stderr is not a terminal,
//! readable text otherwise; `COMET_LOG` filters them (`info` by default).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use tracing_subscriber::EnvFilter;

use crate::config::{LOG, LOG_FORMAT, Settings};

pub fn init(settings: &Settings) -> Result<()> {
    let filter = EnvFilter::try_new(settings.get(LOG)?.unwrap_or_else(|| "info".to_owned()))?;
    let json = match settings.get(LOG_FORMAT)?.as_deref() {
        Some("json") => true,
        Some("text") => false,
        Some(other) => anyhow::bail!("{LOG_FORMAT}=`{other}`: use json or text"),
        None => !std::io::stderr().is_terminal(),
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    result.map_err(|error| anyhow::anyhow!("{error}"))
}

/// Before logging is set up, errors go to stderr as one line.
#[allow(clippy::print_stderr)]
pub fn report_startup_error(error: &anyhow::Error) {
    eprintln!("comet-server: {error:#}");
}

/// Counters exported on /metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub http_responses_2xx: AtomicU64,
    pub http_responses_4xx: AtomicU64,
    pub http_responses_5xx: AtomicU64,
    /// The app port's connections.
    pub app_connections: std::sync::Arc<crate::http::Connections>,
}

impl Metrics {
    pub fn count_status(&self, status: u16) {
        let counter = match status {
            500.. => &self.http_responses_5xx,
            400.. => &self.http_responses_4xx,
            _ => &self.http_responses_2xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
