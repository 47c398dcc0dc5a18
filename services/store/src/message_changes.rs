//! Changing sent messages (edit, soft delete) and reading history through filters.
//!
//! A change takes the conversation's row lock, as a send does, and writes its event with the conversation's
//! current `last_seq` as the outbox `key_seq`. So a change's event sorts after the `message.sent` of every
//! message already in the conversation and before every later one, and changes of one conversation commit one
//! at a time: the relay reads each conversation's events in the order they committed (changes between two
//! sends are ordered by commit time, then event id).

use comet_model::{ConversationId, EventType, Message, MessageEdit, Millis, Uid};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, QueryBuilder};

use crate::error::unencodable;
use crate::messages::{message_columns, message_from_row};
use crate::rows;
use crate::{Backend, MessagePage, Store, StoreError, outbox};

/// What became of a change to a message.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageChange {
    /// The change committed; the message as it is now.
    Changed(Message),
    /// The message was deleted before; nothing changed. Holds the deleted message.
    AlreadyDeleted(Message),
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
    /// Replaces a message's `data` and/or `tags`, sets `editedAt`, `editedBy` (`None` for the app) and
    /// `updatedAt`, and writes `message.edited` (data: the edited message) in the same transaction.
    ///
    /// Fails with `NotFound("message")`; a deleted message is left as it is ([`MessageChange::AlreadyDeleted`]).
    pub async fn edit_message(
        &self,
        id: &str,
        edit: &MessageEdit,
        by: Option<&Uid>,
        now: Millis,
    ) -> Result<MessageChange, StoreError> {
        self.change_message(id, EventType::MessageEdited, now, |message| {
            if let Some(data) = &edit.data {
                message.data = data.clone();
            }
            if let Some(tags) = &edit.tags {
                message.tags = tags.clone();
            }
            message.edited_at = Some(now);
            message.edited_by = by.cloned();
            message.updated_at = now;
        })
        .await
    }

    /// Soft-deletes a message: it keeps its id and seq (history has no gap) and sets `deletedAt`,
    /// `deletedBy` (`None` for the app) and `updatedAt`; its `data` becomes `{}` and its tags empty, so the
    /// content is no longer served to anyone. Writes `message.deleted` (data: the deleted message) in the same
    /// transaction.
    ///
    /// Fails with `NotFound("message")`; deleting twice changes nothing ([`MessageChange::AlreadyDeleted`]).
    pub async fn delete_message(&self, id: &str, by: Option<&Uid>, now: Millis) -> Result<MessageChange, StoreError> {
        self.change_message(id, EventType::MessageDeleted, now, |message| {
            message.data = json!({});
            message.tags = Vec::new();
            message.deleted_at = Some(now);
            message.deleted_by = by.cloned();
            message.updated_at = now;
        })
        .await
    }

    /// Applies `change` to a message under its conversation's lock and writes the event of `event_type`.
    async fn change_message(
        &self,
        id: &str,
        event_type: EventType,
        now: Millis,
        change: impl FnOnce(&mut Message),
    ) -> Result<MessageChange, StoreError> {
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
        let Some(mut message) = message_by_id(&mut transaction, id).await? else {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("message"));
        };
        if message.deleted_at.is_some() {
            transaction.rollback().await?;
            return Ok(MessageChange::AlreadyDeleted(message));
        }
        change(&mut message);
        sqlx::query(
            "UPDATE messages SET data = ?, tags = ?, updated_at = ?, edited_at = ?, deleted_at = ?, edited_by = ?, \
             deleted_by = ? WHERE id = ?",
        )
        .bind(rows::json_text(&message.data))
        .bind(rows::json_text(&Value::from(message.tags.clone())))
        .bind(message.updated_at)
        .bind(message.edited_at)
        .bind(message.deleted_at)
        .bind(message.edited_by.as_ref().map(Uid::as_str))
        .bind(message.deleted_by.as_ref().map(Uid::as_str))
        .bind(message.id.as_str())
        .execute(&mut *transaction)
        .await?;
        let event_data = serde_json::to_value(&message).map_err(unencodable)?;
        outbox::insert(&mut transaction, event_type, conversation.key(), last_seq, now, &event_data).await?;
        transaction.commit().await?;
        Ok(MessageChange::Changed(message))
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
        let found: Vec<AnyRow> = query.build().persistent(false).fetch_all(&self.pool).await?;
        let mut messages = found.iter().map(message_from_row).collect::<Result<Vec<_>, _>>()?;
        if newest_first {
            messages.reverse();
        }
        Ok(messages)
    }
}

/// Locks a conversation's seq row until the transaction ends and returns its `last_seq`; `None` if the
/// conversation has no row.
///
/// SQLite needs no row lock: the transaction began with `BEGIN IMMEDIATE` and holds the database's write lock.
pub(crate) async fn lock_conversation(
    connection: &mut AnyConnection,
    backend: Backend,
    conversation: &ConversationId,
) -> Result<Option<i64>, StoreError> {
    let sql = match backend {
        Backend::MySql => "SELECT last_seq FROM conversations WHERE conversation_id = ? FOR UPDATE",
        Backend::Sqlite => "SELECT last_seq FROM conversations WHERE conversation_id = ?",
    };
    let last_seq: Option<i64> = sqlx::query_scalar(sql).bind(conversation.key()).fetch_optional(connection).await?;
    Ok(last_seq)
}

/// The message with this id, read inside the caller's transaction.
pub(crate) async fn message_by_id(connection: &mut AnyConnection, id: &str) -> Result<Option<Message>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE id = ?"))
        .bind(id)
        .fetch_optional(connection)
        .await?;
    row.as_ref().map(message_from_row).transpose()
}
