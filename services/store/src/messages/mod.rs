//! Messages: sending (`send`; on SQLite through the writer task of `group_commit`), changing (`changes`), reactions (`reactions`), and reading history (here).
//! `row` is how a message is stored and read back.

mod changes;
pub(crate) mod group_commit;
mod held;
mod reactions;
pub(crate) mod row;
mod send;

use comet_model::{ConversationId, Message, Millis};
use sqlx::any::AnyRow;
use sqlx::{Any, QueryBuilder, Transaction};

pub use changes::MessageChange;
pub use held::{Decided, HeldDecision, HeldMessage, HeldStatus};
pub use reactions::{ReactionChange, ReactionCount};
use row::{message_columns, message_from_row};

use crate::tx::lock_conversation;
use crate::{Store, StoreError};

/// A message under its conversation's lock: the write transaction holding the lock, the conversation's
/// `last_seq`, and the message as it is under the lock.
struct Locked {
    transaction: Transaction<'static, Any>,
    last_seq: i64,
    message: Message,
}

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

/// Filters on a page of history, on top of [`MessagePage`]'s cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageFilter {
    /// Leave deleted messages out (their seqs then leave holes in the page).
    pub hide_deleted: bool,
    /// Only messages sent, edited or deleted at or after this time (ms).
    pub updated_since: Option<Millis>,
    /// Only replies in the thread of this message.
    pub parent_id: Option<String>,
}

impl Store {
    /// The message with this id, deleted or not.
    pub async fn get_message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reads)
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
                .fetch_all(&self.reads)
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
                .fetch_all(&self.reads)
                .await?
            }
        };
        found.iter().map(message_from_row).collect()
    }

    /// A page of a conversation's messages through `filter`, always in ascending seq; the cursor works as in
    /// [`Store::list_messages`].
    pub async fn list_messages_filtered(
        &self,
        conversation: &ConversationId,
        page: &MessagePage,
        filter: &MessageFilter,
    ) -> Result<Vec<Message>, StoreError> {
        let mut query =
            QueryBuilder::<Any>::new(concat!("SELECT ", message_columns!(), " FROM messages WHERE conversation_id = "));
        query.push_bind(conversation.key().to_owned());
        query.push(" AND seq > ").push_bind(page.after_seq.unwrap_or(0));
        if let Some(before_seq) = page.before_seq {
            query.push(" AND seq < ").push_bind(before_seq);
        }
        if filter.hide_deleted {
            query.push(" AND deleted_at IS NULL");
        }
        if let Some(since) = filter.updated_since {
            query.push(" AND updated_at >= ").push_bind(since);
        }
        if let Some(parent_id) = &filter.parent_id {
            query.push(" AND parent_id = ").push_bind(parent_id.clone());
        }
        let newest_first = page.before_seq.is_some();
        query.push(if newest_first { " ORDER BY seq DESC LIMIT " } else { " ORDER BY seq LIMIT " });
        query.push_bind(i64::from(page.limit));
        let found: Vec<AnyRow> = query.build().persistent(false).fetch_all(&self.reads).await?;
        let mut messages = found.iter().map(message_from_row).collect::<Result<Vec<_>, _>>()?;
        if newest_first {
            messages.reverse();
        }
        Ok(messages)
    }

    /// Begins a write transaction, takes the lock of message `id`'s conversation and reads the message under
    /// it. Fails with `NotFound("message")` when there is no such message.
    async fn lock_message(&self, id: &str) -> Result<Locked, StoreError> {
        // The conversation of a message never changes, so it can be read before the lock is taken.
        let conversation = match self.get_message(id).await? {
            Some(message) => message.conversation_id,
            None => return Err(StoreError::NotFound("message")),
        };
        let mut transaction = self.begin_write().await?;
        let Some(last_seq) = lock_conversation(&mut transaction, self.backend, &conversation).await? else {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("message"));
        };
        let Some(message) = row::message_by_id(&mut transaction, id).await? else {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("message"));
        };
        Ok(Locked { transaction, last_seq, message })
    }
}
