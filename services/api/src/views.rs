//! The wire shapes: model values as CometChat's v3 API spells them (camelCase, times in Unix seconds).

use comet_model::{Ban, Group, Member, Message, Millis, Reaction, User};
use comet_store::{AuthToken, ReactionCount};
use serde_json::{Value, json};

fn seconds(millis: Millis) -> i64 {
    millis.div_euclid(1000)
}

pub fn user(user: &User) -> Value {
    let mut value = json!({
        "uid": user.uid,
        "name": user.name,
        "status": "offline",
        "createdAt": seconds(user.created_at),
        "updatedAt": seconds(user.updated_at),
    });
    let optional = [
        ("avatar", user.avatar.clone().map(Value::from)),
        ("link", user.link.clone().map(Value::from)),
        ("role", user.role.clone().map(Value::from)),
        ("metadata", user.metadata.clone()),
        ("deactivatedAt", user.deleted_at.map(|at| Value::from(seconds(at)))),
    ];
    for (key, field) in optional {
        if let (Some(field), Some(object)) = (field, value.as_object_mut()) {
            object.insert(key.to_owned(), field);
        }
    }
    value
}

/// An auth token's id and creation time; the token itself is shown once, when created.
pub fn auth_token(token: &AuthToken) -> Value {
    json!({ "id": token.id, "uid": token.uid, "createdAt": seconds(token.created_at) })
}

pub fn group(group: &Group) -> Value {
    json!({
        "guid": group.guid,
        "name": group.name,
        "type": group.group_type,
        "description": group.description,
        "icon": group.icon,
        "owner": group.owner,
        "metadata": group.metadata,
        "membersCount": group.members_count,
        "createdAt": seconds(group.created_at),
        "updatedAt": seconds(group.updated_at),
    })
}

pub fn member(member: &Member) -> Value {
    json!({ "uid": member.uid, "scope": member.scope, "joinedAt": seconds(member.joined_at) })
}

pub fn message(message: &Message) -> Value {
    json!({
        "id": message.id,
        "conversationId": message.conversation_id,
        "seq": message.seq,
        "sender": message.sender,
        "receiver": message.receiver,
        "receiverType": message.receiver_type,
        "category": message.category,
        "type": message.message_type,
        "data": message.data,
        "muid": message.muid,
        "parentId": message.parent_id,
        "tags": message.tags,
        "sentAt": seconds(message.sent_at),
        "updatedAt": seconds(message.updated_at),
        "editedAt": message.edited_at.map(seconds),
        "deletedAt": message.deleted_at.map(seconds),
        "editedBy": message.edited_by,
        "deletedBy": message.deleted_by,
    })
}

/// A message with its reactions summarized: `reactions: [{"reaction", "count"}]`, taken from `counts` (which
/// may hold the counts of other messages too).
pub fn message_with_reactions(message: &Message, counts: &[ReactionCount]) -> Value {
    let mut value = self::message(message);
    let summary: Vec<Value> = counts
        .iter()
        .filter(|count| count.message_id == message.id)
        .map(|count| json!({ "reaction": count.reaction, "count": count.count }))
        .collect();
    if let Some(object) = value.as_object_mut() {
        object.insert("reactions".to_owned(), Value::from(summary));
    }
    value
}

/// One user's reaction.
pub fn reaction(reaction: &Reaction) -> Value {
    json!({
        "messageId": reaction.message_id,
        "reaction": reaction.reaction,
        "uid": reaction.uid,
        "reactedAt": seconds(reaction.reacted_at),
    })
}

pub fn ban(ban: &Ban) -> Value {
    json!({ "uid": ban.uid, "bannedAt": seconds(ban.banned_at) })
}
