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
use sqlx::{Any, QueryBuilder};

use crate::error::{corrupt, is_unique_violation};
use crate::rows::{self, get};
use crate::{Store, StoreError};

/// The lease row that elects the publishing relay.
const RELAY_LEASE: &str = "relay";

/// Ids marked published per statement, well below SQLite's limit on bound parameters.
const MARK_CHUNK: usize = 500;

/// A row of the leases table: its holder and the time (ms since the epoch) it expires unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: Millis,
}

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
                    .fetch_optional(&self.pool)
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
            .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(event_from_row).collect()
    }

    /// Marks these events published at `now`. Ids that are unknown or already published are ignored.
    pub async fn mark_published(&self, ids: &[String], now: Millis) -> Result<(), StoreError> {
        for chunk in ids.chunks(MARK_CHUNK) {
            let mut query = QueryBuilder::<Any>::new("UPDATE outbox SET published_at = ");
            query.push_bind(now);
            query.push(" WHERE published_at IS NULL AND id IN (");
            let mut separated = query.separated(", ");
            for id in chunk {
                separated.push_bind(id.as_str());
            }
            query.push(")");
            // The statement text depends on the chunk length, so it is not worth a prepared-statement cache slot.
            query.build().persistent(false).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// How many events wait to be published: the relay's lag, exported as a metric.
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetch_one(&self.pool).await?;
        Ok(count)
    }
}

/// An event from an outbox row.
fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
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
