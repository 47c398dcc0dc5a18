//! The worker's counters, in Prometheus' text format, labelled with the worker's name.

use std::fmt::Write as _;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use comet_bus::{GroupLag, PartitionLag};

use crate::Outcome;

/// Upper bounds of the handler-latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A latency histogram with fixed bucket bounds (seconds), in Prometheus' text format. The worker's handler
/// latency uses it, and so do the roles' own latencies (the webhooks role's attempts).
#[derive(Debug)]
pub struct LatencyHistogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    micros: AtomicU64,
}

impl LatencyHistogram {
    pub fn new(bounds: &'static [f64]) -> LatencyHistogram {
        let buckets = bounds.iter().map(|_| AtomicU64::new(0)).collect();
        LatencyHistogram { bounds, buckets, count: AtomicU64::new(0), micros: AtomicU64::new(0) }
    }

    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Appends the histogram `name` with its `help`; `labels` (`worker="x"`, or empty) go on every sample.
    pub fn render(&self, text: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_samples(text, name, labels);
    }

    /// Appends only the samples (several histograms of one family, told apart by `labels`, share one HELP).
    pub fn render_samples(&self, text: &mut String, name: &str, labels: &str) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (with, alone) = if labels.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("{labels},"), format!("{{{labels}}}"))
        };
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(text, "{name}_bucket{{{with}le=\"{bound}\"}} {}", load(bucket));
        }
        let count = load(&self.count);
        let _ = writeln!(text, "{name}_bucket{{{with}le=\"+Inf\"}} {count}");
        let _ = writeln!(text, "{name}_sum{alone} {}", load(&self.micros) as f64 / 1e6);
        let _ = writeln!(text, "{name}_count{alone} {count}");
    }
}

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
    in_hand: AtomicU64,
    lag: AtomicU64,
    /// The group's name and the member's lag per partition, as last read (Kafka only).
    partition_lag: std::sync::Mutex<(String, Vec<PartitionLag>)>,
    latency: LatencyHistogram,
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
            in_hand: AtomicU64::new(0),
            lag: AtomicU64::new(0),
            partition_lag: std::sync::Mutex::default(),
            latency: LatencyHistogram::new(&LATENCY_BOUNDS),
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
        self.latency.observe(took);
    }

    pub(crate) fn set_in_hand(&self, held: usize) {
        self.in_hand.store(u64::try_from(held).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn set_lag(&self, group: &str, lag: GroupLag) {
        self.lag.store(lag.total, Ordering::Relaxed);
        *self.partition_lag.lock().unwrap_or_else(PoisonError::into_inner) = (group.to_owned(), lag.partitions);
    }

    /// The group and the member's lag per partition as last read (Kafka only), for the process's one
    /// `comet_kafka_consumer_lag` family ([`comet_bus::render_lag`]).
    pub fn partition_lag(&self) -> (String, Vec<PartitionLag>) {
        self.partition_lag.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The member's lag as last read from the bus ([`comet_bus::GroupSubscription::lag`]).
    pub fn lag(&self) -> u64 {
        self.lag.load(Ordering::Relaxed)
    }

    /// Events taken from the group and not finished: running, or waiting for a slot or behind their key.
    pub fn in_hand(&self) -> u64 {
        self.in_hand.load(Ordering::Relaxed)
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
        WorkerMetrics::render_all(&[self])
    }

    /// The Prometheus text of several workers of one process (`all`), each family's HELP once.
    pub fn render_all(workers: &[&WorkerMetrics]) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut text = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &dyn Fn(&WorkerMetrics) -> Vec<(&str, u64)>| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for metrics in workers {
                for (labels, value) in samples(metrics) {
                    let _ = writeln!(text, "{name}{{worker=\"{}\"{labels}}} {value}", metrics.worker);
                }
            }
        };
        family(
            "comet_worker_events_consumed_total",
            "counter",
            "Events read from the group, redeliveries included.",
            &|metrics| vec![("", load(&metrics.consumed))],
        );
        family("comet_worker_duplicates_total", "counter", "Redelivered events dropped by event id.", &|metrics| {
            vec![("", load(&metrics.duplicates))]
        });
        family("comet_worker_handled_total", "counter", "Handler calls by outcome.", &|metrics| {
            vec![(",outcome=\"done\"", load(&metrics.done)), (",outcome=\"failed\"", load(&metrics.retried))]
        });
        family("comet_worker_dead_letters_total", "counter", "Events written to the dead letters.", &|metrics| {
            vec![("", load(&metrics.dead_lettered))]
        });
        family(
            "comet_worker_bus_errors_total",
            "counter",
            "Failures reading from or committing to the bus.",
            &|metrics| vec![("", load(&metrics.bus_errors))],
        );
        family(
            "comet_worker_events_in_hand",
            "gauge",
            "Events taken and not finished (running or waiting).",
            &|metrics| vec![("", load(&metrics.in_hand))],
        );
        family(
            "comet_worker_lag_events",
            "gauge",
            "Events of this member's partitions not done yet (summed over the replicas: the group's lag).",
            &|metrics| vec![("", load(&metrics.lag))],
        );
        let name = "comet_worker_handler_duration_seconds";
        let _ = writeln!(text, "# HELP {name} How long one handler call took.\n# TYPE {name} histogram");
        for metrics in workers {
            metrics.latency.render_samples(&mut text, name, &format!("worker=\"{}\"", metrics.worker));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_workers_render_each_family_once() {
        let webhooks = WorkerMetrics::new("webhooks");
        let moderation = WorkerMetrics::new("moderation");
        let text = WorkerMetrics::render_all(&[&webhooks, &moderation]);
        assert_eq!(text.matches("# TYPE comet_worker_events_consumed_total counter").count(), 1, "{text}");
        assert!(text.contains("comet_worker_events_consumed_total{worker=\"webhooks\"} 0\n"), "{text}");
        assert!(text.contains("comet_worker_events_consumed_total{worker=\"moderation\"} 0\n"), "{text}");
        assert_eq!(text.matches("# HELP comet_worker_handler_duration_seconds ").count(), 1, "{text}");
    }

    #[test]
    fn histograms_render_cumulative_buckets_with_or_without_labels() {
        let histogram = LatencyHistogram::new(&[0.01, 0.1]);
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_millis(50));
        let mut labelled = String::new();
        histogram.render(&mut labelled, "x_seconds", "X.", "worker=\"w\"");
        assert!(labelled.contains("x_seconds_bucket{worker=\"w\",le=\"0.01\"} 1\n"), "{labelled}");
        assert!(labelled.contains("x_seconds_bucket{worker=\"w\",le=\"0.1\"} 2\n"), "{labelled}");
        assert!(labelled.contains("x_seconds_bucket{worker=\"w\",le=\"+Inf\"} 2\n"), "{labelled}");
        assert!(labelled.contains("x_seconds_sum{worker=\"w\"} 0.055\n"), "{labelled}");
        assert!(labelled.contains("x_seconds_count{worker=\"w\"} 2\n"), "{labelled}");
        let mut bare = String::new();
        histogram.render(&mut bare, "x_seconds", "X.", "");
        assert!(bare.contains("x_seconds_bucket{le=\"0.1\"} 2\n") && bare.contains("x_seconds_count 2\n"), "{bare}");
    }
}
