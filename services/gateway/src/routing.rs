//! Who hears what: bus events and cluster signals turned into frames for the local sockets of their audience.
//!
//! | event | audience on this node |
//! |---|---|
//! | message, reaction, receipt in a direct conversation | every socket of both users (the sender's other devices too) |
//! | the same in a group conversation | every socket of every local member |
//! | group membership change | the group's local members, the affected user included |
//! | presence | local users sharing a group or a direct conversation with the user |
//! | typing | the receiver's sockets, or the group's local members but the typist |

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use comet_model::{ConversationId, Event, EventType, Guid, ReceiverType, Uid};
use serde_json::json;

use crate::cluster::Signal;
use crate::hub::{Frame, Hub};
use crate::protocol::{self, close};

/// The two users of a direct conversation id (`<low>_user_<high>`). Uids may themselves contain `_user_`, so
/// every split that rebuilds the same id is a candidate; all candidates' users are returned.
pub fn direct_participants(conversation: &str) -> Vec<Uid> {
    let mut users = Vec::new();
    for (at, _) in conversation.match_indices("_user_") {
        let (low, high) = (&conversation[..at], &conversation[at + "_user_".len()..]);
        if let (Ok(low), Ok(high)) = (Uid::parse(low), Uid::parse(high))
            && ConversationId::direct(&low, &high).as_str() == conversation
        {
            users.extend([low, high]);
        }
    }
    users
}

/// The guid of a group conversation id (`group_<guid>`).
pub fn group_of(conversation: &str) -> Option<Guid> {
    conversation.strip_prefix("group_").and_then(|guid| Guid::parse(guid).ok())
}

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
        | EventType::GroupMemberKicked
        | EventType::GroupMemberLeft
        | EventType::GroupMemberBanned
        | EventType::GroupMemberScopeChanged
        | EventType::GroupDeleted => route_membership(hub, event, frame(text, None, event.time)),
        _ => {
            let conversation = event.key.as_str();
            let order = (event.event_type == EventType::MessageSent)
                .then(|| event.data.get("seq").and_then(|seq| seq.as_i64()))
                .flatten()
                .map(|seq| (Box::<str>::from(conversation), seq));
            let frame = frame(text, order, event.time);
            match group_of(conversation) {
                Some(guid) => hub.deliver(&hub.group_members(&guid), &frame, None),
                None => {
                    let users = direct_participants(conversation);
                    if let [a, b] = users.as_slice()
                        && event.event_type == EventType::MessageSent
                    {
                        hub.talked(a, b);
                    }
                    hub.deliver(&users, &frame, None)
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
        EventType::GroupMemberAdded => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_ids_split_into_their_users() {
        let uid = |name: &str| Uid::parse(name).expect("uid");
        assert_eq!(direct_participants("alice_user_bob"), vec![uid("alice"), uid("bob")]);
        // A uid containing `_user_` still resolves: only the split that rebuilds the id counts.
        assert_eq!(direct_participants("a_user_x_user_z"), vec![uid("a"), uid("x_user_z"), uid("a_user_x"), uid("z")]);
        assert!(direct_participants("group_g").is_empty());
        assert_eq!(group_of("group_g1"), Some(Guid::parse("g1").expect("guid")));
    }
}
