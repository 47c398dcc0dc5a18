//! Reactions to messages: at most one row per (message, reaction, user).
//!
//! Adding and removing take the conversation's row lock, like every change to a conversation, so their events
//! are ordered with the conversation's other events (see `changes`).

use comet_model::{EventType, Millis, Reaction, Uid};
use sqlx::QueryBuilder;
use sqlx::any::AnyRow;

use super::Locked;
use crate::rows::{self, get};
use crate::tx::commit_with_event;
use crate::{Store, StoreError, access};

/// What became of adding or removing a reaction.
#[derive(Debug, Clone, PartialEq)]
pub enum ReactionChange {
    /// The reaction was added or removed, and its event written.
    Changed(Reaction),
    /// Nothing to do: the user had already reacted so (add), or had not (remove).
    Unchanged,
    /// The message is deleted: its reactions no longer change.
    MessageDeleted,
}

/// How many users reacted to a message with one reaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionCount {
    pub message_id: String,
    pub reaction: String,
    pub count: i64,
}

impl Store {
    /// Adds `uid`'s `reaction` to a message and writes `reaction.added` in the same transaction. Adding it
    /// again changes nothing ([`ReactionChange::Unchanged`]). Fails with `NotFound("message")`.
    pub async fn add_reaction(
        &self,
        message_id: &str,
        uid: &Uid,
        reaction: &str,
        now: Millis,
    ) -> Result<ReactionChange, StoreError> {
        self.change_reaction(message_id, uid, reaction, now, true).await
    }

    /// Removes `uid`'s `reaction` from a message and writes `reaction.removed` in the same transaction.
    /// Removing one that is not there changes nothing. Fails with `NotFound("message")`.
    pub async fn remove_reaction(
        &self,
        message_id: &str,
        uid: &Uid,
        reaction: &str,
        now: Millis,
    ) -> Result<ReactionChange, StoreError> {
        self.change_reaction(message_id, uid, reaction, now, false).await
    }

    async fn change_reaction(
        &self,
        message_id: &str,
        uid: &Uid,
        reaction: &str,
        now: Millis,
        add: bool,
    ) -> Result<ReactionChange, StoreError> {
        // The lock comes first, so the existence check below cannot race another change of this reaction.
        let Locked { mut transaction, last_seq, message } = self.lock_message(message_id).await?;
        let conversation = message.conversation_id;
        if let Some(refusal) = access::takes_part_now(&mut transaction, self.backend, &conversation, uid).await? {
            transaction.rollback().await?;
            return Err(StoreError::Refused(refusal));
        }
        if message.deleted_at.is_some() {
            transaction.rollback().await?;
            return Ok(ReactionChange::MessageDeleted);
        }
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT reacted_at FROM message_reactions WHERE message_id = ? AND reaction = ? AND uid = ?",
        )
        .bind(message_id)
        .bind(reaction)
        .bind(uid.as_str())
        .fetch_optional(&mut *transaction)
        .await?;
        if existing.is_some() == add {
            transaction.rollback().await?;
            return Ok(ReactionChange::Unchanged);
        }
        let changed = Reaction {
            message_id: message_id.to_owned(),
            conversation_id: conversation.clone(),
            uid: uid.clone(),
            reaction: reaction.to_owned(),
            reacted_at: existing.unwrap_or(now),
        };
        let event_type = if add {
            sqlx::query(
                "INSERT INTO message_reactions (message_id, reaction, uid, conversation_id, reacted_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(message_id)
            .bind(reaction)
            .bind(uid.as_str())
            .bind(conversation.key())
            .bind(now)
            .execute(&mut *transaction)
            .await?;
            EventType::ReactionAdded
        } else {
            sqlx::query("DELETE FROM message_reactions WHERE message_id = ? AND reaction = ? AND uid = ?")
                .bind(message_id)
                .bind(reaction)
                .bind(uid.as_str())
                .execute(&mut *transaction)
                .await?;
            EventType::ReactionRemoved
        };
        commit_with_event(self, transaction, event_type, &conversation, last_seq, now, &changed).await?;
        Ok(ReactionChange::Changed(changed))
    }

    /// Up to `limit` reactions to a message, ordered by reaction then uid, starting after `after`
    /// (the `(reaction, uid)` of the previous page's last row); only `reaction` when given.
    pub async fn list_reactions(
        &self,
        message_id: &str,
        reaction: Option<&str>,
        after: Option<(&str, &Uid)>,
        limit: u32,
    ) -> Result<Vec<Reaction>, StoreError> {
        let mut query = QueryBuilder::new(
            "SELECT message_id, reaction, uid, conversation_id, reacted_at FROM message_reactions WHERE message_id = ",
        );
        query.push_bind(message_id.to_owned());
        if let Some(reaction) = reaction {
            query.push(" AND reaction = ").push_bind(reaction.to_owned());
        }
        if let Some((after_reaction, after_uid)) = after {
            query.push(" AND (reaction > ").push_bind(after_reaction.to_owned());
            query.push(" OR (reaction = ").push_bind(after_reaction.to_owned());
            query.push(" AND uid > ").push_bind(after_uid.as_str().to_owned()).push("))");
        }
        query.push(" ORDER BY reaction, uid LIMIT ").push_bind(i64::from(limit));
        let found: Vec<AnyRow> = query.build().persistent(false).fetch_all(&self.reads).await?;
        found.iter().map(reaction_from_row).collect()
    }

    /// How many users reacted with each reaction, for each of these messages, ordered by message id and
    /// reaction: one query for a whole page of history.
    pub async fn reaction_counts(&self, message_ids: &[&str]) -> Result<Vec<ReactionCount>, StoreError> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::new(
            "SELECT message_id, reaction, COUNT(*) AS reactions FROM message_reactions WHERE message_id IN (",
        );
        let mut separated = query.separated(", ");
        for id in message_ids {
            separated.push_bind((*id).to_owned());
        }
        query.push(") GROUP BY message_id, reaction ORDER BY message_id, reaction");
        let found: Vec<AnyRow> = query.build().persistent(false).fetch_all(&self.reads).await?;
        found
            .iter()
            .map(|row| {
                Ok(ReactionCount {
                    message_id: get(row, "message_id")?,
                    reaction: get(row, "reaction")?,
                    count: get(row, "reactions")?,
                })
            })
            .collect()
    }
}

fn reaction_from_row(row: &AnyRow) -> Result<Reaction, StoreError> {
    Ok(Reaction {
        message_id: get(row, "message_id")?,
        conversation_id: rows::conversation(row, "conversation_id")?,
        uid: rows::uid(row, "uid")?,
        reaction: get(row, "reaction")?,
        reacted_at: get(row, "reacted_at")?,
    })
}
