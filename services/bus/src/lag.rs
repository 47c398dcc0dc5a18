//! How far a consumer is behind the partitions it reads: the gateway's tail and each worker's group member
//! report it as `comet_kafka_consumer_lag`, which the rendered alert and the Kafka dashboard read.

use std::fmt::Write as _;

/// How far a consumer is behind one partition's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Messages between the partition's high watermark and the consumer's next offset (the tail's position, or
    /// the group's committed offset).
    pub lag: i64,
}

/// A group member's lag: per partition on Kafka, and in all (the in-process bus has only the total).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupLag {
    pub partitions: Vec<PartitionLag>,
    pub total: u64,
}

/// Appends the one `comet_kafka_consumer_lag` family for every consumer of a process, each `(group, its
/// partitions)` (nothing when none has partitions): the gateway's tail and the workers of `all` share it.
pub fn render_lag(groups: &[(&str, &[PartitionLag])], out: &mut String) {
    if groups.iter().all(|(_, lags)| lags.is_empty()) {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP comet_kafka_consumer_lag Messages between a partition's end and the consumer's position.\n\
         # TYPE comet_kafka_consumer_lag gauge"
    );
    for (group, lags) in groups {
        for lag in *lags {
            let _ = writeln!(
                out,
                "comet_kafka_consumer_lag{{group=\"{group}\",topic=\"{}\",partition=\"{}\"}} {}",
                lag.topic, lag.partition, lag.lag
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_renders_one_family_with_a_series_per_partition_and_nothing_without_partitions() {
        let mut out = String::new();
        render_lag(&[("gateway", &[]), ("comet-webhooks", &[])], &mut out);
        assert_eq!(out, "");
        let lags = [
            PartitionLag { topic: "comet.messages".to_owned(), partition: 0, lag: 3 },
            PartitionLag { topic: "comet.messages".to_owned(), partition: 1, lag: 0 },
        ];
        render_lag(&[("comet-webhooks", &lags), ("gateway", &lags[..1])], &mut out);
        assert_eq!(
            out,
            "# HELP comet_kafka_consumer_lag Messages between a partition's end and the consumer's position.\n\
             # TYPE comet_kafka_consumer_lag gauge\n\
             comet_kafka_consumer_lag{group=\"comet-webhooks\",topic=\"comet.messages\",partition=\"0\"} 3\n\
             comet_kafka_consumer_lag{group=\"comet-webhooks\",topic=\"comet.messages\",partition=\"1\"} 0\n\
             comet_kafka_consumer_lag{group=\"gateway\",topic=\"comet.messages\",partition=\"0\"} 3\n"
        );
    }
}
