//! Sending a message: a gap-free per-conversation seq, idempotent retries, and the conversation bookkeeping
//! (both sides' `user_conversations` rows, the sender's own positions) in the same transaction.

use comet_model::{ConversationId, EventType, Message, Millis, NewMessage, ReceiverType, Uid, new_id};
use sqlx::{Any, AnyConnection, Transaction};

use super::row::{insert_message, message_by_muid};
use crate::error::{is_retryable, is_unique_violation, unencodable};
use crate::{Backend, Store, StoreError, access, outbox};

/// How many times a send starts over: once after creating a conversation's row, and on deadlocks.
const SEND_ATTEMPTS: u32 = 5;

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
    /// Refused (`StoreError::Refused`) when, under the conversation's lock, the sender is not a member of the
    /// group or one of the two users blocked the other (`access`).
    ///
    /// The message gets the next seq of its conversation: the conversation's row is incremented first, and its
    /// row lock (the database's write lock on SQLite) is held until commit, so concurrent senders to one
    /// conversation take turns and seqs are 1, 2, 3, … with no gap. A retry that races the original past the
    /// muid check fails on the `(sender, muid)` unique index; its transaction is rolled back, which also undoes
    /// its seq increment, and the original is returned.
    ///
    /// On SQLite the send is committed by the store's writer task, together with the sends waiting beside it
    /// (`group_commit`), with the same answers.
    pub async fn send_message(&self, message: &NewMessage, now: Millis) -> Result<(Message, bool), StoreError> {
        if let Some(queue) = &self.sends {
            return queue.send(message, now).await;
        }
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
        let message = match commit_to_conversation(&mut transaction, self.backend, new_message, new_id(), now).await? {
            Committed::Sent(message) => *message,
            Committed::NoConversation => {
                transaction.rollback().await?;
                return Ok(Attempt::NoConversation);
            }
            Committed::Refused(refusal) => {
                transaction.rollback().await?;
                return Err(StoreError::Refused(refusal));
            }
            Committed::Retry(error) => return Ok(Attempt::Retry(error)),
            Committed::Duplicate(error) => {
                // A concurrent send with the same (sender, muid) committed first. Rolling back undoes the seq
                // increment, so the conversation keeps no gap.
                transaction.rollback().await?;
                return match &new_message.muid {
                    Some(muid) => match self.message_by_sender_muid(&new_message.sender, muid).await? {
                        Some(existing) => Ok(Attempt::Done(Box::new(existing), false)),
                        // The other send was rolled back after all: start over.
                        None => Ok(Attempt::Retry(error)),
                    },
                    None => Err(error.into()),
                };
            }
        };
        match self.commit_events(transaction).await {
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
    pub(crate) async fn create_conversation(
        &self,
        conversation: &ConversationId,
        guid: Option<&str>,
    ) -> Result<(), StoreError> {
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

    /// The message `sender` sent with `muid`, read outside any transaction (so it sees every commit).
    async fn message_by_sender_muid(&self, sender: &Uid, muid: &str) -> Result<Option<Message>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        message_by_muid(&mut connection, sender, muid).await
    }
}

/// How [`commit_to_conversation`] ended; only `Sent` leaves anything written in the transaction that the
/// caller should commit.
pub(crate) enum Committed {
    Sent(Box<Message>),
    /// The conversation has no row yet.
    NoConversation,
    /// Under the conversation's lock, the sender may not send to it (`access`).
    Refused(crate::Refusal),
    /// The database asked for the transaction to be retried.
    Retry(sqlx::Error),
    /// `(sender, muid)` is taken by a message committed meanwhile.
    Duplicate(sqlx::Error),
}

/// The part of a send that happens inside its transaction, shared by a send and by a held or blocked message
/// approved later: the next seq of the conversation (its row locked until commit), the rules checked under
/// that lock, the message row with `id`, the conversation bookkeeping and the `message.sent` event.
pub(crate) async fn commit_to_conversation(
    transaction: &mut Transaction<'static, Any>,
    backend: Backend,
    new_message: &NewMessage,
    id: String,
    now: Millis,
) -> Result<Committed, StoreError> {
    let seq = match next_seq(transaction, backend, &new_message.conversation_id, now).await {
        Ok(Some(seq)) => seq,
        Ok(None) => return Ok(Committed::NoConversation),
        Err(error) if is_retryable(&error) => return Ok(Committed::Retry(error)),
        Err(error) => return Err(error.into()),
    };
    let message = new_message.to_message(id, seq, now);
    // The conversation's lock is held: decide the rules now, against the latest commits.
    match access::may_send_now(transaction, backend, &message).await {
        Ok(None) => {}
        Ok(Some(refusal)) => return Ok(Committed::Refused(refusal)),
        Err(error) if is_retryable(&error) => return Ok(Committed::Retry(error)),
        Err(error) => return Err(error.into()),
    }
    match insert_message(transaction, &message).await {
        Ok(()) => {}
        Err(error) if is_unique_violation(&error) => return Ok(Committed::Duplicate(error)),
        Err(error) if is_retryable(&error) => return Ok(Committed::Retry(error)),
        Err(error) => return Err(error.into()),
    }
    match record_send(transaction, backend, &message).await {
        Ok(()) => {}
        Err(error) if is_retryable(&error) => return Ok(Committed::Retry(error)),
        Err(error) => return Err(error.into()),
    }
    let event_data = serde_json::to_value(&message).map_err(unencodable)?;
    outbox::insert(transaction, EventType::MessageSent, message.conversation_id.key(), seq, now, &event_data).await?;
    Ok(Committed::Sent(Box::new(message)))
}

/// Increments the conversation's `last_seq` (and `last_message_at`), locking its row until commit, and returns
/// the new value; `None` when the conversation has no row. One statement where the backend can say the value it
/// wrote: SQLite with `RETURNING`, MySQL through `LAST_INSERT_ID(expr)`, whose value the server's answer to the
/// UPDATE carries. A server that leaves it out (the answer says 0, which no seq is) costs a second read.
async fn next_seq(
    connection: &mut AnyConnection,
    backend: Backend,
    conversation: &ConversationId,
    now: Millis,
) -> Result<Option<i64>, sqlx::Error> {
    if backend == Backend::Sqlite {
        return sqlx::query_scalar(
            "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = ? WHERE conversation_id = ? \
             RETURNING last_seq",
        )
        .bind(now)
        .bind(conversation.key())
        .fetch_optional(connection)
        .await;
    }
    let bumped = sqlx::query(
        "UPDATE conversations SET last_seq = LAST_INSERT_ID(last_seq + 1), last_message_at = ? \
         WHERE conversation_id = ?",
    )
    .bind(now)
    .bind(conversation.key())
    .execute(&mut *connection)
    .await?;
    if bumped.rows_affected() == 0 {
        return Ok(None);
    }
    match bumped.last_insert_id() {
        Some(seq) if seq > 0 => Ok(Some(seq)),
        // Reads this transaction's own increment: the row is locked, nobody else can change it before commit.
        _ => sqlx::query_scalar("SELECT last_seq FROM conversations WHERE conversation_id = ?")
            .bind(conversation.key())
            .fetch_one(connection)
            .await
            .map(Some),
    }
}

/// `user_conversations` rows of both sides of a direct conversation, and the sender's positions (its own
/// message is read and delivered). Errors stay `sqlx::Error` so the send can retry deadlocks.
///
/// Each statement is one upsert on a primary key, so it reads nothing that a concurrent send could change
/// underneath it; rows of one conversation are only written under that conversation's lock.
pub(crate) async fn record_send(
    connection: &mut AnyConnection,
    backend: Backend,
    message: &Message,
) -> Result<(), sqlx::Error> {
    let receipt = match backend {
        Backend::MySql => {
            "INSERT INTO conversation_receipts (conversation_id, uid, delivered_seq, read_seq, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE delivered_seq = VALUES(delivered_seq), \
             read_seq = VALUES(read_seq), updated_at = VALUES(updated_at)"
        }
        Backend::Sqlite => {
            "INSERT INTO conversation_receipts (conversation_id, uid, delivered_seq, read_seq, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (conversation_id, uid) DO UPDATE SET \
             delivered_seq = excluded.delivered_seq, read_seq = excluded.read_seq, updated_at = excluded.updated_at"
        }
    };
    if message.receiver_type == ReceiverType::User {
        let sender = message.sender.as_str();
        let receiver = message.receiver.as_str();
        // Both sides in one statement, in uid order, so two sends never take these rows' locks in opposite
        // orders (a statement writes its rows in the order given).
        let mut sides = vec![(sender, receiver), (receiver, sender)];
        sides.sort_unstable();
        sides.dedup();
        let rows = vec!["(?, ?, ?, ?)"; sides.len()].join(", ");
        let upsert = match backend {
            Backend::MySql => format!(
                "INSERT INTO user_conversations (uid, conversation_id, other_uid, last_at) VALUES {rows} \
                 ON DUPLICATE KEY UPDATE last_at = VALUES(last_at)"
            ),
            Backend::Sqlite => format!(
                "INSERT INTO user_conversations (uid, conversation_id, other_uid, last_at) VALUES {rows} \
                 ON CONFLICT (uid, conversation_id) DO UPDATE SET last_at = excluded.last_at"
            ),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(upsert));
        for (uid, other) in sides {
            query = query.bind(uid).bind(message.conversation_id.key()).bind(other).bind(message.sent_at);
        }
        query.execute(&mut *connection).await?;
    }
    // The new seq is the conversation's highest, so it never moves the sender's positions backwards.
    sqlx::query(receipt)
        .bind(message.conversation_id.key())
        .bind(message.sender.as_str())
        .bind(message.seq)
        .bind(message.seq)
        .bind(message.sent_at)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
