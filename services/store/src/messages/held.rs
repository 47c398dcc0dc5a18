//! Messages moderation holds or approves later (issue #15, migration 0012).
//!
//! - A message an asynchronous rule must decide is *held*: one transaction writes its `moderation_held` row
//!   and a `message.pending` event, under the conversation's lock with the send's rules checked, but gives it
//!   no seq and no `messages` row, so no recipient's socket, history, resync or `message_sent` webhook can
//!   carry it.
//! - It is decided once: [`Store::decide_held`] changes a `pending` row only, and in the same transaction an
//!   approved message is committed to its conversation (with its id, the next seq, `message.sent`) and the
//!   decision's `message.moderated` event is written. A second decision of the same message finds it decided
//!   and changes nothing, which is what makes a redelivered or retried decision harmless.
//! - A blocked message (never committed) that a moderator approves is committed the same way
//!   ([`Store::commit_approved`]).

use comet_model::{EventType, Message, Millis, NewMessage, new_id};
use serde_json::{Value, json};
use sqlx::any::AnyRow;

use super::send::{Committed, commit_to_conversation};
use crate::error::{is_retryable, is_unique_violation, unencodable};
use crate::rows::{self, get};
use crate::tx::lock_conversation;
use crate::{Backend, Refusal, Store, StoreError, access, outbox};

/// How many times a hold or a decision starts over (a conversation row made first, deadlocks).
const ATTEMPTS: u32 = 5;

/// Where a held message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldStatus {
    Pending,
    Approved,
    Disapproved,
}

impl HeldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldStatus::Pending => "pending",
            HeldStatus::Approved => "approved",
            HeldStatus::Disapproved => "disapproved",
        }
    }

    fn parse(text: &str) -> Option<HeldStatus> {
        [HeldStatus::Pending, HeldStatus::Approved, HeldStatus::Disapproved]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A held message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldMessage {
    /// The message as sent (seq 0, `data.moderation.status` `pending`).
    pub message: Message,
    /// What the rules that hold it ask for (the moderation crate's shape, opaque here).
    pub checks: Value,
    pub status: HeldStatus,
    pub reason: Option<String>,
    pub engine_failed: bool,
    pub created_at: Millis,
    pub decided_at: Option<Millis>,
    pub decided_by: Option<String>,
    /// The seq it got when approved.
    pub seq: Option<i64>,
}

/// A decision on a held message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDecision {
    pub approve: bool,
    /// Who decided: `engine:<rule>`, or a moderator.
    pub by: String,
    pub reason: Option<String>,
    /// The engine failed and the rule's failure policy decided.
    pub engine_failed: bool,
}

/// What [`Store::decide_held`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// Committed to its conversation, as this message.
    Approved(Box<Message>),
    /// Never delivered. `refusal` is set when it was to be approved but the sender may no longer send there.
    Disapproved { refusal: Option<Refusal> },
}

const HELD_COLUMNS: &str =
    "id, message, checks, status, reason, engine_failed, created_at, decided_at, decided_by, seq";

fn held_from_row(row: &AnyRow) -> Result<HeldMessage, StoreError> {
    let message: Message =
        serde_json::from_value(rows::json(row, "message")?).map_err(|error| crate::error::corrupt("message", error))?;
    let status: String = get(row, "status")?;
    let engine_failed: i64 = get(row, "engine_failed")?;
    Ok(HeldMessage {
        message,
        checks: rows::json(row, "checks")?,
        status: HeldStatus::parse(&status)
            .ok_or_else(|| crate::error::corrupt("status", std::io::Error::other(status.clone())))?,
        reason: get(row, "reason")?,
        engine_failed: engine_failed != 0,
        created_at: get(row, "created_at")?,
        decided_at: get(row, "decided_at")?,
        decided_by: get(row, "decided_by")?,
        seq: get(row, "seq")?,
    })
}

/// The message with `data.moderation.status` set to `status`.
fn with_status(message: &Message, status: HeldStatus) -> NewMessage {
    let mut data = message.data.clone();
    if let Some(object) = data.as_object_mut() {
        object.insert("moderation".to_owned(), json!({ "status": status.as_str() }));
    }
    NewMessage {
        conversation_id: message.conversation_id.clone(),
        sender: message.sender.clone(),
        receiver: message.receiver.clone(),
        receiver_type: message.receiver_type,
        category: message.category,
        message_type: message.message_type.clone(),
        data,
        muid: message.muid.clone(),
        parent_id: message.parent_id.clone(),
        tags: message.tags.clone(),
    }
}

/// The `message.moderated` event's data.
fn moderated(message: &Message, status: HeldStatus, by: &str, reason: Option<&str>, engine_failed: bool) -> Value {
    json!({
        "id": message.id,
        "sender": message.sender,
        "receiver": message.receiver,
        "receiverType": message.receiver_type.as_str(),
        "status": status.as_str(),
        "by": by,
        "reason": reason,
        "engineFailed": engine_failed,
        "manual": !by.starts_with("engine:"),
        "message": message,
    })
}

impl Store {
    /// Holds `new_message` as pending (see the module): its row and its `message.pending` event in one
    /// transaction, after the conversation's lock and the send's rules. `true` when it was held now; a retry
    /// with the same `muid` returns the held message as it stands, with `false`.
    pub async fn hold_message(
        &self,
        new_message: &NewMessage,
        checks: &Value,
        now: Millis,
    ) -> Result<(HeldMessage, bool), StoreError> {
        for _ in 0..ATTEMPTS {
            let mut transaction = self.begin_write().await?;
            if let Some(muid) = &new_message.muid
                && let Some(held) = self.held_by_muid(&mut transaction, new_message, muid).await?
            {
                transaction.rollback().await?;
                return Ok((held, false));
            }
            let Some(last_seq) =
                lock_conversation(&mut transaction, self.backend, &new_message.conversation_id).await?
            else {
                transaction.rollback().await?;
                let guid = new_message.conversation_id.guid().map(|guid| guid.as_str().to_owned());
                self.create_conversation(&new_message.conversation_id, guid.as_deref()).await?;
                continue;
            };
            let message = new_message.to_message(new_id(), 0, now);
            match access::may_send_now(&mut transaction, self.backend, &message).await {
                Ok(None) => {}
                Ok(Some(refusal)) => {
                    transaction.rollback().await?;
                    return Err(StoreError::Refused(refusal));
                }
                Err(error) if is_retryable(&error) => continue,
                Err(error) => return Err(error.into()),
            }
            let message_json = serde_json::to_value(&message).map_err(unencodable)?;
            let inserted = sqlx::query(
                "INSERT INTO moderation_held (id, conversation_id, sender, muid, message, checks, status, \
                 engine_failed, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
            )
            .bind(message.id.as_str())
            .bind(message.conversation_id.key())
            .bind(message.sender.as_str())
            .bind(message.muid.as_deref())
            .bind(rows::json_text(&message_json))
            .bind(rows::json_text(checks))
            .bind(now)
            .execute(&mut *transaction)
            .await;
            match inserted {
                Ok(_) => {}
                Err(error) if is_unique_violation(&error) => {
                    // The same muid was held concurrently: the next round finds it.
                    transaction.rollback().await?;
                    continue;
                }
                Err(error) if is_retryable(&error) => continue,
                Err(error) => return Err(error.into()),
            }
            outbox::insert(
                &mut transaction,
                EventType::MessagePending,
                message.conversation_id.key(),
                last_seq,
                now,
                &message_json,
            )
            .await?;
            match self.commit_events(transaction).await {
                Ok(()) => {}
                Err(error) if is_retryable(&error) => continue,
                Err(error) => return Err(error.into()),
            }
            let held = HeldMessage {
                message,
                checks: checks.clone(),
                status: HeldStatus::Pending,
                reason: None,
                engine_failed: false,
                created_at: now,
                decided_at: None,
                decided_by: None,
                seq: None,
            };
            return Ok((held, true));
        }
        Err(StoreError::Conflict("held message"))
    }

    async fn held_by_muid(
        &self,
        connection: &mut sqlx::AnyConnection,
        new_message: &NewMessage,
        muid: &str,
    ) -> Result<Option<HeldMessage>, StoreError> {
        let sql = format!("SELECT {HELD_COLUMNS} FROM moderation_held WHERE sender = ? AND muid = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new_message.sender.as_str())
            .bind(muid)
            .fetch_optional(connection)
            .await?;
        row.as_ref().map(held_from_row).transpose()
    }

    /// The held message `id`, decided or not.
    pub async fn held_message(&self, id: &str) -> Result<Option<HeldMessage>, StoreError> {
        let sql = format!("SELECT {HELD_COLUMNS} FROM moderation_held WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.reads).await?;
        row.as_ref().map(held_from_row).transpose()
    }

    /// How many held messages wait for a decision.
    pub async fn pending_held(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM moderation_held WHERE status = 'pending'")
            .fetch_one(&self.reads)
            .await?)
    }

    /// Decides the held message `id` once (see the module). `None` when it is not pending (decided already,
    /// or unknown): nothing is written. An approval the conversation's rules now refuse (the sender blocked,
    /// kicked or banned meanwhile) becomes a disapproval saying so.
    pub async fn decide_held(
        &self,
        id: &str,
        decision: &HeldDecision,
        now: Millis,
    ) -> Result<Option<Decided>, StoreError> {
        let Some(held) = self.held_message(id).await? else { return Ok(None) };
        let mut refusal = None;
        let mut duplicate = false;
        for _ in 0..ATTEMPTS {
            let mut transaction = self.begin_write().await?;
            // The conversation's lock first, like every change to it; then the row, under that lock.
            let locked_seq =
                lock_conversation(&mut transaction, self.backend, &held.message.conversation_id).await?.unwrap_or(0);
            let sql = match self.backend {
                Backend::MySql => "SELECT status FROM moderation_held WHERE id = ? FOR UPDATE",
                Backend::Sqlite => "SELECT status FROM moderation_held WHERE id = ?",
            };
            let status: Option<String> = sqlx::query_scalar(sql).bind(id).fetch_optional(&mut *transaction).await?;
            if status.as_deref() != Some(HeldStatus::Pending.as_str()) {
                transaction.rollback().await?;
                return Ok(None);
            }
            let approve = decision.approve && refusal.is_none() && !duplicate;
            let (status, decided, seq, last_seq) = if approve {
                let new_message = with_status(&held.message, HeldStatus::Approved);
                match commit_to_conversation(&mut transaction, self.backend, &new_message, id.to_owned(), now).await? {
                    Committed::Sent(message) => {
                        let message = *message;
                        let seq = message.seq;
                        (HeldStatus::Approved, Decided::Approved(Box::new(message)), Some(seq), seq)
                    }
                    Committed::Refused(why) => {
                        // Undo the seq taken; decide again as a disapproval.
                        transaction.rollback().await?;
                        refusal = Some(why);
                        continue;
                    }
                    Committed::Retry(_) => continue,
                    Committed::Duplicate(_) => {
                        // Its muid names a message committed meanwhile (sent while no rule held it): that one
                        // stands, this one is not delivered twice.
                        transaction.rollback().await?;
                        duplicate = true;
                        continue;
                    }
                    Committed::NoConversation => {
                        transaction.rollback().await?;
                        return Err(StoreError::Conflict("message"));
                    }
                }
            } else {
                (HeldStatus::Disapproved, Decided::Disapproved { refusal }, None, locked_seq)
            };
            let reason = match (&refusal, &decision.reason) {
                (Some(why), _) => Some(format!("approved, but not delivered: {why}")),
                (None, _) if duplicate => Some("approved, but its muid names a message committed already".to_owned()),
                (None, reason) => reason.clone(),
            };
            let updated = sqlx::query(
                "UPDATE moderation_held SET status = ?, reason = ?, engine_failed = ?, decided_at = ?, \
                 decided_by = ?, seq = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(status.as_str())
            .bind(reason.as_deref())
            .bind(i64::from(decision.engine_failed))
            .bind(now)
            .bind(decision.by.as_str())
            .bind(seq)
            .bind(id)
            .execute(&mut *transaction)
            .await;
            match updated {
                Ok(_) => {}
                Err(error) if is_retryable(&error) => continue,
                Err(error) => return Err(error.into()),
            }
            let shown = match &decided {
                Decided::Approved(message) => message.as_ref().clone(),
                Decided::Disapproved { .. } => {
                    let mut message = held.message.clone();
                    message.data = with_status(&held.message, HeldStatus::Disapproved).data;
                    message
                }
            };
            let data = moderated(&shown, status, &decision.by, reason.as_deref(), decision.engine_failed);
            outbox::insert(
                &mut transaction,
                EventType::MessageModerated,
                held.message.conversation_id.key(),
                last_seq,
                now,
                &data,
            )
            .await?;
            match self.commit_events(transaction).await {
                Ok(()) => return Ok(Some(decided)),
                Err(error) if is_retryable(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StoreError::Conflict("held message"))
    }

    /// Commits `message` (never committed: a blocked one, seq 0) to its conversation because moderator `by`
    /// approved it: its id kept, the next seq and the time `now`, `data.moderation.status` `approved`, with its
    /// `message.sent` and a `message.moderated` event, in one transaction. Refused like a send would be now.
    pub async fn commit_approved(&self, message: &Message, by: &str, now: Millis) -> Result<Message, StoreError> {
        let new_message = with_status(message, HeldStatus::Approved);
        for _ in 0..ATTEMPTS {
            let mut transaction = self.begin_write().await?;
            let committed =
                commit_to_conversation(&mut transaction, self.backend, &new_message, message.id.clone(), now).await?;
            let sent = match committed {
                Committed::Sent(sent) => *sent,
                Committed::NoConversation => {
                    transaction.rollback().await?;
                    let guid = message.conversation_id.guid().map(|guid| guid.as_str().to_owned());
                    self.create_conversation(&message.conversation_id, guid.as_deref()).await?;
                    continue;
                }
                Committed::Refused(refusal) => {
                    transaction.rollback().await?;
                    return Err(StoreError::Refused(refusal));
                }
                Committed::Retry(_) => continue,
                Committed::Duplicate(_) => {
                    transaction.rollback().await?;
                    return Err(StoreError::Conflict("message"));
                }
            };
            let data = moderated(&sent, HeldStatus::Approved, by, None, false);
            outbox::insert(
                &mut transaction,
                EventType::MessageModerated,
                sent.conversation_id.key(),
                sent.seq,
                now,
                &data,
            )
            .await?;
            match self.commit_events(transaction).await {
                Ok(()) => return Ok(sent),
                Err(error) if is_retryable(&error) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(StoreError::Conflict("message"))
    }
}
