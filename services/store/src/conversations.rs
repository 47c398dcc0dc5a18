//! Conversations as one user sees them: read and delivered positions (receipts), unread counts, and the list of
//! a user's conversations by last activity.
//!
//! Positions are seqs of the conversation, one row per (conversation, user) in `conversation_receipts`, never a
//! row per message. The unread count is `conversations.last_seq - read_seq`. Sending counts as having read the
//! conversation up to one's own message (the send moves the sender's positions, without a receipt event), so a
//! user's own messages never count as unread for it.
//!
//! Every write here takes the conversation's row lock first, as a send does, so positions and sends of one
//! conversation are serialized and receipt events are ordered with the conversation's other events.

use comet_model::{ConversationId, EventType, Guid, Message, Millis, Uid};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, QueryBuilder};

use crate::messages::row::{message_by_id, message_columns, message_from_row};
use crate::rows::{self, get};
use crate::tx::{commit_with_event, lock_conversation};
use crate::{Store, StoreError, access};

/// Which position a receipt moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// The user's client received the messages up to the position.
    Delivered,
    /// The user read the messages up to the position; reading also counts as delivered.
    Read,
}

/// A user's positions in a conversation after a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub conversation_id: ConversationId,
    pub uid: Uid,
    pub delivered_seq: i64,
    pub read_seq: i64,
    /// The conversation's newest seq.
    pub last_seq: i64,
    /// Whether the mark moved the position it names (and so wrote its event).
    pub moved: bool,
}

impl Receipt {
    pub fn unread(&self) -> i64 {
        (self.last_seq - self.read_seq).max(0)
    }
}

/// Whom a conversation is with, seen from the listing user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationWith {
    User(Uid),
    Group(Guid),
}

/// Where a page of conversations starts: after the conversation with this last activity and id (exclusive),
/// in newest-first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationCursor {
    pub last_at: Millis,
    pub conversation_id: ConversationId,
}

/// One of a user's conversations.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummary {
    pub conversation_id: ConversationId,
    pub with: ConversationWith,
    pub last_seq: i64,
    /// When its last message was sent (ms): the order of the list.
    pub last_at: Millis,
    pub delivered_seq: i64,
    pub read_seq: i64,
    /// The message at `last_seq` (deleted ones included, as deleted).
    pub last_message: Option<Message>,
}

impl ConversationSummary {
    pub fn unread(&self) -> i64 {
        (self.last_seq - self.read_seq).max(0)
    }

    pub fn cursor(&self) -> ConversationCursor {
        ConversationCursor { last_at: self.last_at, conversation_id: self.conversation_id.clone() }
    }
}

/// What a send writes besides the message, inside its transaction and after the conversation's row lock: the
impl Store {
    /// Moves `uid`'s delivered or read position in a conversation up to the message `message_id`, or to the
    /// newest message when `None`, and writes `receipt.delivered` or `receipt.read` in the same transaction when
    /// the position moved. Positions never move backwards: marking an older message changes nothing. Marking read
    /// also moves the delivered position (without a `receipt.delivered` event).
    ///
    /// Fails with `NotFound("conversation")` when the conversation has no message, and `NotFound("message")`
    /// when `message_id` names no message of this conversation; refused when `uid` does not take part in it then.
    pub async fn mark_conversation(
        &self,
        conversation: &ConversationId,
        uid: &Uid,
        kind: ReceiptKind,
        message_id: Option<&str>,
        now: Millis,
    ) -> Result<Receipt, StoreError> {
        let mut transaction = self.begin_write().await?;
        // The lock comes first (as in a send), so the positions read below cannot change before commit.
        let last_seq = match lock_conversation(&mut transaction, self.backend, conversation).await? {
            Some(last_seq) if last_seq > 0 => last_seq,
            _ => {
                transaction.rollback().await?;
                return Err(StoreError::NotFound("conversation"));
            }
        };
        if let Some(refusal) = access::takes_part_now(&mut transaction, self.backend, conversation, uid).await? {
            transaction.rollback().await?;
            return Err(StoreError::Refused(refusal));
        }
        let (target_id, target_seq) = match message_id {
            Some(id) => match message_by_id(&mut transaction, id).await? {
                Some(message) if &message.conversation_id == conversation => (message.id, message.seq),
                _ => {
                    transaction.rollback().await?;
                    return Err(StoreError::NotFound("message"));
                }
            },
            None => {
                let newest: Option<String> =
                    sqlx::query_scalar("SELECT id FROM messages WHERE conversation_id = ? AND seq = ?")
                        .bind(conversation.key())
                        .bind(last_seq)
                        .fetch_optional(&mut *transaction)
                        .await?;
                let Some(newest) = newest else {
                    transaction.rollback().await?;
                    return Err(StoreError::NotFound("message"));
                };
                (newest, last_seq)
            }
        };
        let existing: Option<AnyRow> = sqlx::query(
            "SELECT delivered_seq, read_seq FROM conversation_receipts WHERE conversation_id = ? AND uid = ?",
        )
        .bind(conversation.key())
        .bind(uid.as_str())
        .fetch_optional(&mut *transaction)
        .await?;
        let (delivered_before, read_before) = match &existing {
            Some(row) => (get::<i64>(row, "delivered_seq")?, get::<i64>(row, "read_seq")?),
            None => (0, 0),
        };
        let (delivered_seq, read_seq) = match kind {
            ReceiptKind::Delivered => (delivered_before.max(target_seq), read_before),
            ReceiptKind::Read => (delivered_before.max(target_seq), read_before.max(target_seq)),
        };
        let moved = match kind {
            ReceiptKind::Delivered => delivered_seq > delivered_before,
            ReceiptKind::Read => read_seq > read_before,
        };
        let receipt = Receipt {
            conversation_id: conversation.clone(),
            uid: uid.clone(),
            delivered_seq,
            read_seq,
            last_seq,
            moved,
        };
        if !moved {
            transaction.rollback().await?;
            return Ok(receipt);
        }
        let sql = if existing.is_some() {
            "UPDATE conversation_receipts SET delivered_seq = ?, read_seq = ?, updated_at = ? \
             WHERE conversation_id = ? AND uid = ?"
        } else {
            "INSERT INTO conversation_receipts (delivered_seq, read_seq, updated_at, conversation_id, uid) \
             VALUES (?, ?, ?, ?, ?)"
        };
        sqlx::query(sql)
            .bind(delivered_seq)
            .bind(read_seq)
            .bind(now)
            .bind(conversation.key())
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        let event_type = match kind {
            ReceiptKind::Delivered => EventType::ReceiptDelivered,
            ReceiptKind::Read => EventType::ReceiptRead,
        };
        let event_data = json!({
            "conversationId": conversation,
            "uid": uid,
            "seq": target_seq,
            "messageId": target_id,
            "at": now,
        });
        commit_with_event(self, transaction, event_type, conversation, last_seq, now, &event_data).await?;
        Ok(receipt)
    }

    /// Up to `limit` of `uid`'s conversations that have messages, newest activity first (ties by conversation
    /// id, descending), starting after `after`: the direct conversations it sent or received in, and the
    /// conversations of the groups it is a member of (deleted groups left out).
    ///
    /// Two indexed queries, each at most `limit` rows, merged here:
    /// - direct: one range of `user_conversations_recent (uid, last_at, conversation_id)`, read backwards from
    ///   the cursor, so the cost is the page, not the user's history;
    /// - groups: the user's memberships through `group_members_uid`, each joined to its conversation through
    ///   `conversations_guid` and to `chat_groups` by primary key; sorting happens over the user's groups only
    ///   (a group's activity lives on its one `conversations` row, so a send writes no per-member row).
    pub async fn list_conversations(
        &self,
        uid: &Uid,
        after: Option<&ConversationCursor>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut direct = QueryBuilder::<Any>::new(
            "SELECT uc.conversation_id, uc.other_uid, uc.last_at, c.last_seq FROM user_conversations uc \
             JOIN conversations c ON c.conversation_id = uc.conversation_id WHERE uc.uid = ",
        );
        direct.push_bind(uid.as_str().to_owned());
        push_cursor(&mut direct, "uc.last_at", "uc.conversation_id", after);
        direct.push(" ORDER BY uc.last_at DESC, uc.conversation_id DESC LIMIT ").push_bind(i64::from(limit));
        let direct_rows: Vec<AnyRow> = direct.build().persistent(false).fetch_all(&self.reads).await?;

        let mut groups = QueryBuilder::<Any>::new(
            "SELECT c.conversation_id, c.guid, c.last_message_at, c.last_seq FROM group_members gm \
             JOIN chat_groups g ON g.guid = gm.guid JOIN conversations c ON c.guid = gm.guid \
             WHERE g.deleted_at IS NULL AND c.last_seq > 0 AND c.last_message_at IS NOT NULL AND gm.uid = ",
        );
        groups.push_bind(uid.as_str().to_owned());
        push_cursor(&mut groups, "c.last_message_at", "c.conversation_id", after);
        groups.push(" ORDER BY c.last_message_at DESC, c.conversation_id DESC LIMIT ").push_bind(i64::from(limit));
        let group_rows: Vec<AnyRow> = groups.build().persistent(false).fetch_all(&self.reads).await?;

        let mut summaries = Vec::with_capacity(direct_rows.len() + group_rows.len());
        for row in &direct_rows {
            summaries.push(summary(row, "last_at", ConversationWith::User(rows::uid(row, "other_uid")?))?);
        }
        for row in &group_rows {
            summaries.push(summary(row, "last_message_at", ConversationWith::Group(rows::guid(row, "guid")?))?);
        }
        summaries.sort_by(|a, b| (b.last_at, b.conversation_id.key()).cmp(&(a.last_at, a.conversation_id.key())));
        summaries.truncate(limit as usize);
        if summaries.is_empty() {
            return Ok(summaries);
        }

        let mut receipts = QueryBuilder::<Any>::new(
            "SELECT conversation_id, delivered_seq, read_seq FROM conversation_receipts WHERE uid = ",
        );
        receipts.push_bind(uid.as_str().to_owned()).push(" AND conversation_id IN (");
        let mut separated = receipts.separated(", ");
        for summary in &summaries {
            separated.push_bind(summary.conversation_id.key().to_owned());
        }
        receipts.push(")");
        for row in receipts.build().persistent(false).fetch_all(&self.reads).await? {
            let conversation: String = get(&row, "conversation_id")?;
            if let Some(summary) = summaries.iter_mut().find(|summary| summary.conversation_id.key() == conversation) {
                summary.delivered_seq = get(&row, "delivered_seq")?;
                summary.read_seq = get(&row, "read_seq")?;
            }
        }

        // The last messages, each a point lookup on `messages_conversation_seq`.
        let mut last = QueryBuilder::<Any>::new(concat!("SELECT ", message_columns!(), " FROM messages WHERE "));
        for (index, summary) in summaries.iter().enumerate() {
            if index > 0 {
                last.push(" OR ");
            }
            last.push("(conversation_id = ").push_bind(summary.conversation_id.key().to_owned());
            last.push(" AND seq = ").push_bind(summary.last_seq).push(")");
        }
        for row in last.build().persistent(false).fetch_all(&self.reads).await? {
            let message = message_from_row(&row)?;
            if let Some(summary) =
                summaries.iter_mut().find(|summary| summary.conversation_id == message.conversation_id)
            {
                summary.last_message = Some(message);
            }
        }
        Ok(summaries)
    }
}

/// `AND (at < ? OR (at = ? AND id < ?))`: the rows after the cursor in newest-first order.
fn push_cursor(query: &mut QueryBuilder<Any>, at: &str, id: &str, after: Option<&ConversationCursor>) {
    if let Some(after) = after {
        query.push(format!(" AND ({at} < ")).push_bind(after.last_at);
        query.push(format!(" OR ({at} = ")).push_bind(after.last_at);
        query.push(format!(" AND {id} < ")).push_bind(after.conversation_id.key().to_owned()).push("))");
    }
}

fn summary(row: &AnyRow, at_column: &str, with: ConversationWith) -> Result<ConversationSummary, StoreError> {
    Ok(ConversationSummary {
        conversation_id: rows::conversation(row, "conversation_id")?,
        with,
        last_seq: get(row, "last_seq")?,
        last_at: get(row, at_column)?,
        delivered_seq: 0,
        read_seq: 0,
        last_message: None,
    })
}
