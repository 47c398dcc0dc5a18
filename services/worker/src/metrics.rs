//! The worker's counters, in Prometheus' text format, labelled with the worker's name.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Outcome;

/// Upper bounds of the handler-latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters of one worker.
#[derive(Debug)]
pub struct WorkerMetrics {
    worker: &'static str,
    consumed: AtomicU64,
    duplicates: AtomicU64,
    done: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    bus_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl WorkerMetrics {
    pub fn new(worker: &'static str) -> WorkerMetrics {
        WorkerMetrics {
            worker,
            consumed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            done: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            bus_errors: AtomicU64::new(0),
            latency_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_count: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bus_error(&self) {
        self.bus_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One handler call: its outcome and how long it took.
    pub(crate) fn observe(&self, outcome: &Outcome, took: Duration) {
        let counter = match outcome {
            Outcome::Done => &self.done,
            Outcome::RetryLater(_) | Outcome::DeadLetter(_) => &self.retried,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Events handled to the end as done, so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Events written to the dead letters, so far.
    pub fn dead_letters(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    /// Redeliveries dropped, so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// The Prometheus text of these counters.
    pub fn render(&self) -> String {
        let worker = self.worker;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut text = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in samples {
                let _ = writeln!(text, "{name}{{worker=\"{worker}\"{labels}}} {value}");
            }
        };
        counter(
            "comet_worker_events_consumed_total",
            "Events read from the group, redeliveries included.",
            &[("", load(&self.consumed))],
        );
        counter(
            "comet_worker_duplicates_total",
            "Redelivered events dropped by event id.",
            &[("", load(&self.duplicates))],
        );
        counter(
            "comet_worker_handled_total",
            "Handler calls by outcome.",
            &[(",outcome=\"done\"", load(&self.done)), (",outcome=\"failed\"", load(&self.retried))],
        );
        counter(
            "comet_worker_dead_letters_total",
            "Events written to the dead letters.",
            &[("", load(&self.dead_lettered))],
        );
        counter(
            "comet_worker_bus_errors_total",
            "Failures reading from or committing to the bus.",
            &[("", load(&self.bus_errors))],
        );
        let name = "comet_worker_handler_duration_seconds";
        let _ = writeln!(text, "# HELP {name} How long one handler call took.\n# TYPE {name} histogram");
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(text, "{name}_bucket{{worker=\"{worker}\",le=\"{bound}\"}} {}", load(bucket));
        }
        let count = load(&self.latency_count);
        let _ = writeln!(text, "{name}_bucket{{worker=\"{worker}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(text, "{name}_sum{{worker=\"{worker}\"}} {}", load(&self.latency_micros) as f64 / 1e6);
        let _ = writeln!(text, "{name}_count{{worker=\"{worker}\"}} {count}");
        text
    }
}
