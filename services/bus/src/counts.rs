//! Messages per topic that a Kafka client handled: `comet_kafka_messages_produced_total` (the publisher, per
//! topic) and `comet_kafka_messages_consumed_total` (a reader, per group and topic), the names of the contract in
//! templates/prometheus/alerts.yml.j2.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::topics;

/// One counter per event topic; a topic that is not an event topic is not counted (the clients subscribe to
/// the event topics only).
#[derive(Debug)]
pub struct TopicCounts {
    counts: Vec<(&'static str, AtomicU64)>,
}

impl Default for TopicCounts {
    fn default() -> TopicCounts {
        TopicCounts { counts: topics().into_iter().map(|topic| (topic, AtomicU64::new(0))).collect() }
    }
}

impl TopicCounts {
    pub(crate) fn add(&self, topic: &str, messages: u64) {
        if let Some((_, counter)) = self.counts.iter().find(|(name, _)| *name == topic) {
            counter.fetch_add(messages, Ordering::Relaxed);
        }
    }

    /// The count of every event topic, sorted by topic.
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        self.counts.iter().map(|(topic, counter)| (*topic, counter.load(Ordering::Relaxed))).collect()
    }

    /// Appends the counters as the Prometheus counter `name`, each series with `labels` (`key="value",…` or
    /// empty) before its `topic`.
    pub fn render(&self, name: &str, help: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let separator = if labels.is_empty() { "" } else { "," };
        for (topic, total) in self.totals() {
            let _ = writeln!(out, "{name}{{{labels}{separator}topic=\"{topic}\"}} {total}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_event_topics_only_and_renders_every_one() {
        let counts = TopicCounts::default();
        counts.add("comet.messages", 2);
        counts.add("not.an.event.topic", 5);
        assert_eq!(counts.totals(), vec![("comet.entities", 0), ("comet.messages", 2)]);
        let mut out = String::new();
        counts.render("comet_kafka_messages_consumed_total", "Read.", "group=\"g\"", &mut out);
        assert!(out.contains("comet_kafka_messages_consumed_total{group=\"g\",topic=\"comet.messages\"} 2\n"), "{out}");
        let mut out = String::new();
        counts.render("comet_kafka_messages_produced_total", "Acknowledged.", "", &mut out);
        assert!(out.contains("comet_kafka_messages_produced_total{topic=\"comet.entities\"} 0\n"), "{out}");
    }
}
