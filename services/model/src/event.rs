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
    #[serde(rename = "group.updated")]
    GroupUpdated,
    #[serde(rename = "group.deleted")]
    GroupDeleted,
    #[serde(rename = "group.member_kicked")]
    GroupMemberKicked,
    #[serde(rename = "group.member_left")]
    GroupMemberLeft,
    #[serde(rename = "group.member_scope_changed")]
    GroupMemberScopeChanged,
    #[serde(rename = "group.member_banned")]
    GroupMemberBanned,
    #[serde(rename = "group.member_unbanned")]
    GroupMemberUnbanned,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::GroupCreated => "group.created",
            EventType::GroupMemberAdded => "group.member_added",
            EventType::MessageSent => "message.sent",
            EventType::GroupUpdated => "group.updated",
            EventType::GroupDeleted => "group.deleted",
            EventType::GroupMemberKicked => "group.member_kicked",
            EventType::GroupMemberLeft => "group.member_left",
            EventType::GroupMemberScopeChanged => "group.member_scope_changed",
            EventType::GroupMemberBanned => "group.member_banned",
            EventType::GroupMemberUnbanned => "group.member_unbanned",
        }
    }

    /// The Kafka topic (and in-process channel) the event goes to.
    pub fn topic(self) -> &'static str {
        match self {
            EventType::MessageSent => "comet.messages",
            EventType::UserCreated | EventType::GroupCreated | EventType::GroupMemberAdded => "comet.entities",
            EventType::GroupUpdated
            | EventType::GroupDeleted
            | EventType::GroupMemberKicked
            | EventType::GroupMemberLeft
            | EventType::GroupMemberScopeChanged
            | EventType::GroupMemberBanned
            | EventType::GroupMemberUnbanned => "comet.entities",
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
