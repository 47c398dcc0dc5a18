//! Triggers: CometChat's names for what comet-server does, and the payload a receiver gets for each.
//!
//! The payload envelope is CometChat's: `{"trigger", "data", "appId", "region", "webhook"}`, with `data` in
//! CometChat's shapes (`{"message": …}`, `{"receipt": …}`, `{"reaction": …}`, `{"group": …}`, …) and times in
//! Unix seconds, as the REST API spells them.

use comet_model::{Event, EventType};
use serde_json::{Map, Value, json};

/// Every trigger a webhook may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    MessageSent,
    MessageEdited,
    MessageDeleted,
    MessageDeliveryReceipt,
    MessageReadReceipt,
    MessageReactionAdded,
    MessageReactionRemoved,
    UserBlocked,
    UserUnblocked,
    UserConnectionStatusChanged,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberKicked,
    GroupMemberLeft,
    GroupMemberBanned,
    GroupMemberUnbanned,
    GroupMemberScopeChanged,
    GroupMemberJoined,
    GroupOwnerTransferred,
    /// A webhook that kept failing was disabled (comet-server's own; CometChat has none).
    WebhookDisabled,
    /// An asynchronous engine (the Custom API) approved a held message: it is delivered now.
    ModerationEngineApproved,
    /// An asynchronous engine matched a blocking rule: the held message is never delivered.
    ModerationEngineBlocked,
    /// The engine failed (an error, a timeout, an answer outside the contract) and the rule's failure policy
    /// decided; `data.moderation.status` says how.
    ModerationEngineFailed,
    /// A moderator approved a blocked or held message: it is delivered now.
    ModerationManualApproved,
}

impl Trigger {
    pub const ALL: [Trigger; 26] = [
        Trigger::MessageSent,
        Trigger::MessageEdited,
        Trigger::MessageDeleted,
        Trigger::MessageDeliveryReceipt,
        Trigger::MessageReadReceipt,
        Trigger::MessageReactionAdded,
        Trigger::MessageReactionRemoved,
        Trigger::UserBlocked,
        Trigger::UserUnblocked,
        Trigger::UserConnectionStatusChanged,
        Trigger::GroupCreated,
        Trigger::GroupUpdated,
        Trigger::GroupDeleted,
        Trigger::GroupMemberAdded,
        Trigger::GroupMemberKicked,
        Trigger::GroupMemberLeft,
        Trigger::GroupMemberBanned,
        Trigger::GroupMemberUnbanned,
        Trigger::GroupMemberScopeChanged,
        Trigger::GroupMemberJoined,
        Trigger::GroupOwnerTransferred,
        Trigger::WebhookDisabled,
        Trigger::ModerationEngineApproved,
        Trigger::ModerationEngineBlocked,
        Trigger::ModerationEngineFailed,
        Trigger::ModerationManualApproved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::MessageSent => "message_sent",
            Trigger::MessageEdited => "message_edited",
            Trigger::MessageDeleted => "message_deleted",
            Trigger::MessageDeliveryReceipt => "message_delivery_receipt",
            Trigger::MessageReadReceipt => "message_read_receipt",
            Trigger::MessageReactionAdded => "message_reaction_added",
            Trigger::MessageReactionRemoved => "message_reaction_removed",
            Trigger::UserBlocked => "user_blocked",
            Trigger::UserUnblocked => "user_unblocked",
            Trigger::UserConnectionStatusChanged => "user_connection_status_changed",
            Trigger::GroupCreated => "group_created",
            Trigger::GroupUpdated => "group_updated",
            Trigger::GroupDeleted => "group_deleted",
            Trigger::GroupMemberAdded => "group_member_added",
            Trigger::GroupMemberKicked => "group_member_kicked",
            Trigger::GroupMemberLeft => "group_member_left",
            Trigger::GroupMemberBanned => "group_member_banned",
            Trigger::GroupMemberUnbanned => "group_member_unbanned",
            Trigger::GroupMemberScopeChanged => "group_member_scope_changed",
            Trigger::GroupMemberJoined => "group_member_joined",
            Trigger::GroupOwnerTransferred => "group_owner_transferred",
            Trigger::WebhookDisabled => "webhook_disabled",
            Trigger::ModerationEngineApproved => "moderation_engine_approved",
            Trigger::ModerationEngineBlocked => "moderation_engine_blocked",
            Trigger::ModerationEngineFailed => "moderation_engine_failed",
            Trigger::ModerationManualApproved => "moderation_manual_approved",
        }
    }

    /// The trigger named `name`, or `None` for a name comet-server does not deliver.
    pub fn parse(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|trigger| trigger.as_str() == name)
    }

    /// The trigger an event fires, if any (`user.created` and a few others fire none). A `message.moderated`
    /// fires by who decided and how: the engine's approval, block or failure, or a moderator's approval (a
    /// moderator's rejection fires none).
    pub fn of(event: &Event) -> Option<Trigger> {
        Some(match event.event_type {
            EventType::MessageModerated => {
                let flag = |name: &str| event.data.get(name).and_then(Value::as_bool).unwrap_or(false);
                let approved = event.data.get("status").and_then(Value::as_str) == Some("approved");
                match (flag("manual"), flag("engineFailed"), approved) {
                    (true, _, true) => Trigger::ModerationManualApproved,
                    (true, _, false) => return None,
                    (false, true, _) => Trigger::ModerationEngineFailed,
                    (false, false, true) => Trigger::ModerationEngineApproved,
                    (false, false, false) => Trigger::ModerationEngineBlocked,
                }
            }
            EventType::MessageSent => Trigger::MessageSent,
            EventType::MessageEdited => Trigger::MessageEdited,
            EventType::MessageDeleted => Trigger::MessageDeleted,
            EventType::ReceiptDelivered => Trigger::MessageDeliveryReceipt,
            EventType::ReceiptRead => Trigger::MessageReadReceipt,
            EventType::ReactionAdded => Trigger::MessageReactionAdded,
            EventType::ReactionRemoved => Trigger::MessageReactionRemoved,
            EventType::UserBlocked => Trigger::UserBlocked,
            EventType::UserUnblocked => Trigger::UserUnblocked,
            EventType::GroupCreated => Trigger::GroupCreated,
            EventType::GroupUpdated => Trigger::GroupUpdated,
            EventType::GroupDeleted => Trigger::GroupDeleted,
            EventType::GroupMemberAdded => Trigger::GroupMemberAdded,
            EventType::GroupMemberKicked => Trigger::GroupMemberKicked,
            EventType::GroupMemberLeft => Trigger::GroupMemberLeft,
            EventType::GroupMemberBanned => Trigger::GroupMemberBanned,
            EventType::GroupMemberUnbanned => Trigger::GroupMemberUnbanned,
            EventType::GroupMemberScopeChanged => Trigger::GroupMemberScopeChanged,
            EventType::WebhookDisabled => Trigger::WebhookDisabled,
            EventType::UserConnectionStatusChanged => Trigger::UserConnectionStatusChanged,
            EventType::GroupOwnerTransferred => Trigger::GroupOwnerTransferred,
            EventType::GroupMemberJoined => Trigger::GroupMemberJoined,
            EventType::UserCreated
            | EventType::UserUpdated
            | EventType::UserDeleted
            | EventType::UserRestored
            | EventType::UserAuthTokenRevoked
            | EventType::MessagePending => return None,
            // The worker base unwraps a replay for the webhooks worker before its handler sees it.
            EventType::WorkerReplay => return None,
        })
    }
}

/// Fields of our event data that hold milliseconds; CometChat's payloads carry Unix seconds.
const TIME_FIELDS: [&str; 9] =
    ["sentAt", "updatedAt", "editedAt", "deletedAt", "reactedAt", "at", "createdAt", "failingSince", "joinedAt"];

/// `data` with its time fields in seconds.
fn in_seconds(data: &Value) -> Value {
    let Value::Object(fields) = data else { return data.clone() };
    let converted: Map<String, Value> = fields
        .iter()
        .map(|(name, value)| {
            let value = match value.as_i64() {
                Some(millis) if TIME_FIELDS.contains(&name.as_str()) => Value::from(millis.div_euclid(1000)),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    Value::Object(converted)
}

/// The `data` of `trigger`'s payload, in CometChat's shape, from the event's data.
pub fn payload_data(trigger: Trigger, event: &Event) -> Value {
    let data = in_seconds(&event.data);
    let field = |name: &str| data.get(name).cloned().unwrap_or(Value::Null);
    match trigger {
        Trigger::MessageSent | Trigger::MessageEdited | Trigger::MessageDeleted => json!({ "message": data }),
        Trigger::MessageDeliveryReceipt | Trigger::MessageReadReceipt => {
            let mut receipt = data.clone();
            let at_name = if trigger == Trigger::MessageReadReceipt { "readAt" } else { "deliveredAt" };
            if let Value::Object(fields) = &mut receipt {
                fields.insert(at_name.to_owned(), field("at"));
                fields.insert("sender".to_owned(), field("uid"));
            }
            json!({ "receipt": receipt })
        }
        Trigger::MessageReactionAdded | Trigger::MessageReactionRemoved => json!({ "reaction": data }),
        Trigger::UserBlocked | Trigger::UserUnblocked => json!({
            "user": { "uid": field("uid") },
            "blockedUser": { "uid": field("blockedUid") },
        }),
        Trigger::UserConnectionStatusChanged => json!({
            "user": { "uid": field("uid"), "status": field("status"), "lastActiveAt": field("at") },
        }),
        Trigger::GroupCreated | Trigger::GroupUpdated | Trigger::GroupDeleted => json!({ "group": data }),
        Trigger::GroupOwnerTransferred => json!({
            "group": { "guid": field("guid"), "owner": field("owner") },
            "newOwner": { "uid": field("owner") },
            "oldOwner": { "uid": field("oldOwner") },
        }),
        Trigger::GroupMemberAdded
        | Trigger::GroupMemberKicked
        | Trigger::GroupMemberLeft
        | Trigger::GroupMemberBanned
        | Trigger::GroupMemberUnbanned
        | Trigger::GroupMemberScopeChanged
        | Trigger::GroupMemberJoined => {
            let mut member = Map::new();
            member.insert("uid".to_owned(), field("uid"));
            for optional in ["scope", "oldScope", "wasMember"] {
                if let Some(value) = data.get(optional) {
                    member.insert(optional.to_owned(), value.clone());
                }
            }
            json!({ "group": { "guid": field("guid") }, "member": member })
        }
        Trigger::WebhookDisabled => json!({ "webhook": data }),
        Trigger::ModerationEngineApproved
        | Trigger::ModerationEngineBlocked
        | Trigger::ModerationEngineFailed
        | Trigger::ModerationManualApproved => json!({
            "message": in_seconds(event.data.get("message").unwrap_or(&Value::Null)),
            "moderation": {
                "status": field("status"),
                "reason": field("reason"),
                "decidedBy": field("by"),
                "engineFailed": field("engineFailed"),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for trigger in Trigger::ALL {
            assert_eq!(Trigger::parse(trigger.as_str()), Some(trigger));
        }
        assert_eq!(Trigger::parse("message_sent "), None);
        assert_eq!(Trigger::parse("before_message"), None);
    }

    #[test]
    fn message_payloads_carry_the_message_with_times_in_seconds() {
        let event = Event {
            id: "e1".to_owned(),
            event_type: EventType::MessageSent,
            time: 1_700_000_000_123,
            key: "u:a:b".to_owned(),
            data: json!({ "id": "m1", "sentAt": 1_700_000_000_123_i64, "data": { "text": "hi" } }),
        };
        let data = payload_data(Trigger::MessageSent, &event);
        assert_eq!(data, json!({ "message": { "id": "m1", "sentAt": 1_700_000_000, "data": { "text": "hi" } } }));
    }
}
