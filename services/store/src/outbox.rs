//! The transactional outbox and the relay's lease.
//!
//! A change and the event describing it are written in one transaction, so the event exists exactly when the
//! change committed. The relay (one replica at a time, chosen by [`Store::acquire_relay_lease`]) reads
//! unpublished events in per-key order, publishes them, and marks them published. A relay that dies between
//! publishing and marking publishes those events again after a restart: delivery is at least once, and
//! consumers deduplicate on the event id.

use comet_model::{Event, EventType, Millis, new_id};
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, QueryBuilder};

use crate::error::{corrupt, is_unique_violation};
use crate::rows::{self, get};
use crate::{Store, StoreError};

/// The lease row that elects the publishing relay.
const RELAY_LEASE: &str = "relay";

/// Ids marked published or deleted per statement, well below SQLite's limit on bound parameters.
const IDS_PER_STATEMENT: usize = 500;

/// A row of the leases table: its holder and the time (ms since the epoch) it expires unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: Millis,
}

/// An event the relay moved out of the outbox after the bus refused it `attempts` times in a row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub event: Event,
    /// The bus's last refusal, as it said it.
    pub reason: String,
    pub attempts: u32,
    /// When it was moved (ms since the epoch).
    pub dead_at: Millis,
}

/// The columns an outbox row and a dead letter share.
const EVENT_COLUMNS: &str = "id, event_type, event_key, key_seq, event_time, data";

/// Writes one outbox row inside the caller's transaction and returns the event id.
///
/// `key` is the partition key (the conversation id for messages, the entity id otherwise). `key_seq` orders
/// events of one key: the message seq for `message.sent`; 0 for entity events, which are then ordered by time
/// and id.
pub(crate) async fn insert(
    connection: &mut AnyConnection,
    event_type: EventType,
    key: &str,
    key_seq: i64,
    time: Millis,
    data: &Value,
) -> Result<String, StoreError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO outbox (id, event_type, event_key, key_seq, event_time, data, published_at) \
         VALUES (?, ?, ?, ?, ?, ?, NULL)",
    )
    .bind(id.as_str())
    .bind(event_type.as_str())
    .bind(key)
    .bind(key_seq)
    .bind(time)
    .bind(rows::json_text(data))
    .execute(connection)
    .await?;
    Ok(id)
}

impl Store {
    /// Takes or renews the relay lease for `owner` until `now + ttl_ms`; true if `owner` holds it afterwards.
    ///
    /// The lease is free when nobody ever took it or its holder let it expire (`expires_at <= now`); its holder
    /// renews it by calling again before it expires. A replica that gets `false` must not publish.
    pub async fn acquire_relay_lease(&self, owner: &str, now: Millis, ttl_ms: i64) -> Result<bool, StoreError> {
        let expires_at = now.saturating_add(ttl_ms);
        let taken = sqlx::query(
            "UPDATE leases SET owner = ?, expires_at = ? WHERE name = ? AND (owner = ? OR expires_at <= ?)",
        )
        .bind(owner)
        .bind(expires_at)
        .bind(RELAY_LEASE)
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(true);
        }
        let created = sqlx::query("INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?)")
            .bind(RELAY_LEASE)
            .bind(owner)
            .bind(expires_at)
            .execute(&self.pool)
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => {
                // The row exists and the update did not match it: another owner holds an unexpired lease. The
                // holder is read back rather than assumed, in case a server counts only changed rows as
                // affected and so reported an unchanged renewal as 0 rows.
                let holder: Option<String> = sqlx::query_scalar("SELECT owner FROM leases WHERE name = ?")
                    .bind(RELAY_LEASE)
                    .fetch_optional(&self.reads)
                    .await?;
                Ok(holder.as_deref() == Some(owner))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Gives the relay lease up if `owner` holds it, so a standby takes it at its next try instead of waiting for
    /// the lease to expire; true if `owner` held it. A clean stop of the relay calls this last.
    pub async fn release_relay_lease(&self, owner: &str) -> Result<bool, StoreError> {
        let released = sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ?")
            .bind(RELAY_LEASE)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(released.rows_affected() == 1)
    }

    /// Who holds or last held the relay lease and when it expires (ms): `None` before any relay took it.
    pub async fn relay_lease(&self) -> Result<Option<Lease>, StoreError> {
        let found = sqlx::query("SELECT owner, expires_at FROM leases WHERE name = ?")
            .bind(RELAY_LEASE)
            .fetch_optional(&self.reads)
            .await?;
        found.map(|row| Ok(Lease { owner: get(&row, "owner")?, expires_at: get(&row, "expires_at")? })).transpose()
    }

    /// Up to `limit` unpublished events, ordered by key, then `key_seq`, then time and id.
    ///
    /// For every key in the batch, its events are a prefix of that key's unpublished events, in order. Message
    /// events of one conversation get their seq under the conversation's row lock, which is held until commit,
    /// so seq `n + 1` can only commit after seq `n` did: an event is never visible while an earlier one of the
    /// same key is still to come. Sorting by key keeps each key's events together, so cutting the batch at
    /// `limit` truncates at most the last key, and only at its end.
    ///
    /// The price is fairness: keys are served in key order, so when the backlog exceeds `limit`, keys that
    /// sort late wait until the ones before them are drained. The relay publishes whole batches quickly and the
    /// backlog is normally far below `limit`, so this delays rather than starves; watch
    /// [`Store::outbox_backlog`].
    pub async fn unpublished_events(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let found = sqlx::query(
            "SELECT id, event_type, event_key, event_time, data FROM outbox WHERE published_at IS NULL \
             ORDER BY event_key, key_seq, event_time, id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        found.iter().map(event_from_row).collect()
    }

    /// Marks these events published at `now`. Ids that are unknown or already published are ignored.
    pub async fn mark_published(&self, ids: &[String], now: Millis) -> Result<(), StoreError> {
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Any>::new("UPDATE outbox SET published_at = ");
            query.push_bind(now);
            query.push(" WHERE published_at IS NULL AND id IN (");
            push_ids(&mut query, chunk);
            query.build().persistent(false).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Deletes up to `limit` events published before `cutoff` (ms), oldest first, and returns how many it deleted.
    ///
    /// The ids come from the `outbox_unpublished` index (its first column is `published_at`), and the rows are
    /// deleted by primary key in statements of at most [`IDS_PER_STATEMENT`] ids, each its own short transaction: the
    /// retention job never scans the table or holds locks for long. Unpublished events are never deleted.
    pub async fn delete_published_before(&self, cutoff: Millis, limit: u32) -> Result<u64, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM outbox WHERE published_at IS NOT NULL AND published_at < ? ORDER BY published_at LIMIT ?",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        let mut deleted = 0;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Any>::new("DELETE FROM outbox WHERE published_at IS NOT NULL AND id IN (");
            push_ids(&mut query, chunk);
            deleted += query.build().persistent(false).execute(&self.pool).await?.rows_affected();
        }
        Ok(deleted)
    }

    /// How many rows the outbox holds, published or not: what the retention job keeps, exported as a metric.
    pub async fn outbox_rows(&self) -> Result<i64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(&self.reads).await?;
        Ok(count)
    }

    /// Moves the unpublished event `id` from the outbox to `outbox_dead_letters` with the bus's `reason`, in one
    /// transaction; false when the outbox has no such unpublished event (already moved, or published).
    pub async fn dead_letter(&self, id: &str, reason: &str, attempts: u32, now: Millis) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let moved = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO outbox_dead_letters ({EVENT_COLUMNS}, reason, attempts, dead_at) \
             SELECT {EVENT_COLUMNS}, ?, ?, ? FROM outbox WHERE id = ? AND published_at IS NULL"
        )))
        .bind(reason)
        .bind(i64::from(attempts))
        .bind(now)
        .bind(id)
        .execute(&mut *transaction)
        .await;
        match moved {
            Ok(moved) if moved.rows_affected() == 1 => {}
            Ok(_) => return Ok(false),
            // Another relay moved it first (a lease handed over mid-attempt).
            Err(error) if is_unique_violation(&error) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        sqlx::query("DELETE FROM outbox WHERE id = ?").bind(id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Up to `limit` dead letters, oldest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let found = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS}, reason, attempts, dead_at FROM outbox_dead_letters ORDER BY dead_at, id LIMIT ?"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        found
            .iter()
            .map(|row| {
                let attempts: i64 = get(row, "attempts")?;
                Ok(DeadLetter {
                    event: event_from_row(row)?,
                    reason: get(row, "reason")?,
                    attempts: u32::try_from(attempts).map_err(|error| corrupt("attempts", error))?,
                    dead_at: get(row, "dead_at")?,
                })
            })
            .collect()
    }

    /// How many dead letters wait for an operator, exported as a metric.
    pub async fn dead_letter_count(&self) -> Result<i64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_dead_letters").fetch_one(&self.reads).await?;
        Ok(count)
    }

    /// Moves the dead letter `id` back into the outbox, unpublished, in one transaction: the relay publishes it
    /// again (same id, key and data) at its next round. False when there is no such dead letter.
    pub async fn replay_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let moved = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO outbox ({EVENT_COLUMNS}, published_at) \
             SELECT {EVENT_COLUMNS}, NULL FROM outbox_dead_letters WHERE id = ?"
        )))
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM outbox_dead_letters WHERE id = ?").bind(id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// How many events wait to be published: the relay's lag, exported as a metric.
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetch_one(&self.reads).await?;
        Ok(count)
    }
}

/// Appends `ids` as bound parameters and closes the `IN (` list. The statement text depends on the number of
/// ids, so callers build it with `persistent(false)`: it is not worth a prepared-statement cache slot.
pub(crate) fn push_ids(query: &mut QueryBuilder<Any>, ids: &[String]) {
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(id.as_str());
    }
    query.push(")");
}

/// An event from an outbox row.
pub(crate) fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let type_name: String = get(row, "event_type")?;
    let event_type: EventType =
        serde_json::from_value(Value::String(type_name)).map_err(|error| corrupt("event_type", error))?;
    Ok(Event {
        id: get(row, "id")?,
        event_type,
        time: get(row, "event_time")?,
        key: get(row, "event_key")?,
        data: rows::json(row, "data")?,
    })
}
