//! Who hears what: bus events and cluster signals turned into frames for the local sockets of their audience.
//!
//! | event | audience on this node |
//! |---|---|
//! | message, reaction, receipt in a direct conversation | every socket of both users (the sender's other devices too) |
//! | the same in a group conversation | every socket of every local member |
//! | group membership change | the group's local members, the affected user included |
//! | presence | local users sharing a group or a direct conversation with the user |
//! | typing | the receiver's sockets, or the group's local members but the typist |
//! | a held message (`message.pending`) and its decision (`message.moderated`) | the sender's sockets |

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use comet_model::{ConversationId, ConversationKind, Event, EventType, Guid, ReceiverType, Uid};
use serde_json::json;

use crate::cluster::Signal;
use crate::hub::{Frame, Hub};
use crate::protocol::{self, close};

fn frame(text: String, order: Option<(Box<str>, i64)>, event_time: i64) -> Arc<Frame> {
    Arc::new(Frame { text: Utf8Bytes::from(text), order, event_time })
}

fn data_uid(event: &Event, field: &str) -> Option<Uid> {
    event.data.get(field).and_then(|value| value.as_str()).and_then(|raw| Uid::parse(raw).ok())
}

/// Routes one bus event to this node's sockets; returns how many sockets it was queued on.
pub fn route_event(hub: &Hub, event: &Event) -> usize {
    match event.event_type {
        EventType::UserDeleted => {
            if let Some(uid) = data_uid(event, "uid") {
                hub.close_user(&uid, None, close::AUTH_REVOKED);
            }
            return 0;
        }
        EventType::UserAuthTokenRevoked => {
            if let (Some(uid), Some(token)) = (data_uid(event, "uid"), event.data.get("id").and_then(|id| id.as_str()))
            {
                hub.close_user(&uid, Some(token), close::AUTH_REVOKED);
            }
            return 0;
        }
        _ => {}
    }
    let Some(kind) = protocol::frame_type(event.event_type) else {
        return 0;
    };
    let text = protocol::event_frame(kind, event);
    match event.event_type {
        EventType::GroupMemberAdded
        | EventType::GroupMemberJoined
        | EventType::GroupMemberKicked
        | EventType::GroupMemberLeft
        | EventType::GroupMemberBanned
        | EventType::GroupMemberScopeChanged
        | EventType::GroupDeleted => route_membership(hub, event, frame(text, None, event.time)),
        // Held messages and their decisions are the sender's alone: recipients hear of an approved message
        // by its `message.sent`.
        EventType::MessagePending | EventType::MessageModerated => match data_uid(event, "sender") {
            Some(sender) => hub.deliver(&[sender], &frame(text, None, event.time), None),
            None => 0,
        },
        _ => {
            let conversation = event.key.as_str();
            let order = (event.event_type == EventType::MessageSent)
                .then(|| event.data.get("seq").and_then(|seq| seq.as_i64()))
                .flatten()
                .map(|seq| (Box::<str>::from(conversation), seq));
            let frame = frame(text, order, event.time);
            // The key says exactly who takes part; a key that is not a conversation's (an event written before
            // migration 0006 in a conversation whose display id collided) reaches no one.
            let Ok(conversation) = ConversationId::from_key(conversation) else {
                tracing::warn!(key = conversation, event = %event.id, "event keyed by no conversation: dropped");
                return 0;
            };
            match conversation.kind() {
                ConversationKind::Group(guid) => hub.deliver(&hub.group_members(guid), &frame, None),
                ConversationKind::Direct { low, high } => {
                    if event.event_type == EventType::MessageSent {
                        hub.talked(low, high);
                    }
                    let users = if low == high { vec![low] } else { vec![low, high] };
                    hub.deliver(users, &frame, None)
                }
            }
        }
    }
}

fn route_membership(hub: &Hub, event: &Event, frame: Arc<Frame>) -> usize {
    let Some(guid) = event.data.get("guid").and_then(|guid| guid.as_str()).and_then(|guid| Guid::parse(guid).ok())
    else {
        return 0;
    };
    let uid = data_uid(event, "uid");
    match event.event_type {
        EventType::GroupMemberAdded | EventType::GroupMemberJoined => {
            if let Some(uid) = &uid {
                hub.joined(uid, &guid);
            }
            hub.deliver(&hub.group_members(&guid), &frame, None)
        }
        EventType::GroupDeleted => {
            let queued = hub.deliver(&hub.group_members(&guid), &frame, None);
            hub.group_deleted(&guid);
            queued
        }
        EventType::GroupMemberKicked | EventType::GroupMemberLeft | EventType::GroupMemberBanned => {
            let mut audience = hub.group_members(&guid);
            if let Some(uid) = &uid
                && !audience.contains(uid)
            {
                audience.push(uid.clone());
            }
            let queued = hub.deliver(&audience, &frame, None);
            if let Some(uid) = &uid {
                hub.left(uid, &guid);
            }
            queued
        }
        _ => hub.deliver(&hub.group_members(&guid), &frame, None),
    }
}

/// Routes one cluster signal to this node's sockets; returns how many sockets it was queued on.
pub fn route_signal(hub: &Hub, signal: &Signal) -> usize {
    match signal {
        Signal::Presence { uid, online, groups, at } => {
            let kind = if *online { "presence.online" } else { "presence.offline" };
            let text = protocol::server_frame(kind, json!({ "uid": uid, "at": at }));
            hub.deliver(&hub.audience(uid, groups), &frame(text, None, 0), None)
        }
        Signal::Typing { from, receiver, receiver_type, started, at, expires_in_ms } => {
            let kind = if *started { "typing.started" } else { "typing.ended" };
            let text = protocol::server_frame(
                kind,
                json!({
                    "sender": from,
                    "receiver": receiver,
                    "receiverType": receiver_type,
                    "at": at,
                    "expiresInMs": started.then_some(expires_in_ms),
                }),
            );
            let frame = frame(text, None, 0);
            match receiver_type {
                ReceiverType::User => match Uid::parse(receiver) {
                    Ok(receiver) => hub.deliver([&receiver], &frame, None),
                    Err(_) => 0,
                },
                ReceiverType::Group => match Guid::parse(receiver) {
                    Ok(guid) => {
                        let members: Vec<Uid> =
                            hub.group_members(&guid).into_iter().filter(|member| member != from).collect();
                        hub.deliver(&members, &frame, None)
                    }
                    Err(_) => 0,
                },
            }
        }
    }
}
