//! Who takes part in a conversation, and who may send to it or change its messages: ONE rule for the API, the
//! gateway and the workers.
//!
//! A conversation is what it is (`ConversationKind`): its two users take part in a direct conversation, a
//! group's current members in the group's (read from the store, never from a cache). Who takes part may read
//! the conversation's messages, mark them and react to them; a direct send also needs that neither user blocked
//! the other; a message is changed by its sender, the group's admins and moderators, or the app.
//!
//! Changes are decided inside their transaction, after the conversation's lock: the reads here are locking
//! reads on MySQL (`FOR UPDATE`), so they see the latest commit and hold the rows they read, and a block, kick,
//! ban or demotion either commits before the change (which is then refused) or waits until it committed.
//! SQLite runs one writer at a time, so its plain reads are already the latest.

use comet_model::{ConversationId, ConversationKind, Guid, Message, ReceiverType, Scope, Uid};
use sqlx::AnyConnection;

use crate::{Backend, Refusal, Store, StoreError};

impl Store {
    /// Whether `uid` takes part in `conversation`: a side of a direct conversation, a member of the group.
    pub async fn takes_part(&self, conversation: &ConversationId, uid: &Uid) -> Result<bool, StoreError> {
        match conversation.kind() {
            ConversationKind::Direct { low, high } => Ok(low == uid || high == uid),
            ConversationKind::Group(guid) => Ok(self.member(guid, uid).await?.is_some()),
        }
    }

    /// Whether `uid` may read `message`: it takes part in the message's conversation.
    pub async fn may_read(&self, message: &Message, uid: &Uid) -> Result<bool, StoreError> {
        self.takes_part(&message.conversation_id, uid).await
    }
}

/// The suffix that makes a read a locking read on `backend`.
fn locking(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// `uid`'s scope in a live group, read under the transaction's locks.
async fn scope_in(
    connection: &mut AnyConnection,
    backend: Backend,
    guid: &Guid,
    uid: &Uid,
) -> Result<Option<Scope>, sqlx::Error> {
    let sql = format!(
        "SELECT gm.scope FROM group_members gm JOIN chat_groups g ON g.guid = gm.guid \
         WHERE gm.guid = ? AND gm.uid = ? AND g.deleted_at IS NULL{}",
        locking(backend)
    );
    let scope: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(guid.as_str())
        .bind(uid.as_str())
        .fetch_optional(connection)
        .await?;
    Ok(scope.as_deref().and_then(Scope::parse))
}

/// Whether `a` blocked `b` or `b` blocked `a`, read under the transaction's locks.
async fn blocked(connection: &mut AnyConnection, backend: Backend, a: &Uid, b: &Uid) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT blocker FROM blocked_users WHERE (blocker = ? AND blocked = ?) OR (blocker = ? AND blocked = ?){}",
        locking(backend)
    );
    let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(a.as_str())
        .bind(b.as_str())
        .bind(b.as_str())
        .bind(a.as_str())
        .fetch_optional(connection)
        .await?;
    Ok(found.is_some())
}

/// Whether `uid` takes part in `conversation`, inside a change's transaction.
pub(crate) async fn takes_part_now(
    connection: &mut AnyConnection,
    backend: Backend,
    conversation: &ConversationId,
    uid: &Uid,
) -> Result<Option<Refusal>, sqlx::Error> {
    let takes_part = match conversation.kind() {
        ConversationKind::Direct { low, high } => low == uid || high == uid,
        ConversationKind::Group(guid) => scope_in(connection, backend, guid, uid).await?.is_some(),
    };
    Ok((!takes_part).then_some(Refusal::NotAMember))
}

/// Whether `message` may be sent now, inside the send's transaction: a group's sender is a member; in a direct
/// conversation neither user blocked the other.
pub(crate) async fn may_send_now(
    connection: &mut AnyConnection,
    backend: Backend,
    message: &Message,
) -> Result<Option<Refusal>, sqlx::Error> {
    match message.conversation_id.kind() {
        ConversationKind::Direct { low, high } => {
            Ok(blocked(connection, backend, low, high).await?.then_some(Refusal::Blocked))
        }
        ConversationKind::Group(_) => {
            takes_part_now(connection, backend, &message.conversation_id, &message.sender).await
        }
    }
}

/// Whether `by` (`None`: the app) may change `message` now, inside the change's transaction: its sender, or a
/// group's admin or moderator.
pub(crate) async fn may_change_now(
    connection: &mut AnyConnection,
    backend: Backend,
    message: &Message,
    by: Option<&Uid>,
) -> Result<Option<Refusal>, sqlx::Error> {
    let Some(uid) = by else { return Ok(None) };
    if &message.sender == uid {
        return Ok(None);
    }
    let allowed = match (message.receiver_type, message.conversation_id.guid()) {
        (ReceiverType::Group, Some(guid)) => {
            scope_in(connection, backend, guid, uid).await?.is_some_and(|scope| scope >= Scope::Moderator)
        }
        _ => false,
    };
    Ok((!allowed).then_some(Refusal::NotAllowed))
}
