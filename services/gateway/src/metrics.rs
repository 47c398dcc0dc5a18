//! The gateway's Prometheus metrics (names and labels are the contract in templates/prometheus/alerts.yml.j2):
//! plain atomics, rendered as text by the admin port's `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use comet_bus::{PartitionLag, TopicCounts};

/// Why a connection was refused or dropped: the bounded `reason` label of
/// `comet_gateway_connection_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    Handshake,
    Auth,
    Protocol,
    Timeout,
    RateLimited,
    SlowConsumer,
    Internal,
}

impl ErrorReason {
    const ALL: [ErrorReason; 7] = [
        ErrorReason::Handshake,
        ErrorReason::Auth,
        ErrorReason::Protocol,
        ErrorReason::Timeout,
        ErrorReason::RateLimited,
        ErrorReason::SlowConsumer,
        ErrorReason::Internal,
    ];

    fn label(self) -> &'static str {
        match self {
            ErrorReason::Handshake => "handshake",
            ErrorReason::Auth => "auth",
            ErrorReason::Protocol => "protocol",
            ErrorReason::Timeout => "timeout",
            ErrorReason::RateLimited => "rate_limited",
            ErrorReason::SlowConsumer => "slow_consumer",
            ErrorReason::Internal => "internal",
        }
    }
}

/// How a resync request for one conversation ended: the `outcome` label of `comet_gateway_resyncs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncOutcome {
    Replayed,
    TooFar,
    Refused,
}

impl ResyncOutcome {
    const ALL: [ResyncOutcome; 3] = [ResyncOutcome::Replayed, ResyncOutcome::TooFar, ResyncOutcome::Refused];

    fn label(self) -> &'static str {
        match self {
            ResyncOutcome::Replayed => "replayed",
            ResyncOutcome::TooFar => "too_far",
            ResyncOutcome::Refused => "refused",
        }
    }
}

/// Upper bounds, in seconds, of the delivery latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Every gateway counter, shared by all sockets of the node.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicI64,
    opened: AtomicU64,
    errors: [AtomicU64; 7],
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    deliveries: AtomicU64,
    latency_buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    resyncs: [AtomicU64; 3],
    replayed_messages: AtomicU64,
    events_consumed: AtomicU64,
    /// The Kafka tail's lag per partition, as last measured (empty with the in-process bus).
    kafka_lag: Mutex<Vec<PartitionLag>>,
    /// The Kafka tail's events read per topic (unset with the in-process bus).
    kafka_consumed: OnceLock<Arc<TopicCounts>>,
}

impl Metrics {
    pub fn opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open sockets on this node now.
    pub fn connections(&self) -> i64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn error(&self, reason: ErrorReason) {
        self.errors[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused or dropped for `reason` so far.
    pub fn errors(&self, reason: ErrorReason) -> u64 {
        self.errors[reason as usize].load(Ordering::Relaxed)
    }

    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn frame_out(&self) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
    }

    pub fn event_consumed(&self) {
        self.events_consumed.fetch_add(1, Ordering::Relaxed);
    }

    /// A live event reached a socket `latency_ms` after its commit.
    pub fn delivered(&self, latency_ms: i64) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let seconds = latency_ms.max(0) as f64 / 1000.0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(latency_ms.max(0).unsigned_abs() * 1000, Ordering::Relaxed);
    }

    /// Live events written to sockets so far.
    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    pub fn resync(&self, outcome: ResyncOutcome, replayed: usize) {
        self.resyncs[outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.replayed_messages.fetch_add(replayed as u64, Ordering::Relaxed);
    }

    /// Exports the Kafka tail's counts as `comet_kafka_messages_consumed_total{group="gateway"}`.
    pub fn read_kafka_through(&self, consumed: Arc<TopicCounts>) {
        let _ = self.kafka_consumed.set(consumed);
    }

    pub fn set_kafka_lag(&self, lags: Vec<PartitionLag>) {
        *self.kafka_lag.lock().unwrap_or_else(PoisonError::into_inner) = lags;
    }

    /// The tail's lag per partition as last measured (group `gateway`), for the process's one
    /// `comet_kafka_consumer_lag` family ([`comet_bus::render_lag`]).
    pub fn kafka_lag(&self) -> Vec<PartitionLag> {
        self.kafka_lag.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Appends every gateway metric in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line("# HELP comet_gateway_connections WebSocket connections open now.".into());
        line("# TYPE comet_gateway_connections gauge".into());
        line(format!("comet_gateway_connections {}", self.connections()));
        line("# HELP comet_gateway_connections_opened_total WebSocket connections accepted.".into());
        line("# TYPE comet_gateway_connections_opened_total counter".into());
        line(format!("comet_gateway_connections_opened_total {}", load(&self.opened)));
        line("# HELP comet_gateway_connection_errors_total Connections refused or dropped, by reason.".into());
        line("# TYPE comet_gateway_connection_errors_total counter".into());
        for reason in ErrorReason::ALL {
            line(format!(
                "comet_gateway_connection_errors_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.errors(reason)
            ));
        }
        line("# HELP comet_gateway_messages_total WebSocket data frames, in from clients or out to them.".into());
        line("# TYPE comet_gateway_messages_total counter".into());
        line(format!("comet_gateway_messages_total{{direction=\"in\"}} {}", load(&self.frames_in)));
        line(format!("comet_gateway_messages_total{{direction=\"out\"}} {}", load(&self.frames_out)));
        line("# HELP comet_gateway_events_consumed_total Bus events this node read.".into());
        line("# TYPE comet_gateway_events_consumed_total counter".into());
        line(format!("comet_gateway_events_consumed_total {}", load(&self.events_consumed)));
        line("# HELP comet_gateway_deliveries_total Live events written to a socket.".into());
        line("# TYPE comet_gateway_deliveries_total counter".into());
        line(format!("comet_gateway_deliveries_total {}", self.deliveries()));
        line("# HELP comet_gateway_delivery_latency_seconds From an event's commit to its write on a socket.".into());
        line("# TYPE comet_gateway_delivery_latency_seconds histogram".into());
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            line(format!("comet_gateway_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {}", load(bucket)));
        }
        let count = load(&self.latency_count);
        line(format!("comet_gateway_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {count}"));
        let mut sum = String::new();
        let _ = write!(sum, "{}", load(&self.latency_sum_micros) as f64 / 1_000_000.0);
        line(format!("comet_gateway_delivery_latency_seconds_sum {sum}"));
        line(format!("comet_gateway_delivery_latency_seconds_count {count}"));
        line("# HELP comet_gateway_resyncs_total Conversations asked for in resync requests, by outcome.".into());
        line("# TYPE comet_gateway_resyncs_total counter".into());
        for outcome in ResyncOutcome::ALL {
            line(format!(
                "comet_gateway_resyncs_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                load(&self.resyncs[outcome as usize])
            ));
        }
        line("# HELP comet_gateway_replayed_messages_total Messages replayed from the database by resyncs.".into());
        line("# TYPE comet_gateway_replayed_messages_total counter".into());
        line(format!("comet_gateway_replayed_messages_total {}", load(&self.replayed_messages)));
        if let Some(consumed) = self.kafka_consumed.get() {
            let help = "Events read from Kafka; gateways read without a group and report group \"gateway\".";
            consumed.render("comet_kafka_messages_consumed_total", help, "group=\"gateway\"", out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_every_bucket_at_or_above_it() {
        let metrics = Metrics::default();
        metrics.delivered(30);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("comet_gateway_delivery_latency_seconds_bucket{le=\"0.025\"} 0"), "{out}");
        assert!(out.contains("comet_gateway_delivery_latency_seconds_bucket{le=\"0.05\"} 1"), "{out}");
        assert!(out.contains("comet_gateway_delivery_latency_seconds_bucket{le=\"+Inf\"} 1"), "{out}");
        assert!(out.contains("comet_gateway_deliveries_total 1"), "{out}");
    }
}
