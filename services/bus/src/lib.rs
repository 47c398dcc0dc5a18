//! The event bus: how committed changes leave the database and reach every role that reacts to them.
//!
//! - [`Publisher`] is the one trait the rest of the server publishes through. It has two implementations:
//!   [`KafkaPublisher`] (production: an idempotent rdkafka producer with `acks=all`) and [`InProcessBus`]
//!   (the embedded single-process mode: a tokio broadcast channel).
//! - [`relay`] is the outbox relay: it reads events that the store committed together with their change and
//!   publishes them, at least once and in order per key.
//! - The consumer side reads the wire format ([`decode`]: one JSON [`Event`] per Kafka message, keyed by
//!   [`Event::key`]) in two ways: [`GroupSubscription`], a consumer-group member that commits an event only
//!   after its handler succeeded (the workers), and [`KafkaTail`], every partition from its end without a
//!   group (the gateway). [`Seen`] drops redelivered event ids.
//!
//! **Architecture Invariant:** only this crate imports rdkafka, and no rdkafka type appears in its public
//! signatures. Roles see `Publisher`, `Event`, a group subscription and the tail.

mod counts;
mod group;
mod in_process;
mod kafka;
mod lag;
pub mod relay;
mod seen;
mod tail;

use comet_model::{Event, EventType};
use futures::future::BoxFuture;

pub use counts::TopicCounts;
pub use group::{GroupError, GroupSubscription, Taken, Ticket};
pub use in_process::InProcessBus;
pub use kafka::{KafkaConfig, KafkaPublisher};
pub use lag::{GroupLag, PartitionLag, render_lag};
pub use seen::Seen;
pub use tail::KafkaTail;

/// Why the bus could not take or hand over an event.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The Kafka client or broker refused or failed an operation; the text names the operation and the cause.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The bus refused this one event for good (larger than the producer's `message.max.bytes`, an invalid
    /// record): publishing it again fails the same way. The relay counts these and, after
    /// `RelaySettings::max_attempts` in a row, moves the event to the dead letters.
    #[error("kafka refused event {event_id}: {reason}")]
    Rejected { event_id: String, reason: String },
    /// The bus can no longer deliver anything (it was shut down).
    #[error("bus closed")]
    Closed,
    /// An in-process subscriber fell further behind than the bus buffers: this many events are lost to it.
    #[error("fell behind the in-process bus: {0} events lost")]
    Lagged(u64),
    /// An event could not be turned into (or read back from) its JSON wire format.
    #[error("encoding event: {0}")]
    Encode(String),
}

/// Publishes events; implemented by the in-process bus and Kafka.
///
/// `publish` returns once every event of the slice is durably accepted (for Kafka: acknowledged by all
/// in-sync replicas), and events with the same key are accepted in slice order. An error means some events
/// may or may not have been accepted: the caller publishes the whole slice again, and consumers deduplicate
/// on [`Event::id`].
pub trait Publisher: Send + Sync {
    /// Publishes `events`, in order per key, and resolves when all of them are accepted.
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), BusError>>;
}

/// Reads one event from its wire format (the JSON payload of a Kafka message).
pub fn decode(payload: &[u8]) -> Result<Event, BusError> {
    serde_json::from_slice(payload).map_err(|error| BusError::Encode(error.to_string()))
}

/// Writes one event in its wire format: the JSON envelope documented in docs/events.md.
pub(crate) fn encode(event: &Event) -> Result<Vec<u8>, BusError> {
    serde_json::to_vec(event).map_err(|error| BusError::Encode(format!("event {}: {error}", event.id)))
}

/// The distinct topics of every event type, sorted: what the relay creates and consumers subscribe to.
pub fn topics() -> Vec<&'static str> {
    let mut topics = EventType::TOPICS.to_vec();
    topics.sort_unstable();
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_wire_format() {
        let event = Event {
            id: "e1".to_owned(),
            event_type: EventType::MessageSent,
            time: 1_700_000_000_000,
            key: "group_g1".to_owned(),
            data: serde_json::json!({"seq": 1}),
        };
        let payload = encode(&event).expect("encode");
        assert_eq!(decode(&payload).expect("decode"), event);
    }

    #[test]
    fn garbage_is_an_encoding_error() {
        assert!(matches!(decode(b"not json"), Err(BusError::Encode(_))));
    }

    #[test]
    fn every_event_type_has_a_listed_topic() {
        assert_eq!(topics(), vec!["comet.entities", "comet.messages"]);
    }
}
