use serde::{Deserialize, Serialize};

use crate::{ConversationId, Guid, Millis, Uid};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub uid: Uid,
    pub name: String,
    pub avatar: Option<String>,
    pub link: Option<String>,
    pub role: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Set when the user is deleted (soft delete, restorable).
    pub deleted_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub uid: Uid,
    pub name: String,
    pub avatar: Option<String>,
    pub link: Option<String>,
    pub role: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Changes to a user's profile: `None` keeps a field; for the optional fields, `Some(None)` clears it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub avatar: Option<Option<String>>,
    pub link: Option<Option<String>>,
    pub role: Option<Option<String>>,
    pub metadata: Option<Option<serde_json::Value>>,
}

impl UserUpdate {
    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &UserUpdate::default()
    }

    /// `user` with this update applied (times untouched).
    pub fn apply(&self, user: &User) -> User {
        let mut updated = user.clone();
        if let Some(name) = &self.name {
            updated.name.clone_from(name);
        }
        if let Some(avatar) = &self.avatar {
            updated.avatar.clone_from(avatar);
        }
        if let Some(link) = &self.link {
            updated.link.clone_from(link);
        }
        if let Some(role) = &self.role {
            updated.role.clone_from(role);
        }
        if let Some(metadata) = &self.metadata {
            updated.metadata.clone_from(metadata);
        }
        updated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupType {
    Public,
    Private,
    Password,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Public => "public",
            GroupType::Private => "private",
            GroupType::Password => "password",
        }
    }

    pub fn parse(value: &str) -> Option<GroupType> {
        match value {
            "public" => Some(GroupType::Public),
            "private" => Some(GroupType::Private),
            "password" => Some(GroupType::Password),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub guid: Guid,
    pub name: String,
    #[serde(rename = "type")]
    pub group_type: GroupType,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub owner: Uid,
    pub metadata: Option<serde_json::Value>,
    pub members_count: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    pub guid: Guid,
    pub name: String,
    pub group_type: GroupType,
    /// An argon2 PHC string for password groups; never the password itself.
    pub password_hash: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub owner: Uid,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Participant,
    Moderator,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Participant => "participant",
            Scope::Moderator => "moderator",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Scope> {
        match value {
            "participant" => Some(Scope::Participant),
            "moderator" => Some(Scope::Moderator),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub guid: Guid,
    pub uid: Uid,
    pub scope: Scope,
    pub joined_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMember {
    pub uid: Uid,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverType {
    User,
    Group,
}

impl ReceiverType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverType::User => "user",
            ReceiverType::Group => "group",
        }
    }

    pub fn parse(value: &str) -> Option<ReceiverType> {
        match value {
            "user" => Some(ReceiverType::User),
            "group" => Some(ReceiverType::Group),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Message,
    Custom,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Message => "message",
            Category::Custom => "custom",
        }
    }

    pub fn parse(value: &str) -> Option<Category> {
        match value {
            "message" => Some(Category::Message),
            "custom" => Some(Category::Custom),
            _ => None,
        }
    }
}

/// A message as stored and published. Read back from JSON (an event's `data`), its conversation is rebuilt from
/// `sender`, `receiver` and `receiverType`; the `conversationId` in the JSON is a display id and is not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "MessageJson")]
pub struct Message {
    pub id: String,
    pub conversation_id: ConversationId,
    /// Position in the conversation: 1, 2, 3, … with no gap, assigned in the insert's transaction.
    pub seq: i64,
    pub sender: Uid,
    pub receiver: String,
    pub receiver_type: ReceiverType,
    pub category: Category,
    #[serde(rename = "type")]
    pub message_type: String,
    /// `text`, `metadata`, `attachments`, … as the client sent them.
    pub data: serde_json::Value,
    pub muid: Option<String>,
    pub parent_id: Option<String>,
    pub tags: Vec<String>,
    pub sent_at: Millis,
    pub updated_at: Millis,
    pub edited_at: Option<Millis>,
    pub deleted_at: Option<Millis>,
    /// Who last edited the message: its sender, a group admin or moderator; `None` when the app did.
    #[serde(default)]
    pub edited_by: Option<Uid>,
    /// Who deleted the message; `None` when it is not deleted or the app deleted it.
    #[serde(default)]
    pub deleted_by: Option<Uid>,
}

/// [`Message`] as JSON carries it, without the display id.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageJson {
    id: String,
    seq: i64,
    sender: Uid,
    receiver: String,
    receiver_type: ReceiverType,
    category: Category,
    #[serde(rename = "type")]
    message_type: String,
    data: serde_json::Value,
    muid: Option<String>,
    parent_id: Option<String>,
    tags: Vec<String>,
    sent_at: Millis,
    updated_at: Millis,
    edited_at: Option<Millis>,
    deleted_at: Option<Millis>,
    #[serde(default)]
    edited_by: Option<Uid>,
    #[serde(default)]
    deleted_by: Option<Uid>,
}

impl TryFrom<MessageJson> for Message {
    type Error = crate::IdError;

    fn try_from(json: MessageJson) -> Result<Message, crate::IdError> {
        let conversation_id = match json.receiver_type {
            ReceiverType::User => ConversationId::direct(&json.sender, &Uid::parse(&json.receiver)?),
            ReceiverType::Group => ConversationId::group(&Guid::parse(&json.receiver)?),
        };
        Ok(Message {
            id: json.id,
            conversation_id,
            seq: json.seq,
            sender: json.sender,
            receiver: json.receiver,
            receiver_type: json.receiver_type,
            category: json.category,
            message_type: json.message_type,
            data: json.data,
            muid: json.muid,
            parent_id: json.parent_id,
            tags: json.tags,
            sent_at: json.sent_at,
            updated_at: json.updated_at,
            edited_at: json.edited_at,
            deleted_at: json.deleted_at,
            edited_by: json.edited_by,
            deleted_by: json.deleted_by,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub sender: Uid,
    pub receiver: String,
    pub receiver_type: ReceiverType,
    pub category: Category,
    pub message_type: String,
    pub data: serde_json::Value,
    /// Client-supplied id, unique per sender: a retried send returns the original message.
    pub muid: Option<String>,
    pub parent_id: Option<String>,
    pub tags: Vec<String>,
}

impl NewMessage {
    /// The message this becomes with `id`, at `seq` of its conversation (0: in none yet), sent at `now`.
    pub fn to_message(&self, id: String, seq: i64, now: Millis) -> Message {
        Message {
            id,
            conversation_id: self.conversation_id.clone(),
            seq,
            sender: self.sender.clone(),
            receiver: self.receiver.clone(),
            receiver_type: self.receiver_type,
            category: self.category,
            message_type: self.message_type.clone(),
            data: self.data.clone(),
            muid: self.muid.clone(),
            parent_id: self.parent_id.clone(),
            tags: self.tags.clone(),
            sent_at: now,
            updated_at: now,
            edited_at: None,
            deleted_at: None,
            edited_by: None,
            deleted_by: None,
        }
    }
}

/// A user banned from a group: not a member, and may not be added back, post or read until unbanned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ban {
    pub guid: Guid,
    pub uid: Uid,
    pub banned_at: Millis,
}

/// Changes to a group; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub group_type: Option<GroupType>,
    /// What happens to the stored password hash.
    pub password: PasswordChange,
}

/// The password hash an update leaves behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum PasswordChange {
    /// The stored hash stays.
    #[default]
    Keep,
    /// A new argon2 PHC string (the group is or becomes a password group).
    Set(String),
    /// No hash (the group stops being a password group).
    Clear,
}

/// Why a member left a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Removed by an admin, a moderator or the app (`group.member_kicked`).
    Kicked,
    /// Removed itself (`group.member_left`).
    Left,
}

/// A change to a message's content: the fields given replace the stored ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageEdit {
    /// The new `data` (`text`, `metadata`, `attachments`, …), replacing the old one whole.
    pub data: Option<serde_json::Value>,
    pub tags: Option<Vec<String>>,
}

/// One user's reaction to a message: an emoji or a name, at most once per user and reaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub message_id: String,
    pub conversation_id: ConversationId,
    pub uid: Uid,
    pub reaction: String,
    pub reacted_at: Millis,
}
