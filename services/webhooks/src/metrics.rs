//! The webhooks role's counters, in Prometheus' text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use comet_worker::LatencyHistogram;

/// Upper bounds of the attempt-latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 9] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 15.0];

/// How attempts ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed with no attempt left.
    GaveUp,
}

/// Counters of one dispatcher.
#[derive(Debug)]
pub struct WebhookMetrics {
    delivered: AtomicU64,
    retrying: AtomicU64,
    gave_up: AtomicU64,
    disabled: AtomicU64,
    enqueued: AtomicU64,
    store_errors: AtomicU64,
    latency: LatencyHistogram,
}

impl Default for WebhookMetrics {
    fn default() -> WebhookMetrics {
        WebhookMetrics {
            delivered: AtomicU64::new(0),
            retrying: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            disabled: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            latency: LatencyHistogram::new(&LATENCY_BOUNDS),
        }
    }
}

impl WebhookMetrics {
    pub(crate) fn attempt(&self, outcome: AttemptOutcome, took: Duration) {
        let counter = match outcome {
            AttemptOutcome::Delivered => &self.delivered,
            AttemptOutcome::Retrying => &self.retrying,
            AttemptOutcome::GaveUp => &self.gave_up,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
    }

    pub(crate) fn disabled(&self) {
        self.disabled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn enqueued(&self, count: u64) {
        self.enqueued.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts that got a 2xx, so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// The Prometheus text of these counters; `pending` is the store's backlog when it answered.
    pub fn render(&self, pending: Option<i64>) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut text = String::new();
        let name = "comet_webhook_attempts_total";
        let _ = writeln!(text, "# HELP {name} Delivery attempts by outcome.\n# TYPE {name} counter");
        for (outcome, counter) in
            [("delivered", &self.delivered), ("retrying", &self.retrying), ("gave_up", &self.gave_up)]
        {
            let _ = writeln!(text, "{name}{{outcome=\"{outcome}\"}} {}", load(counter));
        }
        for (name, help, counter) in [
            ("comet_webhook_deliveries_enqueued_total", "Deliveries made from events.", &self.enqueued),
            ("comet_webhooks_disabled_total", "Webhooks disabled after failing for the whole window.", &self.disabled),
            ("comet_webhook_store_errors_total", "Store calls of the dispatcher that failed.", &self.store_errors),
        ] {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", load(counter));
        }
        if let Some(pending) = pending {
            let name = "comet_webhook_deliveries_pending";
            let _ = writeln!(text, "# HELP {name} Deliveries owed (due or waiting for a retry).\n# TYPE {name} gauge");
            let _ = writeln!(text, "{name} {pending}");
        }
        let help = "How long one delivery attempt took.";
        self.latency.render(&mut text, "comet_webhook_attempt_duration_seconds", help, "");
        text
    }
}
