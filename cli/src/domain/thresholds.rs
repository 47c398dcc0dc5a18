//! The one threshold table: `doctor` warns at a row's `warn` (the scaling trigger: time to act) and fails at
//! its `fail` (the alert level), and the Prometheus alert rules (templates/prometheus/alerts.yml.j2) read the
//! same rows from the render context (`thresholds`), so a check and its alert never disagree.
//!
//! A row is either a floor (`Below`: lower is worse, e.g. free disk) or a ceiling (`Above`: higher is worse,
//! e.g. consumer lag). Values are whole numbers in the row's unit.

use serde::Serialize;

/// Which way a value gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Worse as it falls: warn below `warn`, fail below `fail`.
    Below,
    /// Worse as it rises: warn at or above `warn`, fail at or above `fail`.
    Above,
}

/// How a value compares with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub warn: u64,
    pub fail: u64,
    pub unit: &'static str,
    pub direction: Direction,
}

impl Limit {
    pub fn level(&self, value: u64) -> Level {
        match self.direction {
            Direction::Below if value < self.fail => Level::Fail,
            Direction::Below if value < self.warn => Level::Warn,
            Direction::Above if value >= self.fail => Level::Fail,
            Direction::Above if value >= self.warn => Level::Warn,
            _ => Level::Ok,
        }
    }

    /// The row as evidence text: `warn < 15 %, fail < 5 %`.
    pub fn describe(&self) -> String {
        let (warn, fail) = match self.direction {
            Direction::Below => ("<", "<"),
            Direction::Above => ("≥", "≥"),
        };
        let unit = if self.unit.is_empty() { String::new() } else { format!(" {}", self.unit) };
        format!("warn {warn} {}{unit}, fail {fail} {}{unit}", self.warn, self.fail)
    }
}

const fn below(warn: u64, fail: u64, unit: &'static str) -> Limit {
    Limit { warn, fail, unit, direction: Direction::Below }
}

const fn above(warn: u64, fail: u64, unit: &'static str) -> Limit {
    Limit { warn, fail, unit, direction: Direction::Above }
}

/// Every threshold `doctor` and the alert rules share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Free space on the disk holding Docker's data (alerts NodeDiskSpaceLow / NodeDiskSpaceCritical).
    pub disk_free_percent: Limit,
    /// fsync latency of that disk, 99th percentile (etcd's guidance: under 10 ms; TiKV and PD suffer beyond).
    pub fsync_p99_ms: Limit,
    /// Redis used memory against its maxmemory (alert RedisMemoryHigh at the fail level).
    pub redis_memory_percent: Limit,
    /// Messages a consumer group is behind, summed over a topic (alert KafkaConsumerLagHigh).
    pub kafka_consumer_lag: Limit,
    /// Events committed and not yet published by the relay.
    pub outbox_backlog: Limit,
    /// Open WebSocket connections against the plan's capacity for the gateways.
    pub gateway_connections_percent: Limit,
    /// Restarts of a long-running container (alert ContainerRestarting: more than 2 beyond those running).
    pub container_restarts: Limit,
    /// Days before the edge certificate expires.
    pub certificate_days: Limit,
    /// Days since a secret was created (the rotation policy).
    pub secret_age_days: Limit,
    /// Open files the Docker daemon allows a process (CometChat's guide: at least 500,000); below the
    /// spec's `host.nofile` the containers cannot start, which `doctor` checks on its own.
    pub daemon_nofile: Limit,
    /// `net.core.somaxconn` and `net.core.netdev_max_backlog`: connection bursts at the edge and gateways.
    pub somaxconn: Limit,
    pub netdev_max_backlog: Limit,
}

/// The table.
pub const THRESHOLDS: Thresholds = Thresholds {
    disk_free_percent: below(15, 5, "%"),
    fsync_p99_ms: above(8, 30, "ms"),
    redis_memory_percent: above(75, 90, "%"),
    kafka_consumer_lag: above(1_000, 10_000, "messages"),
    outbox_backlog: above(1_000, 10_000, "events"),
    gateway_connections_percent: above(70, 90, "%"),
    container_restarts: above(1, 3, "restarts"),
    certificate_days: below(30, 7, "days"),
    secret_age_days: above(90, 365, "days"),
    daemon_nofile: below(500_000, 1_024, "files"),
    somaxconn: below(4_096, 128, ""),
    netdev_max_backlog: below(4_096, 100, ""),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_ok_warn_or_fail_by_its_row() {
        let disk = THRESHOLDS.disk_free_percent;
        assert_eq!(disk.level(40), Level::Ok);
        assert_eq!(disk.level(15), Level::Ok);
        assert_eq!(disk.level(14), Level::Warn);
        assert_eq!(disk.level(4), Level::Fail);
        let lag = THRESHOLDS.kafka_consumer_lag;
        assert_eq!(lag.level(999), Level::Ok);
        assert_eq!(lag.level(1_000), Level::Warn);
        assert_eq!(lag.level(10_000), Level::Fail);
        assert_eq!(disk.describe(), "warn < 15 %, fail < 5 %");
        assert_eq!(lag.describe(), "warn ≥ 1000 messages, fail ≥ 10000 messages");
    }
}
