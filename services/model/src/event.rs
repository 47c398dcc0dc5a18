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
    #[serde(rename = "user.updated")]
    UserUpdated,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "user.restored")]
    UserRestored,
    #[serde(rename = "user.blocked")]
    UserBlocked,
    #[serde(rename = "user.unblocked")]
    UserUnblocked,
    #[serde(rename = "user.auth_token_revoked")]
    UserAuthTokenRevoked,
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
    #[serde(rename = "message.edited")]
    MessageEdited,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    #[serde(rename = "reaction.added")]
    ReactionAdded,
    #[serde(rename = "reaction.removed")]
    ReactionRemoved,
    #[serde(rename = "receipt.delivered")]
    ReceiptDelivered,
    #[serde(rename = "receipt.read")]
    ReceiptRead,
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    #[serde(rename = "user.connection_status_changed")]
    UserConnectionStatusChanged,
    #[serde(rename = "group.owner_transferred")]
    GroupOwnerTransferred,
    #[serde(rename = "group.member_joined")]
    GroupMemberJoined,
    /// A message an asynchronous moderation rule holds: committed as pending, not to its conversation.
    #[serde(rename = "message.pending")]
    MessagePending,
    /// A held or blocked message was decided (by an engine or a moderator).
    #[serde(rename = "message.moderated")]
    MessageModerated,
    /// An operator's replay of one worker's dead letter (`comet-server outbox worker-replay`): `data` is
    /// `{"worker": name, "event": the event}`; only that worker handles it, every other consumer skips it.
    #[serde(rename = "worker.replay")]
    WorkerReplay,
}

/// Chat messages and everything that happens to them, keyed by conversation.
const MESSAGES_TOPIC: &str = "comet.messages";
/// Users and groups, keyed by uid or guid.
const ENTITIES_TOPIC: &str = "comet.entities";

impl EventType {
    /// Every topic `topic()` can return: what the relay creates and consumers subscribe to.
    pub const TOPICS: [&'static str; 2] = [ENTITIES_TOPIC, MESSAGES_TOPIC];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::GroupCreated => "group.created",
            EventType::GroupMemberAdded => "group.member_added",
            EventType::MessageSent => "message.sent",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeleted => "user.deleted",
            EventType::UserRestored => "user.restored",
            EventType::UserBlocked => "user.blocked",
            EventType::UserUnblocked => "user.unblocked",
            EventType::UserAuthTokenRevoked => "user.auth_token_revoked",
            EventType::GroupUpdated => "group.updated",
            EventType::GroupDeleted => "group.deleted",
            EventType::GroupMemberKicked => "group.member_kicked",
            EventType::GroupMemberLeft => "group.member_left",
            EventType::GroupMemberScopeChanged => "group.member_scope_changed",
            EventType::GroupMemberBanned => "group.member_banned",
            EventType::GroupMemberUnbanned => "group.member_unbanned",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::ReactionAdded => "reaction.added",
            EventType::ReactionRemoved => "reaction.removed",
            EventType::ReceiptDelivered => "receipt.delivered",
            EventType::ReceiptRead => "receipt.read",
            EventType::WebhookDisabled => "webhook.disabled",
            EventType::UserConnectionStatusChanged => "user.connection_status_changed",
            EventType::GroupOwnerTransferred => "group.owner_transferred",
            EventType::GroupMemberJoined => "group.member_joined",
            EventType::MessagePending => "message.pending",
            EventType::MessageModerated => "message.moderated",
            EventType::WorkerReplay => "worker.replay",
        }
    }

    /// The Kafka topic (and in-process channel) the event goes to.
    pub fn topic(self) -> &'static str {
        match self {
            EventType::MessageSent => MESSAGES_TOPIC,
            EventType::UserCreated | EventType::GroupCreated | EventType::GroupMemberAdded => ENTITIES_TOPIC,
            EventType::UserUpdated
            | EventType::UserDeleted
            | EventType::UserRestored
            | EventType::UserBlocked
            | EventType::UserUnblocked
            | EventType::UserAuthTokenRevoked => ENTITIES_TOPIC,
            EventType::GroupUpdated
            | EventType::GroupDeleted
            | EventType::GroupMemberKicked
            | EventType::GroupMemberLeft
            | EventType::GroupMemberScopeChanged
            | EventType::GroupMemberBanned
            | EventType::GroupMemberUnbanned => ENTITIES_TOPIC,
            EventType::MessageEdited
            | EventType::MessageDeleted
            | EventType::ReactionAdded
            | EventType::ReactionRemoved => MESSAGES_TOPIC,
            EventType::ReceiptDelivered | EventType::ReceiptRead => MESSAGES_TOPIC,
            EventType::MessagePending | EventType::MessageModerated => MESSAGES_TOPIC,
            EventType::WebhookDisabled | EventType::UserConnectionStatusChanged => ENTITIES_TOPIC,
            EventType::GroupOwnerTransferred | EventType::GroupMemberJoined => ENTITIES_TOPIC,
            EventType::WorkerReplay => ENTITIES_TOPIC,
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
