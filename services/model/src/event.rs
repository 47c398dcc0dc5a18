use serde::{Deserialize, Serialize};

use crate::Millis;

/// Every event type the system publishes. docs/events.md documents each one's `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "group.created")]
    GroupCreated,
    #[serde(rename = "group.member_added")]
    GroupMemberAdded,
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.edited")]
    MessageEdited,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    #[serde(rename = "reaction.added")]
    ReactionAdded,
    #[serde(rename = "reaction.removed")]
    ReactionRemoved,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::GroupCreated => "group.created",
            EventType::GroupMemberAdded => "group.member_added",
            EventType::MessageSent => "message.sent",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::ReactionAdded => "reaction.added",
            EventType::ReactionRemoved => "reaction.removed",
        }
    }

    /// The Kafka topic (and in-process channel) the event goes to.
    pub fn topic(self) -> &'static str {
        match self {
            EventType::MessageSent => "comet.messages",
            EventType::MessageEdited | EventType::MessageDeleted => "comet.messages",
            EventType::ReactionAdded | EventType::ReactionRemoved => "comet.messages",
            EventType::UserCreated | EventType::GroupCreated | EventType::GroupMemberAdded => "comet.entities",
        }
    }
}

/// The envelope every event travels in. Consumers deduplicate on `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change was committed, ms since the epoch.
    pub time: Millis,
    /// The partition key: the conversation id for messages, the entity id otherwise, so order holds per key.
    pub key: String,
    pub data: serde_json::Value,
}
