//! Changing sent messages: edit and soft delete.
//!
//! A change takes the conversation's row lock, as a send does, and writes its event with the conversation's
//! current `last_seq` as the outbox `key_seq`. So a change's event sorts after the `message.sent` of every
//! message already in the conversation and before every later one, and changes of one conversation commit one
//! at a time: the relay reads each conversation's events in the order they committed (changes between two
//! sends are ordered by commit time, then event id).

use comet_model::{EventType, Message, MessageEdit, Millis, Uid};
use serde_json::{Value, json};

use super::Locked;
use crate::rows;
use crate::tx::commit_with_event;
use crate::{Store, StoreError, access};

/// What became of a change to a message.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageChange {
    /// The change committed; the message as it is now.
    Changed(Message),
    /// The message was deleted before; nothing changed. Holds the deleted message.
    AlreadyDeleted(Message),
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
        self.change_message(id, EventType::MessageEdited, by, now, |message| {
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
        self.change_message(id, EventType::MessageDeleted, by, now, |message| {
            message.data = json!({});
            message.tags = Vec::new();
            message.deleted_at = Some(now);
            message.deleted_by = by.cloned();
            message.updated_at = now;
        })
        .await
    }

    /// Applies `change` to a message under its conversation's lock and writes the event of `event_type`;
    /// refused unless `by` may change it then (`access`).
    async fn change_message(
        &self,
        id: &str,
        event_type: EventType,
        by: Option<&Uid>,
        now: Millis,
        change: impl FnOnce(&mut Message),
    ) -> Result<MessageChange, StoreError> {
        let Locked { mut transaction, last_seq, mut message } = self.lock_message(id).await?;
        let conversation = message.conversation_id.clone();
        if let Some(refusal) = access::may_change_now(&mut transaction, self.backend, &message, by).await? {
            transaction.rollback().await?;
            return Err(StoreError::Refused(refusal));
        }
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
        // A change is activity in the conversation: it moves up the lists, as a send does.
        sqlx::query("UPDATE conversations SET last_message_at = ? WHERE conversation_id = ?")
            .bind(now)
            .bind(conversation.key())
            .execute(&mut *transaction)
            .await?;
        sqlx::query("UPDATE user_conversations SET last_at = ? WHERE conversation_id = ?")
            .bind(now)
            .bind(conversation.key())
            .execute(&mut *transaction)
            .await?;
        commit_with_event(self, transaction, event_type, &conversation, last_seq, now, &message).await?;
        Ok(MessageChange::Changed(message))
    }
}
