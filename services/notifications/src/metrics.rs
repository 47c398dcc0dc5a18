//! The notifications role's counters, in Prometheus' text format: per provider kind (sent, failed by reason,
//! retried, tokens cleaned up, latency) and per decision (skipped by reason).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use comet_worker::LatencyHistogram;

use crate::decision::Skip;

const LATENCY_BOUNDS: [f64; 9] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
const KINDS: [&str; 3] = ["fcm", "apns", "webhook"];
/// Why a push failed for good: the `reason` label (bounded).
const FAILURES: [&str; 4] = ["token_gone", "refused", "gave_up", "provider_unusable"];
const SKIPS: [Skip; 10] = [
    Skip::Sender,
    Skip::NotMember,
    Skip::GroupTooLarge,
    Skip::CustomWithoutFlag,
    Skip::Online,
    Skip::Muted,
    Skip::DoNotDisturb,
    Skip::QuietHours,
    Skip::ReactionsOff,
    Skip::NoToken,
];

#[derive(Debug)]
struct PerKind {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: [AtomicU64; FAILURES.len()],
    cleanups: AtomicU64,
    latency: LatencyHistogram,
}

impl PerKind {
    fn new() -> PerKind {
        PerKind {
            sent: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: std::array::from_fn(|_| AtomicU64::new(0)),
            cleanups: AtomicU64::new(0),
            latency: LatencyHistogram::new(&LATENCY_BOUNDS),
        }
    }
}

/// How a push attempt ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Sent,
    Retried,
    TokenGone,
    Refused,
    GaveUp,
    ProviderUnusable,
}

#[derive(Debug)]
pub struct NotificationMetrics {
    kinds: [PerKind; KINDS.len()],
    skipped: [AtomicU64; SKIPS.len()],
    queued: AtomicU64,
    overflowed: AtomicU64,
    store_errors: AtomicU64,
}

impl Default for NotificationMetrics {
    fn default() -> NotificationMetrics {
        NotificationMetrics {
            kinds: std::array::from_fn(|_| PerKind::new()),
            skipped: std::array::from_fn(|_| AtomicU64::new(0)),
            queued: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
        }
    }
}

impl NotificationMetrics {
    fn kind(&self, kind: &str) -> &PerKind {
        let index = KINDS.iter().position(|known| *known == kind).unwrap_or(0);
        &self.kinds[index]
    }

    pub(crate) fn ended(&self, kind: &str, ended: Ended, took: Option<Duration>) {
        let per = self.kind(kind);
        let counter = match ended {
            Ended::Sent => &per.sent,
            Ended::Retried => &per.retried,
            Ended::TokenGone => {
                per.cleanups.fetch_add(1, Ordering::Relaxed);
                &per.failed[0]
            }
            Ended::Refused => &per.failed[1],
            Ended::GaveUp => &per.failed[2],
            Ended::ProviderUnusable => &per.failed[3],
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(took) = took {
            per.latency.observe(took);
        }
    }

    /// A request's duration without an ending (a retry is counted when it is scheduled).
    pub(crate) fn latency_only(&self, kind: &str, took: Duration) {
        self.kind(kind).latency.observe(took);
    }

    pub(crate) fn skipped(&self, skip: Skip) {
        if let Some(index) = SKIPS.iter().position(|known| *known == skip) {
            self.skipped[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn queued(&self, count: u64) {
        self.queued.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn overflowed(&self, count: u64) {
        self.overflowed.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Pushes providers accepted, over every kind.
    pub fn sent(&self) -> u64 {
        self.kinds.iter().map(|per| per.sent.load(Ordering::Relaxed)).sum()
    }

    /// The Prometheus text; `pending` is the table's backlog when the store answered.
    pub fn render(&self, pending: Option<i64>) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut text = String::new();
        let family = |text: &mut String, name: &str, help: &str, kind: &str| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut text, "comet_notifications_sent_total", "Pushes a provider accepted.", "counter");
        for (kind, per) in KINDS.iter().zip(&self.kinds) {
            let _ = writeln!(text, "comet_notifications_sent_total{{provider=\"{kind}\"}} {}", load(&per.sent));
        }
        family(&mut text, "comet_notifications_failed_total", "Pushes that failed for good, by reason.", "counter");
        for (kind, per) in KINDS.iter().zip(&self.kinds) {
            for (reason, counter) in FAILURES.iter().zip(&per.failed) {
                let _ = writeln!(
                    text,
                    "comet_notifications_failed_total{{provider=\"{kind}\",reason=\"{reason}\"}} {}",
                    load(counter)
                );
            }
        }
        family(&mut text, "comet_notifications_retried_total", "Attempts that will be tried again.", "counter");
        for (kind, per) in KINDS.iter().zip(&self.kinds) {
            let _ = writeln!(text, "comet_notifications_retried_total{{provider=\"{kind}\"}} {}", load(&per.retried));
        }
        family(
            &mut text,
            "comet_notifications_token_cleanups_total",
            "Tokens deleted on the provider's word.",
            "counter",
        );
        for (kind, per) in KINDS.iter().zip(&self.kinds) {
            let _ = writeln!(
                text,
                "comet_notifications_token_cleanups_total{{provider=\"{kind}\"}} {}",
                load(&per.cleanups)
            );
        }
        family(&mut text, "comet_notifications_skipped_total", "Recipients that got no push, by reason.", "counter");
        for (skip, counter) in SKIPS.iter().zip(&self.skipped) {
            let _ =
                writeln!(text, "comet_notifications_skipped_total{{reason=\"{}\"}} {}", skip.as_str(), load(counter));
        }
        for (name, help, counter) in [
            ("comet_notifications_queued_total", "Pushes handed to a provider's queue.", &self.queued),
            (
                "comet_notifications_overflowed_total",
                "Pushes left in the table because a queue was full.",
                &self.overflowed,
            ),
            ("comet_notifications_store_errors_total", "Store calls of the sender that failed.", &self.store_errors),
        ] {
            family(&mut text, name, help, "counter");
            let _ = writeln!(text, "{name} {}", load(counter));
        }
        if let Some(pending) = pending {
            family(&mut text, "comet_notifications_pending", "Pushes owed (due or waiting for a retry).", "gauge");
            let _ = writeln!(text, "comet_notifications_pending {pending}");
        }
        let name = "comet_notifications_send_duration_seconds";
        family(&mut text, name, "How long one provider request took.", "histogram");
        for (kind, per) in KINDS.iter().zip(&self.kinds) {
            per.latency.render_samples(&mut text, name, &format!("provider=\"{kind}\""));
        }
        text
    }
}
