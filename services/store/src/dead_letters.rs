//! Events a worker gave up on, kept whole for inspection and replay.

use comet_model::{Event, EventType, Millis};
use serde_json::json;

use crate::outbox::{self, event_from_row};
use crate::rows::{self, get};
use crate::{Backend, Store, StoreError};

/// One event a worker gave up on.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerDeadLetter {
    pub worker: String,
    pub event: Event,
    pub reason: String,
    pub attempts: i64,
    pub failed_at: Millis,
}

impl Store {
    /// Records that `worker` gave up on `event` after `attempts`; a second time for the same event replaces the
    /// reason, the attempts and the time.
    pub async fn dead_letter_event(
        &self,
        worker: &str,
        event: &Event,
        reason: &str,
        attempts: u32,
        now: Millis,
    ) -> Result<(), StoreError> {
        let upsert = match self.backend {
            Backend::MySql => {
                "INSERT INTO worker_dead_letters (worker, event_id, event_type, event_key, event_time, data, reason, \
                 attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
                 reason = VALUES(reason), attempts = VALUES(attempts), failed_at = VALUES(failed_at)"
            }
            Backend::Sqlite => {
                "INSERT INTO worker_dead_letters (worker, event_id, event_type, event_key, event_time, data, reason, \
                 attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker, event_id) DO UPDATE \
                 SET reason = excluded.reason, attempts = excluded.attempts, failed_at = excluded.failed_at"
            }
        };
        sqlx::query(upsert)
            .bind(worker)
            .bind(event.id.as_str())
            .bind(event.event_type.as_str())
            .bind(event.key.as_str())
            .bind(event.time)
            .bind(rows::json_text(&event.data))
            .bind(reason)
            .bind(i64::from(attempts))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `worker`'s dead letters, the most recent failure first, at most `limit`.
    pub async fn worker_dead_letters(&self, worker: &str, limit: u32) -> Result<Vec<WorkerDeadLetter>, StoreError> {
        let found = sqlx::query(
            "SELECT worker, event_id AS id, event_type, event_key, event_time, data, reason, attempts, failed_at \
             FROM worker_dead_letters WHERE worker = ? ORDER BY failed_at DESC, event_id LIMIT ?",
        )
        .bind(worker)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        found
            .iter()
            .map(|row| {
                Ok(WorkerDeadLetter {
                    worker: get(row, "worker")?,
                    event: event_from_row(row)?,
                    reason: get(row, "reason")?,
                    attempts: get(row, "attempts")?,
                    failed_at: get(row, "failed_at")?,
                })
            })
            .collect()
    }

    /// Hands `worker`'s dead letter `event_id` back to that worker, in one transaction: the row is deleted and a
    /// `worker.replay` event carrying the event whole is written to the outbox, so the relay publishes it and
    /// only `worker` handles it again (every other consumer skips it). False when there is no such dead letter.
    pub async fn replay_worker_dead_letter(
        &self,
        worker: &str,
        event_id: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let found = sqlx::query(
            "SELECT event_id AS id, event_type, event_key, event_time, data FROM worker_dead_letters \
             WHERE worker = ? AND event_id = ?",
        )
        .bind(worker)
        .bind(event_id)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = found else { return Ok(false) };
        let event = event_from_row(&row)?;
        sqlx::query("DELETE FROM worker_dead_letters WHERE worker = ? AND event_id = ?")
            .bind(worker)
            .bind(event_id)
            .execute(&mut *transaction)
            .await?;
        let data = json!({ "worker": worker, "event": event });
        outbox::insert(&mut transaction, EventType::WorkerReplay, &event.key, 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(true)
    }
}
