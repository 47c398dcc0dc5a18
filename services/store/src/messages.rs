//! Messages: sending with a gap-free per-conversation seq and idempotent retries, reading history.

use comet_model::{Category, ConversationId, EventType, Message, Millis, NewMessage, ReceiverType, Uid, new_id};
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::error::{is_retryable, is_unique_violation, unencodable};
use crate::rows::{self, get};
use crate::{Store, StoreError, conversations, outbox};

/// How many times a send starts over: once after creating a conversation's row, and on deadlocks.
const SEND_ATTEMPTS: u32 = 5;

/// The columns every message query selects, in the order [`message_from_row`] reads them.
macro_rules! message_columns {
    () => {
        "id, conversation_id, seq, sender, receiver, receiver_type, category, message_type, data, muid, \
         parent_id, tags, sent_at, updated_at, edited_at, deleted_at, edited_by, deleted_by"
    };
}
pub(crate) use message_columns;

/// Which part of a conversation's history to read, by seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagePage {
    /// Read messages after this seq (exclusive); `None` starts at the beginning.
    pub after_seq: Option<i64>,
    /// Read the `limit` messages just before this seq (exclusive), for paging backwards.
    pub before_seq: Option<i64>,
    /// The most messages to return.
    pub limit: u32,
}

/// How one attempt at sending ended.
enum Attempt {
    /// The message was stored (`true`) or an earlier one with the same muid was found (`false`).
    Done(Box<Message>, bool),
    /// The conversation has no row yet; create it and start over.
    NoConversation,
    /// The database asked for the transaction to be retried.
    Retry(sqlx::Error),
}

impl Store {
    /// Stores a message and its `message.sent` event in one transaction and returns it with `true`; or, when
    /// the sender already sent a message with this `muid`, returns that message unchanged with `false`.
    ///
    /// The message gets the next seq of its conversation: the conversation's row is incremented first, and its
    /// row lock (the database's write lock on SQLite) is held until commit, so concurrent senders to one
    /// conversation take turns and seqs are 1, 2, 3, … with no gap. A retry that races the original past the
    /// muid check fails on the `(sender, muid)` unique index; its transaction is rolled back, which also undoes
    /// its seq increment, and the original is returned.
    pub async fn send_message(&self, message: &NewMessage, now: Millis) -> Result<(Message, bool), StoreError> {
        let mut last_error = None;
        for _ in 0..SEND_ATTEMPTS {
            match self.try_send(message, now).await? {
                Attempt::Done(stored, created) => return Ok((*stored, created)),
                Attempt::NoConversation => {
                    let guid = (message.receiver_type == ReceiverType::Group).then_some(message.receiver.as_str());
                    self.create_conversation(&message.conversation_id, guid).await?
                }
                Attempt::Retry(error) => {
                    tracing::debug!(conversation = %message.conversation_id, %error, "send_message retries");
                    last_error = Some(error);
                }
            }
        }
        Err(match last_error {
            Some(error) => StoreError::Database(error),
            None => StoreError::NotFound("conversation"),
        })
    }

    /// One attempt at [`Store::send_message`] in one transaction.
    async fn try_send(&self, new_message: &NewMessage, now: Millis) -> Result<Attempt, StoreError> {
        let mut transaction = self.begin_write().await?;
        if let Some(muid) = &new_message.muid
            && let Some(existing) = message_by_muid(&mut transaction, &new_message.sender, muid).await?
        {
            transaction.rollback().await?;
            return Ok(Attempt::Done(Box::new(existing), false));
        }

        let bumped = sqlx::query(
            "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = ? WHERE conversation_id = ?",
        )
        .bind(now)
        .bind(new_message.conversation_id.key())
        .execute(&mut *transaction)
        .await;
        match bumped {
            Ok(result) if result.rows_affected() == 0 => {
                transaction.rollback().await?;
                return Ok(Attempt::NoConversation);
            }
            Ok(_) => {}
            Err(error) if is_retryable(&error) => return Ok(Attempt::Retry(error)),
            Err(error) => return Err(error.into()),
        }
        // Reads this transaction's own increment: the row is locked, nobody else can change it before commit.
        let seq: i64 = sqlx::query_scalar("SELECT last_seq FROM conversations WHERE conversation_id = ?")
            .bind(new_message.conversation_id.key())
            .fetch_one(&mut *transaction)
            .await?;

        let message = Message {
            id: new_id(),
            conversation_id: new_message.conversation_id.clone(),
            seq,
            sender: new_message.sender.clone(),
            receiver: new_message.receiver.clone(),
            receiver_type: new_message.receiver_type,
            category: new_message.category,
            message_type: new_message.message_type.clone(),
            data: new_message.data.clone(),
            muid: new_message.muid.clone(),
            parent_id: new_message.parent_id.clone(),
            tags: new_message.tags.clone(),
            sent_at: now,
            updated_at: now,
            edited_at: None,
            deleted_at: None,
            edited_by: None,
            deleted_by: None,
        };
        match insert_message(&mut transaction, &message).await {
            Ok(()) => {}
            Err(error) if is_unique_violation(&error) => {
                // A concurrent send with the same (sender, muid) committed first. Rolling back undoes the seq
                // increment, so the conversation keeps no gap.
                transaction.rollback().await?;
                return match &message.muid {
                    Some(muid) => match self.message_by_sender_muid(&message.sender, muid).await? {
                        Some(existing) => Ok(Attempt::Done(Box::new(existing), false)),
                        // The other send was rolled back after all: start over.
                        None => Ok(Attempt::Retry(error)),
                    },
                    None => Err(error.into()),
                };
            }
            Err(error) if is_retryable(&error) => return Ok(Attempt::Retry(error)),
            Err(error) => return Err(error.into()),
        }
        match conversations::record_send(&mut transaction, self.backend, &message).await {
            Ok(()) => {}
            Err(error) if is_retryable(&error) => return Ok(Attempt::Retry(error)),
            Err(error) => return Err(error.into()),
        }
        let event_data = serde_json::to_value(&message).map_err(unencodable)?;
        outbox::insert(&mut transaction, EventType::MessageSent, message.conversation_id.key(), seq, now, &event_data)
            .await?;
        match transaction.commit().await {
            Ok(()) => Ok(Attempt::Done(Box::new(message), true)),
            Err(error) if is_retryable(&error) => Ok(Attempt::Retry(error)),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates a conversation's seq row at 0 (with its group's guid for a group conversation), in its own short
    /// transaction. Another sender creating it at the
    /// same moment is fine: the row exists either way.
    ///
    /// This runs outside the send's transaction on purpose: on MySQL a duplicate-key error leaves a shared
    /// lock on the existing row, and two transactions that both hold one and then ask for the exclusive lock
    /// deadlock. Here the failed insert ends at once and the send starts over with the row in place.
    async fn create_conversation(&self, conversation: &ConversationId, guid: Option<&str>) -> Result<(), StoreError> {
        let inserted = sqlx::query("INSERT INTO conversations (conversation_id, last_seq, guid) VALUES (?, 0, ?)")
            .bind(conversation.key())
            .bind(guid)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The message with this id, deleted or not.
    pub async fn get_message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// A page of a conversation's messages, always in ascending seq.
    ///
    /// With `before_seq`, the `limit` messages just before it (and after `after_seq`, if given): paging
    /// backwards from the newest. Otherwise the first `limit` messages after `after_seq`, or from the start.
    pub async fn list_messages(
        &self,
        conversation: &ConversationId,
        page: &MessagePage,
    ) -> Result<Vec<Message>, StoreError> {
        let after_seq = page.after_seq.unwrap_or(0);
        let limit = i64::from(page.limit);
        let found = match page.before_seq {
            Some(before_seq) => {
                let mut newest_first = sqlx::query(concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM messages WHERE conversation_id = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?"
                ))
                .bind(conversation.key())
                .bind(after_seq)
                .bind(before_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                newest_first.reverse();
                newest_first
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"
                ))
                .bind(conversation.key())
                .bind(after_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        found.iter().map(message_from_row).collect()
    }

    /// The message `sender` sent with `muid`, read outside any transaction (so it sees every commit).
    async fn message_by_sender_muid(&self, sender: &Uid, muid: &str) -> Result<Option<Message>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        message_by_muid(&mut connection, sender, muid).await
    }
}

/// The message `sender` sent with `muid`, if any.
async fn message_by_muid(
    connection: &mut AnyConnection,
    sender: &Uid,
    muid: &str,
) -> Result<Option<Message>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE sender = ? AND muid = ?"))
        .bind(sender.as_str())
        .bind(muid)
        .fetch_optional(connection)
        .await?;
    row.as_ref().map(message_from_row).transpose()
}

/// Inserts a message row. The error stays a `sqlx::Error` so the caller can tell a unique violation.
async fn insert_message(transaction: &mut Transaction<'static, Any>, message: &Message) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO messages (",
        message_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(message.id.as_str())
    .bind(message.conversation_id.key())
    .bind(message.seq)
    .bind(message.sender.as_str())
    .bind(message.receiver.as_str())
    .bind(message.receiver_type.as_str())
    .bind(message.category.as_str())
    .bind(message.message_type.as_str())
    .bind(rows::json_text(&message.data))
    .bind(message.muid.as_deref())
    .bind(message.parent_id.as_deref())
    .bind(rows::json_text(&Value::from(message.tags.clone())))
    .bind(message.sent_at)
    .bind(message.updated_at)
    .bind(message.edited_at)
    .bind(message.deleted_at)
    .bind(message.edited_by.as_ref().map(Uid::as_str))
    .bind(message.deleted_by.as_ref().map(Uid::as_str))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// A nullable uid column.
fn optional_uid(row: &AnyRow, column: &str) -> Result<Option<Uid>, StoreError> {
    let text: Option<String> = get(row, column)?;
    text.map(|text| Uid::parse(&text).map_err(|error| crate::error::corrupt(column, error))).transpose()
}

/// A message from a row selected with [`message_columns!`].
pub(crate) fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    let tags = rows::json(row, "tags")?;
    let tags: Vec<String> = serde_json::from_value(tags).map_err(|error| crate::error::corrupt("tags", error))?;
    Ok(Message {
        id: get(row, "id")?,
        conversation_id: rows::conversation(row, "conversation_id")?,
        seq: get(row, "seq")?,
        sender: rows::uid(row, "sender")?,
        receiver: get(row, "receiver")?,
        receiver_type: rows::named(row, "receiver_type", ReceiverType::parse)?,
        category: rows::named(row, "category", Category::parse)?,
        message_type: get(row, "message_type")?,
        data: rows::json(row, "data")?,
        muid: get(row, "muid")?,
        parent_id: get(row, "parent_id")?,
        tags,
        sent_at: get(row, "sent_at")?,
        updated_at: get(row, "updated_at")?,
        edited_at: get(row, "edited_at")?,
        deleted_at: get(row, "deleted_at")?,
        edited_by: optional_uid(row, "edited_by")?,
        deleted_by: optional_uid(row, "deleted_by")?,
    })
}
