//! Webhooks (issue #14): the endpoints an app registered, the deliveries owed to them and every attempt.
//!
//! A delivery row is made once per (event, webhook) by the webhooks worker, and its id is the Standard Webhooks
//! `webhook-id`: the same on every attempt, after a restart and on a replay. A replica takes a due delivery
//! with a claim that expires ([`Store::claim_webhook_delivery`]), so a replica killed mid-delivery only delays
//! it until the claim runs out; another replica then sends it again with the same id.

use comet_model::{EventType, Millis};
use serde_json::json;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, QueryBuilder};

use crate::error::{corrupt, is_unique_violation};
use crate::rows::{get, named};
use crate::{Store, StoreError, outbox};

/// A registered webhook, as stored. `password` and the secrets are the app's secrets: views must not show
/// them except the secret once at creation or rotation.
#[derive(Clone, PartialEq)]
pub struct WebhookRecord {
    pub id: String,
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub use_basic_auth: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Trigger names, sorted and without duplicates.
    pub triggers: Vec<String>,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, still signing beside `secret` until `previous_until` (ms).
    pub previous_secret: Option<String>,
    pub previous_until: Option<Millis>,
    /// The first failed attempt since the last success; `None` while deliveries succeed.
    pub failing_since: Option<Millis>,
    /// Why the webhooks worker disabled it, when it did.
    pub disabled_reason: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl WebhookRecord {
    /// A new webhook made at `now`: enabled, without Basic auth, failures or a rotated-out secret.
    pub fn new(id: String, name: String, url: String, triggers: Vec<String>, secret: String, now: Millis) -> Self {
        WebhookRecord {
            id,
            name,
            url,
            enabled: true,
            use_basic_auth: false,
            username: None,
            password: None,
            triggers,
            secret,
            previous_secret: None,
            previous_until: None,
            failing_since: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl std::fmt::Debug for WebhookRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WebhookRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("enabled", &self.enabled)
            .field("triggers", &self.triggers)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Owed: due at `next_attempt_at`.
    Pending,
    /// A 2xx came back.
    Delivered,
    /// Out of attempts, or its webhook is gone or disabled. A replay makes it pending again.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<DeliveryState> {
        match text {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// A delivery owed to a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The Standard Webhooks `webhook-id`.
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub trigger: String,
    /// The JSON body, fixed when the delivery was made: every attempt sends the same bytes.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub round_attempts: i64,
    pub next_attempt_at: Millis,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub delivery_id: String,
    /// 1 for the first attempt, counting across replays.
    pub attempt: i64,
    pub attempted_at: Millis,
    /// The HTTP status, when a response came.
    pub status: Option<i64>,
    pub latency_ms: i64,
    /// The first bytes of the response body (at most 2 KiB).
    pub response: Option<String>,
    /// Why no usable response came (refused address, timeout, connection error).
    pub error: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered,
    /// Failed; try again at this time (ms).
    RetryAt(Millis),
    /// Failed for good.
    Failed,
}

/// A page of a webhook's deliveries, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryFilter {
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Only deliveries made before this time (ms, exclusive): the previous page's last `createdAt`.
    pub before: Option<Millis>,
}

const WEBHOOK_COLUMNS: &str = "id, name, url, enabled, use_basic_auth, username, password, triggers, secret, \
     previous_secret, previous_until, failing_since, disabled_reason, created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, trigger_name, payload, state, attempts, round_attempts, \
     next_attempt_at, created_at, finished_at, last_status, last_error";

impl Store {
    /// Registers `webhook` unless `max` are registered already (false, nothing written). Fails with
    /// `Conflict("webhook")` when the id is taken.
    pub async fn create_webhook(&self, webhook: &WebhookRecord, max: u32) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        // On MySQL two concurrent creations may both see max - 1: the limit is a guard against runaway
        // configuration, not an invariant, so an occasional max + 1 is accepted.
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks").fetch_one(&mut *transaction).await?;
        if count >= i64::from(max) {
            return Ok(false);
        }
        let inserted = sqlx::query(
            "INSERT INTO webhooks (id, name, url, enabled, use_basic_auth, username, password, triggers, secret, \
             previous_secret, previous_until, failing_since, disabled_reason, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(webhook.id.as_str())
        .bind(webhook.name.as_str())
        .bind(webhook.url.as_str())
        .bind(i64::from(webhook.enabled))
        .bind(i64::from(webhook.use_basic_auth))
        .bind(webhook.username.as_deref())
        .bind(webhook.password.as_deref())
        .bind(triggers_text(&webhook.triggers))
        .bind(webhook.secret.as_str())
        .bind(webhook.previous_secret.as_deref())
        .bind(webhook.previous_until)
        .bind(webhook.failing_since)
        .bind(webhook.disabled_reason.as_deref())
        .bind(webhook.created_at)
        .bind(webhook.updated_at)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => return Err(StoreError::Conflict("webhook")),
            Err(error) => return Err(error.into()),
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// Every registered webhook, by id.
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reads).await?;
        found.iter().map(webhook_from_row).collect()
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Option<WebhookRecord>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.reads).await?;
        found.as_ref().map(webhook_from_row).transpose()
    }

    /// Writes the changeable fields of `webhook` (everything but the id, the secrets and the creation time);
    /// false when no webhook has its id. Re-enabling clears `failing_since` and `disabled_reason` as given.
    pub async fn save_webhook(&self, webhook: &WebhookRecord) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE webhooks SET name = ?, url = ?, enabled = ?, use_basic_auth = ?, username = ?, password = ?, \
             triggers = ?, failing_since = ?, disabled_reason = ?, updated_at = ? WHERE id = ?",
        )
        .bind(webhook.name.as_str())
        .bind(webhook.url.as_str())
        .bind(i64::from(webhook.enabled))
        .bind(i64::from(webhook.use_basic_auth))
        .bind(webhook.username.as_deref())
        .bind(webhook.password.as_deref())
        .bind(triggers_text(&webhook.triggers))
        .bind(webhook.failing_since)
        .bind(webhook.disabled_reason.as_deref())
        .bind(webhook.updated_at)
        .bind(webhook.id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Replaces the signing secret with `secret`; the old one keeps signing until `previous_until` (ms).
    /// False when no webhook has this id.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: Millis,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE webhooks SET previous_secret = secret, previous_until = ?, secret = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(previous_until)
        .bind(secret)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Removes a webhook with its deliveries and their attempts; false when there was none.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        delete_deliveries(&mut transaction, id).await?;
        let deleted = sqlx::query("DELETE FROM webhooks WHERE id = ?").bind(id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Removes the deliveries owed to webhook `id` and their attempts (its configuration lives elsewhere).
    pub async fn delete_webhook_deliveries(&self, id: &str) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        delete_deliveries(&mut transaction, id).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Disables webhook `id` because of `reason` and, in the same transaction, writes a `webhook.disabled`
    /// event (data: `id`, `name`, `url`, `reason`, `failingSince`); false when it was not enabled.
    pub async fn disable_webhook(&self, id: &str, reason: &str, now: Millis) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ? AND enabled = 1",
        )
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(&mut *transaction).await?;
        insert_disabled_event(&mut transaction, &webhook_from_row(&row)?, reason, now).await?;
        self.commit_events(transaction).await?;
        Ok(true)
    }

    /// Writes the `webhook.disabled` event of a webhook whose configuration lives outside this store and was
    /// just disabled there.
    pub async fn emit_webhook_disabled(
        &self,
        webhook: &WebhookRecord,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        insert_disabled_event(&mut transaction, webhook, reason, now).await?;
        self.commit_events(transaction).await?;
        Ok(())
    }

    /// Makes the delivery `delivery.id` unless it exists (a redelivered event): true when it was made.
    pub async fn enqueue_webhook_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        Ok(self.enqueue_webhook_deliveries(std::slice::from_ref(delivery)).await? == 1)
    }

    /// Writes `deliveries` (the deliveries of one event) in one transaction, skipping those that exist
    /// already: how many were new.
    pub async fn enqueue_webhook_deliveries(&self, deliveries: &[Delivery]) -> Result<usize, StoreError> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let mut transaction = self.begin_write().await?;
        let mut made = 0;
        for delivery in deliveries {
            let inserted = sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_id, trigger_name, payload, state, attempts, \
                 round_attempts, next_attempt_at, claimed_until, created_at, finished_at, last_status, last_error) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, NULL, NULL)",
            )
            .bind(delivery.id.as_str())
            .bind(delivery.webhook_id.as_str())
            .bind(delivery.event_id.as_str())
            .bind(delivery.trigger.as_str())
            .bind(delivery.payload.as_str())
            .bind(delivery.state.as_str())
            .bind(delivery.attempts)
            .bind(delivery.round_attempts)
            .bind(delivery.next_attempt_at)
            .bind(delivery.created_at)
            .execute(&mut *transaction)
            .await;
            match inserted {
                Ok(_) => made += 1,
                // Made before (a redelivered event): kept as it is. A failed statement does not end the
                // transaction on MySQL or SQLite; only the statement is undone.
                Err(error) if is_unique_violation(&error) => {}
                Err(error) => return Err(error.into()),
            }
        }
        transaction.commit().await?;
        Ok(made)
    }

    /// Up to `limit` deliveries due at `now` and claimed by nobody, the most overdue first, leaving out the
    /// webhooks in `skip` (those already at their concurrency limit, so they never hide others' deliveries):
    /// (id, webhook id).
    pub async fn due_webhook_deliveries(
        &self,
        now: Millis,
        limit: u32,
        skip: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut query = QueryBuilder::<Any>::new(
            "SELECT id, webhook_id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ",
        );
        query.push_bind(now);
        query.push(" AND claimed_until <= ");
        query.push_bind(now);
        if !skip.is_empty() {
            query.push(" AND webhook_id NOT IN (");
            outbox::push_ids(&mut query, skip);
        }
        query.push(" ORDER BY next_attempt_at, id LIMIT ");
        query.push_bind(i64::from(limit));
        let found = query.build().persistent(false).fetch_all(&self.reads).await?;
        found.iter().map(|row| Ok((get(row, "id")?, get(row, "webhook_id")?))).collect()
    }

    /// When the next pending delivery is due (ms), if any: how long the dispatcher may sleep.
    pub async fn next_webhook_delivery_at(&self) -> Result<Option<Millis>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN claimed_until > next_attempt_at THEN claimed_until ELSE next_attempt_at END) \
             FROM webhook_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.reads)
        .await?;
        Ok(next)
    }

    /// Claims the pending delivery `id` until `until` (ms) if nobody holds it: the delivery, or `None` when
    /// another replica got it first or it is no longer pending.
    pub async fn claim_webhook_delivery(
        &self,
        id: &str,
        now: Millis,
        until: Millis,
    ) -> Result<Option<Delivery>, StoreError> {
        let claimed = sqlx::query(
            "UPDATE webhook_deliveries SET claimed_until = ? WHERE id = ? AND state = 'pending' AND claimed_until <= ?",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.reads).await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// Records `attempt` of its delivery and what it leads to, in one transaction. The webhook's own health
    /// (`failing_since`) is kept by its configuration store ([`Store::note_webhook_attempt`] here).
    pub async fn record_webhook_attempt(
        &self,
        attempt: &DeliveryAttempt,
        result: AttemptResult,
    ) -> Result<(), StoreError> {
        self.record_webhook_attempts(&[(attempt.clone(), result)]).await
    }

    /// Records several attempts (of different deliveries) and what each leads to, in one transaction: all or
    /// none. The dispatcher batches the attempts that end together, so a busy replica commits once per batch.
    pub async fn record_webhook_attempts(
        &self,
        attempts: &[(DeliveryAttempt, AttemptResult)],
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let mut transaction = self.begin_write().await?;
        for (attempt, result) in attempts {
            record_attempt(&mut transaction, attempt, *result).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Keeps webhook `id`'s `failing_since` after an attempt at `at`: cleared by a delivery, set by the first
    /// failure after one. Returns it afterwards (`None` also when the webhook is gone).
    pub async fn note_webhook_attempt(
        &self,
        id: &str,
        delivered: bool,
        at: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let mut transaction = self.begin_write().await?;
        let failing = if delivered {
            sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = ?")
        } else {
            sqlx::query("UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ?").bind(at)
        };
        failing.bind(id).execute(&mut *transaction).await?;
        let failing_since: Option<Option<i64>> = sqlx::query_scalar("SELECT failing_since FROM webhooks WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(failing_since.flatten())
    }

    /// Ends the pending delivery `id` without an attempt (its webhook is gone or disabled), giving `reason`.
    pub async fn fail_webhook_delivery(&self, id: &str, reason: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', claimed_until = 0, finished_at = ?, last_error = ? \
             WHERE id = ? AND state = 'pending'",
        )
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives a claim back without an attempt (a shutdown before the request went out).
    pub async fn release_webhook_delivery(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhook_deliveries SET claimed_until = 0 WHERE id = ? AND state = 'pending'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Webhook `webhook_id`'s deliveries made in the filter's window, newest first, at most `limit`.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        filter: DeliveryFilter,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ? AND created_at >= ? \
             AND created_at <= ? AND created_at < ? ORDER BY created_at DESC, id DESC LIMIT ?"
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(webhook_id)
            .bind(filter.since.unwrap_or(0))
            .bind(filter.until.unwrap_or(i64::MAX))
            .bind(filter.before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        found.iter().map(delivery_from_row).collect()
    }

    /// One delivery of `webhook_id` with its attempts in order.
    pub async fn webhook_delivery(
        &self,
        webhook_id: &str,
        id: &str,
    ) -> Result<Option<(Delivery, Vec<DeliveryAttempt>)>, StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ? AND webhook_id = ?");
        let Some(row) =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(webhook_id).fetch_optional(&self.reads).await?
        else {
            return Ok(None);
        };
        let delivery = delivery_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT delivery_id, attempt, attempted_at, status, latency_ms, response, error FROM webhook_attempts \
             WHERE delivery_id = ? ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.reads)
        .await?;
        let attempts = attempts
            .iter()
            .map(|row| {
                Ok(DeliveryAttempt {
                    delivery_id: get(row, "delivery_id")?,
                    attempt: get(row, "attempt")?,
                    attempted_at: get(row, "attempted_at")?,
                    status: get(row, "status")?,
                    latency_ms: get(row, "latency_ms")?,
                    response: get(row, "response")?,
                    error: get(row, "error")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((delivery, attempts)))
    }

    /// Makes deliveries of `webhook_id` due again at `now` with a fresh retry schedule, keeping their id (the
    /// `webhook-id`): the one named `only`, or every one made between `since` and `until` (ms). Returns how
    /// many.
    pub async fn replay_webhook_deliveries(
        &self,
        webhook_id: &str,
        only: Option<&str>,
        since: Millis,
        until: Millis,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let replay = "UPDATE webhook_deliveries SET state = 'pending', round_attempts = 0, next_attempt_at = ?, \
             claimed_until = 0, finished_at = NULL WHERE webhook_id = ?";
        let replayed = match only {
            Some(id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{replay} AND id = ?")))
                    .bind(now)
                    .bind(webhook_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{replay} AND created_at >= ? AND created_at <= ?")))
                    .bind(now)
                    .bind(webhook_id)
                    .bind(since)
                    .bind(until)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(replayed.rows_affected())
    }

    /// Deliveries not yet delivered or failed: the webhooks worker's backlog, exported as a metric.
    pub async fn pending_webhook_deliveries(&self) -> Result<i64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")
            .fetch_one(&self.reads)
            .await?;
        Ok(count)
    }
}

fn triggers_text(triggers: &[String]) -> String {
    serde_json::Value::from(triggers.to_vec()).to_string()
}

fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    let value: i64 = get(row, column)?;
    Ok(value != 0)
}

fn webhook_from_row(row: &AnyRow) -> Result<WebhookRecord, StoreError> {
    let triggers_text: String = get(row, "triggers")?;
    let triggers: Vec<String> = serde_json::from_str(&triggers_text).map_err(|error| corrupt("triggers", error))?;
    Ok(WebhookRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        url: get(row, "url")?,
        enabled: flag(row, "enabled")?,
        use_basic_auth: flag(row, "use_basic_auth")?,
        username: get(row, "username")?,
        password: get(row, "password")?,
        triggers,
        secret: get(row, "secret")?,
        previous_secret: get(row, "previous_secret")?,
        previous_until: get(row, "previous_until")?,
        failing_since: get(row, "failing_since")?,
        disabled_reason: get(row, "disabled_reason")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

async fn delete_deliveries(transaction: &mut sqlx::Transaction<'_, Any>, id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ?)",
    )
    .bind(id)
    .execute(&mut **transaction)
    .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?").bind(id).execute(&mut **transaction).await?;
    Ok(())
}

/// The `webhook.disabled` event (data: `id`, `name`, `url`, `reason`, `failingSince`).
async fn insert_disabled_event(
    transaction: &mut sqlx::Transaction<'_, Any>,
    webhook: &WebhookRecord,
    reason: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let data = json!({
        "id": webhook.id,
        "name": webhook.name,
        "url": webhook.url,
        "reason": reason,
        "failingSince": webhook.failing_since,
    });
    outbox::insert(transaction, EventType::WebhookDisabled, &webhook.id, 0, now, &data).await?;
    Ok(())
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: get(row, "id")?,
        webhook_id: get(row, "webhook_id")?,
        event_id: get(row, "event_id")?,
        trigger: get(row, "trigger_name")?,
        payload: get(row, "payload")?,
        state: named(row, "state", DeliveryState::parse)?,
        attempts: get(row, "attempts")?,
        round_attempts: get(row, "round_attempts")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        created_at: get(row, "created_at")?,
        finished_at: get(row, "finished_at")?,
        last_status: get(row, "last_status")?,
        last_error: get(row, "last_error")?,
    })
}

/// One attempt's row and its delivery's next state, inside the caller's transaction.
async fn record_attempt(
    connection: &mut AnyConnection,
    attempt: &DeliveryAttempt,
    result: AttemptResult,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status, latency_ms, response, error) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(attempt.delivery_id.as_str())
    .bind(attempt.attempt)
    .bind(attempt.attempted_at)
    .bind(attempt.status)
    .bind(attempt.latency_ms)
    .bind(attempt.response.as_deref())
    .bind(attempt.error.as_deref())
    .execute(&mut *connection)
    .await?;
    let (state, next_attempt_at, finished_at) = match result {
        AttemptResult::Delivered => (DeliveryState::Delivered, attempt.attempted_at, Some(attempt.attempted_at)),
        AttemptResult::RetryAt(at) => (DeliveryState::Pending, at, None),
        AttemptResult::Failed => (DeliveryState::Failed, attempt.attempted_at, Some(attempt.attempted_at)),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET state = ?, attempts = ?, round_attempts = round_attempts + 1, \
             next_attempt_at = ?, claimed_until = 0, finished_at = ?, last_status = ?, last_error = ? WHERE id = ?",
    )
    .bind(state.as_str())
    .bind(attempt.attempt)
    .bind(next_attempt_at)
    .bind(finished_at)
    .bind(attempt.status)
    .bind(attempt.error.as_deref())
    .bind(attempt.delivery_id.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(())
}
