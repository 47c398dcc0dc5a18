//! Notifications (issue #16): push tokens, providers, preferences, admin defaults and timed mutes (when MongoDB
//! is not deployed), and always here: the pushes the role still owes a provider and the decision log.
//!
//! A push row is made once per (event, token) by the notifications worker, in the transaction that logs the
//! event's skipped recipients; its id is stable, so a redelivered event makes nothing new. A replica takes a due
//! push with a claim that expires ([`Store::claim_notification_push`]): a replica killed mid-fan-out only
//! delays its pushes until their claims run out; another replica then sends them (with the same collapse id).

use comet_model::{Millis, Uid};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, QueryBuilder};

use crate::error::is_unique_violation;
use crate::rows::{self, get};
use crate::{Store, StoreError};

/// A device's push token for one of a user's sessions.
#[derive(Clone, PartialEq, Eq)]
pub struct PushToken {
    pub id: String,
    pub uid: Uid,
    /// The session or device it belongs to; one token per (user, session).
    pub session: String,
    /// `ios`, `android`, `web`, `ios_voip`, …
    pub platform: String,
    pub provider_id: String,
    pub token: String,
    /// SHA-256 hex of `token`: a token registered by another user moves to it.
    pub token_hash: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl std::fmt::Debug for PushToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PushToken")
            .field("id", &self.id)
            .field("uid", &self.uid)
            .field("session", &self.session)
            .field("platform", &self.platform)
            .field("provider_id", &self.provider_id)
            .finish_non_exhaustive()
    }
}

/// What registering a token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRegistration {
    /// Saved (new, or the session's token replaced): the stored token.
    Saved(PushToken),
    /// The user has `max` tokens already; nothing written.
    TooMany,
}

/// A push provider's configuration: `body` is its JSON settings, which name secrets by reference only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub id: String,
    /// `fcm`, `apns` or `webhook`.
    pub kind: String,
    pub is_default: bool,
    pub body: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A push owed to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushJob {
    /// `<event id>_<token id>`: the same for every attempt and redelivery.
    pub id: String,
    pub event_id: String,
    pub uid: String,
    pub token_id: String,
    pub provider_id: String,
    /// Stable per message: an edit replaces, a duplicate collapses.
    pub collapse_id: String,
    /// The rendered push (JSON), the token included.
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    /// Until when the replica that made or took it owns it (0: nobody).
    pub claimed_until: Millis,
    pub created_at: Millis,
}

/// One decision of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: String,
    pub event_id: String,
    pub message_id: Option<String>,
    pub uid: Option<String>,
    pub conversation_key: Option<String>,
    pub provider_id: Option<String>,
    /// `sent`, `failed` or `skipped`.
    pub outcome: String,
    pub reason: String,
    /// The provider's HTTP status, when one answered.
    pub status: Option<i64>,
    pub collapse_id: Option<String>,
    pub at: Millis,
}

/// Which log entries to list: newest first, before `before` (exclusive) when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub uid: Option<String>,
    pub outcome: Option<String>,
    pub message_id: Option<String>,
    pub since: Option<Millis>,
    pub before: Option<Millis>,
    pub limit: u32,
}

const TOKEN_COLUMNS: &str = "id, uid, session, platform, provider_id, token, token_hash, created_at, updated_at";
const PUSH_COLUMNS: &str = "id, event_id, uid, token_id, provider_id, collapse_id, payload, attempts, next_attempt_at, claimed_until, created_at";
const LOG_COLUMNS: &str =
    "id, event_id, message_id, uid, conversation_key, provider_id, outcome, reason, status, collapse_id, at";

impl Store {
    /// Saves `token` as the token of its (user, session), replacing the session's earlier one and taking the
    /// token from any other user or session that had it, unless the user would then have more than `max`.
    pub async fn register_push_token(&self, token: &PushToken, max: u32) -> Result<TokenRegistration, StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query("DELETE FROM push_tokens WHERE token_hash = ? AND NOT (uid = ? AND session = ?)")
            .bind(token.token_hash.as_str())
            .bind(token.uid.as_str())
            .bind(token.session.as_str())
            .execute(&mut *transaction)
            .await?;
        let existing: Option<(String, i64)> =
            sqlx::query_as("SELECT id, created_at FROM push_tokens WHERE uid = ? AND session = ?")
                .bind(token.uid.as_str())
                .bind(token.session.as_str())
                .fetch_optional(&mut *transaction)
                .await?;
        let saved = match existing {
            Some((id, created_at)) => {
                sqlx::query(
                    "UPDATE push_tokens SET platform = ?, provider_id = ?, token = ?, token_hash = ?, updated_at = ? \
                     WHERE id = ?",
                )
                .bind(token.platform.as_str())
                .bind(token.provider_id.as_str())
                .bind(token.token.as_str())
                .bind(token.token_hash.as_str())
                .bind(token.updated_at)
                .bind(id.as_str())
                .execute(&mut *transaction)
                .await?;
                PushToken { id, created_at, ..token.clone() }
            }
            None => {
                // On MySQL two concurrent registrations may both see max - 1: the limit bounds runaway clients,
                // it is not an invariant.
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM push_tokens WHERE uid = ?")
                    .bind(token.uid.as_str())
                    .fetch_one(&mut *transaction)
                    .await?;
                if count >= i64::from(max) {
                    return Ok(TokenRegistration::TooMany);
                }
                let sql = format!("INSERT INTO push_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(token.id.as_str())
                    .bind(token.uid.as_str())
                    .bind(token.session.as_str())
                    .bind(token.platform.as_str())
                    .bind(token.provider_id.as_str())
                    .bind(token.token.as_str())
                    .bind(token.token_hash.as_str())
                    .bind(token.created_at)
                    .bind(token.updated_at)
                    .execute(&mut *transaction)
                    .await?;
                token.clone()
            }
        };
        transaction.commit().await?;
        Ok(TokenRegistration::Saved(saved))
    }

    /// The tokens of the users in `uids`, by user, then creation.
    pub async fn push_tokens_of(&self, uids: &[Uid]) -> Result<Vec<PushToken>, StoreError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Any>::new(format!("SELECT {TOKEN_COLUMNS} FROM push_tokens WHERE uid IN ("));
        push_uids(&mut query, uids);
        query.push(") ORDER BY uid, created_at, id");
        let rows = query.build().persistent(false).fetch_all(&self.reads).await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Removes one of `uid`'s tokens; false when it has none with this id.
    pub async fn delete_push_token(&self, uid: &Uid, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM push_tokens WHERE uid = ? AND id = ?")
            .bind(uid.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Registers a provider; `Conflict("provider")` when its id is taken. A default provider stops being the
    /// default of the others in the same transaction.
    pub async fn create_push_provider(&self, provider: &ProviderRecord) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        if provider.is_default {
            sqlx::query("UPDATE push_providers SET is_default = 0").execute(&mut *transaction).await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO push_providers (id, kind, is_default, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(provider.id.as_str())
        .bind(provider.kind.as_str())
        .bind(i64::from(provider.is_default))
        .bind(provider.body.as_str())
        .bind(provider.created_at)
        .bind(provider.updated_at)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => return Err(StoreError::Conflict("provider")),
            Err(error) => return Err(error.into()),
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Every provider, by id.
    pub async fn list_push_providers(&self) -> Result<Vec<ProviderRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT id, kind, is_default, body, created_at, updated_at FROM push_providers ORDER BY id")
                .fetch_all(&self.reads)
                .await?;
        rows.iter().map(provider_from_row).collect()
    }

    /// Writes a provider's kind, default flag and body; false when no provider has its id.
    pub async fn save_push_provider(&self, provider: &ProviderRecord) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        if provider.is_default {
            sqlx::query("UPDATE push_providers SET is_default = 0 WHERE id <> ?")
                .bind(provider.id.as_str())
                .execute(&mut *transaction)
                .await?;
        }
        let updated =
            sqlx::query("UPDATE push_providers SET kind = ?, is_default = ?, body = ?, updated_at = ? WHERE id = ?")
                .bind(provider.kind.as_str())
                .bind(i64::from(provider.is_default))
                .bind(provider.body.as_str())
                .bind(provider.updated_at)
                .bind(provider.id.as_str())
                .execute(&mut *transaction)
                .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// Removes a provider and the tokens registered with it; false when there was none.
    pub async fn delete_push_provider(&self, id: &str) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query("DELETE FROM push_tokens WHERE provider_id = ?").bind(id).execute(&mut *transaction).await?;
        let deleted =
            sqlx::query("DELETE FROM push_providers WHERE id = ?").bind(id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// The preference documents of the users in `uids` that have one.
    pub async fn notification_preferences_of(&self, uids: &[Uid]) -> Result<Vec<(Uid, String)>, StoreError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Any>::new("SELECT uid, body FROM notification_preferences WHERE uid IN (");
        push_uids(&mut query, uids);
        query.push(") ORDER BY uid");
        let rows = query.build().persistent(false).fetch_all(&self.reads).await?;
        rows.iter().map(|row| Ok((rows::uid(row, "uid")?, get(row, "body")?))).collect()
    }

    /// Replaces `uid`'s preference document.
    pub async fn save_notification_preferences(&self, uid: &Uid, body: &str, now: Millis) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query("DELETE FROM notification_preferences WHERE uid = ?")
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        sqlx::query("INSERT INTO notification_preferences (uid, body, updated_at) VALUES (?, ?, ?)")
            .bind(uid.as_str())
            .bind(body)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Removes `uid`'s preferences (the admin defaults apply again) and its mutes; false when it had none.
    pub async fn reset_notification_preferences(&self, uid: &Uid) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let preferences = sqlx::query("DELETE FROM notification_preferences WHERE uid = ?")
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        let mutes = sqlx::query("DELETE FROM notification_mutes WHERE uid = ?")
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(preferences.rows_affected() + mutes.rows_affected() > 0)
    }

    /// The admin defaults document, when an admin saved one.
    pub async fn notification_defaults(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT body FROM notification_defaults WHERE id = 'app'")
            .fetch_optional(&self.reads)
            .await?)
    }

    pub async fn save_notification_defaults(&self, body: &str, now: Millis) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query("DELETE FROM notification_defaults WHERE id = 'app'").execute(&mut *transaction).await?;
        sqlx::query("INSERT INTO notification_defaults (id, body, updated_at) VALUES ('app', ?, ?)")
            .bind(body)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Mutes conversation `key` for `uid` until `until` (ms), replacing an earlier mute of it.
    pub async fn mute_conversation(&self, uid: &Uid, key: &str, until: Millis) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        delete_mute(&mut transaction, uid, key).await?;
        sqlx::query("INSERT INTO notification_mutes (uid, conversation_key, muted_until) VALUES (?, ?, ?)")
            .bind(uid.as_str())
            .bind(key)
            .bind(until)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Ends `uid`'s mute of conversation `key`; false when there was none.
    pub async fn unmute_conversation(&self, uid: &Uid, key: &str) -> Result<bool, StoreError> {
        let mut connection = self.pool.acquire().await?;
        delete_mute(&mut connection, uid, key).await
    }

    /// The mutes of `uid` still running at `now`: (conversation key, until), by key.
    pub async fn conversation_mutes(&self, uid: &Uid, now: Millis) -> Result<Vec<(String, Millis)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT conversation_key, muted_until FROM notification_mutes WHERE uid = ? AND muted_until > ? \
             ORDER BY conversation_key",
        )
        .bind(uid.as_str())
        .bind(now)
        .fetch_all(&self.reads)
        .await?)
    }

    /// Which of `uids` have conversation `key` muted at `now`, and until when.
    pub async fn muted_among(&self, uids: &[Uid], key: &str, now: Millis) -> Result<Vec<(Uid, Millis)>, StoreError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query =
            QueryBuilder::<Any>::new("SELECT uid, muted_until FROM notification_mutes WHERE conversation_key = ");
        query.push_bind(key.to_owned()).push(" AND muted_until > ").push_bind(now).push(" AND uid IN (");
        push_uids(&mut query, uids);
        query.push(")");
        let rows = query.build().persistent(false).fetch_all(&self.reads).await?;
        rows.iter().map(|row| Ok((rows::uid(row, "uid")?, get(row, "muted_until")?))).collect()
    }

    /// Writes an event's pushes and log entries in one transaction, skipping those that exist already (a
    /// redelivered event): the ids of the pushes that were new.
    pub async fn enqueue_notifications(&self, pushes: &[PushJob], log: &[LogEntry]) -> Result<Vec<String>, StoreError> {
        if pushes.is_empty() && log.is_empty() {
            return Ok(Vec::new());
        }
        // One entry and nothing else: its one statement commits on its own, without BEGIN and COMMIT (the
        // common case, a direct message whose recipient is skipped).
        if let ([], [entry]) = (pushes, log) {
            let mut connection = self.pool.acquire().await?;
            insert_log(&mut connection, entry).await?;
            return Ok(Vec::new());
        }
        let mut transaction = self.begin_write().await?;
        let mut made = Vec::new();
        for push in pushes {
            let sql =
                format!("INSERT INTO notification_pushes ({PUSH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            let inserted = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(push.id.as_str())
                .bind(push.event_id.as_str())
                .bind(push.uid.as_str())
                .bind(push.token_id.as_str())
                .bind(push.provider_id.as_str())
                .bind(push.collapse_id.as_str())
                .bind(push.payload.as_str())
                .bind(push.attempts)
                .bind(push.next_attempt_at)
                .bind(push.claimed_until)
                .bind(push.created_at)
                .execute(&mut *transaction)
                .await;
            match inserted {
                Ok(_) => made.push(push.id.clone()),
                // A statement that fails does not end the transaction on MySQL or SQLite; only it is undone.
                Err(error) if is_unique_violation(&error) => {}
                Err(error) => return Err(error.into()),
            }
        }
        for entry in log {
            insert_log(&mut transaction, entry).await?;
        }
        transaction.commit().await?;
        Ok(made)
    }

    /// Up to `limit` pushes due at `now` and claimed by nobody, the most overdue first.
    pub async fn due_notification_pushes(&self, now: Millis, limit: u32) -> Result<Vec<PushJob>, StoreError> {
        let sql = format!(
            "SELECT {PUSH_COLUMNS} FROM notification_pushes WHERE next_attempt_at <= ? AND claimed_until <= ? \
             ORDER BY next_attempt_at, id LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(push_from_row).collect()
    }

    /// Takes push `id` until `until` unless someone holds it at `now`: whether this caller got it.
    pub async fn claim_notification_push(&self, id: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        let updated =
            sqlx::query("UPDATE notification_pushes SET claimed_until = ? WHERE id = ? AND claimed_until <= ?")
                .bind(until)
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Gives pushes back unclaimed (a queue that could not take them): the next poll finds them.
    pub async fn release_notification_pushes(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut query = QueryBuilder::<Any>::new("UPDATE notification_pushes SET claimed_until = 0 WHERE id IN (");
        let mut separated = query.separated(", ");
        for id in ids {
            separated.push_bind(id.clone());
        }
        query.push(")");
        query.build().persistent(false).execute(&self.pool).await?;
        Ok(())
    }

    /// Schedules push `id` again at `next_attempt_at` after `attempts` attempts, unclaimed.
    pub async fn reschedule_notification_push(
        &self,
        id: &str,
        attempts: i64,
        next_attempt_at: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE notification_pushes SET attempts = ?, next_attempt_at = ?, claimed_until = 0 WHERE id = ?")
            .bind(attempts)
            .bind(next_attempt_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends push `id` for good in one transaction: the push removed, its decision logged, and the token
    /// `forget_token` deleted (the provider said it is no longer valid) with any other push still owed to it.
    pub async fn finish_notification_push(
        &self,
        id: &str,
        entry: &LogEntry,
        forget_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query("DELETE FROM notification_pushes WHERE id = ?").bind(id).execute(&mut *transaction).await?;
        insert_log(&mut transaction, entry).await?;
        if let Some(token_id) = forget_token {
            sqlx::query("DELETE FROM push_tokens WHERE id = ?").bind(token_id).execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// How many pushes are owed (the admin port's gauge).
    pub async fn pending_notification_pushes(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM notification_pushes").fetch_one(&self.reads).await?)
    }

    /// The log entries that match `filter`, newest first.
    pub async fn notification_log(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StoreError> {
        let mut query = QueryBuilder::<Any>::new(format!("SELECT {LOG_COLUMNS} FROM notification_log WHERE 1 = 1"));
        if let Some(uid) = &filter.uid {
            query.push(" AND uid = ").push_bind(uid.clone());
        }
        if let Some(outcome) = &filter.outcome {
            query.push(" AND outcome = ").push_bind(outcome.clone());
        }
        if let Some(message_id) = &filter.message_id {
            query.push(" AND message_id = ").push_bind(message_id.clone());
        }
        if let Some(since) = filter.since {
            query.push(" AND at >= ").push_bind(since);
        }
        if let Some(before) = filter.before {
            query.push(" AND at < ").push_bind(before);
        }
        query.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(i64::from(filter.limit));
        let rows = query.build().persistent(false).fetch_all(&self.reads).await?;
        rows.iter().map(log_from_row).collect()
    }

    /// Deletes the log entries older than `before` (ms): how many.
    pub async fn purge_notification_log(&self, before: Millis) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM notification_log WHERE at < ?").bind(before).execute(&self.pool).await?;
        Ok(deleted.rows_affected())
    }

    /// Each user's unread count over all its conversations (direct and group), the badge of a push: users
    /// with nothing unread are left out.
    pub async fn unread_totals(&self, uids: &[Uid]) -> Result<Vec<(Uid, i64)>, StoreError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        // SUM is a DECIMAL on MySQL, which the Any driver cannot read: cast to the backend's integer.
        let integer = match self.backend {
            crate::Backend::MySql => "SIGNED",
            crate::Backend::Sqlite => "INTEGER",
        };
        let mut direct = QueryBuilder::<Any>::new(format!(
            "SELECT uc.uid AS uid, CAST(SUM(c.last_seq - COALESCE(r.read_seq, 0)) AS {integer}) AS unread \
             FROM user_conversations uc JOIN conversations c ON c.conversation_id = uc.conversation_id \
             LEFT JOIN conversation_receipts r ON r.conversation_id = uc.conversation_id AND r.uid = uc.uid \
             WHERE uc.uid IN ("
        ));
        push_uids(&mut direct, uids);
        direct.push(") GROUP BY uc.uid");
        let mut groups = QueryBuilder::<Any>::new(format!(
            "SELECT gm.uid AS uid, CAST(SUM(c.last_seq - COALESCE(r.read_seq, 0)) AS {integer}) AS unread \
             FROM group_members gm JOIN chat_groups g ON g.guid = gm.guid JOIN conversations c ON c.guid = gm.guid \
             LEFT JOIN conversation_receipts r ON r.conversation_id = c.conversation_id AND r.uid = gm.uid \
             WHERE g.deleted_at IS NULL AND gm.uid IN ("
        ));
        push_uids(&mut groups, uids);
        groups.push(") GROUP BY gm.uid");
        let mut totals: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for query in [&mut direct, &mut groups] {
            for row in query.build().persistent(false).fetch_all(&self.reads).await? {
                let uid: String = get(&row, "uid")?;
                let unread: Option<i64> = get(&row, "unread")?;
                *totals.entry(uid).or_default() += unread.unwrap_or(0).max(0);
            }
        }
        totals
            .into_iter()
            .filter(|(_, unread)| *unread > 0)
            .map(|(uid, unread)| Ok((Uid::parse(&uid).map_err(|error| crate::error::corrupt("uid", error))?, unread)))
            .collect()
    }
}

fn push_uids(query: &mut QueryBuilder<Any>, uids: &[Uid]) {
    let mut separated = query.separated(", ");
    for uid in uids {
        separated.push_bind(uid.as_str().to_owned());
    }
}

async fn delete_mute(connection: &mut AnyConnection, uid: &Uid, key: &str) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM notification_mutes WHERE uid = ? AND conversation_key = ?")
        .bind(uid.as_str())
        .bind(key)
        .execute(&mut *connection)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

async fn insert_log(connection: &mut AnyConnection, entry: &LogEntry) -> Result<(), StoreError> {
    let sql = format!("INSERT INTO notification_log ({LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    let inserted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(entry.id.as_str())
        .bind(entry.event_id.as_str())
        .bind(entry.message_id.as_deref())
        .bind(entry.uid.as_deref())
        .bind(entry.conversation_key.as_deref())
        .bind(entry.provider_id.as_deref())
        .bind(entry.outcome.as_str())
        .bind(entry.reason.as_str())
        .bind(entry.status)
        .bind(entry.collapse_id.as_deref())
        .bind(entry.at)
        .execute(&mut *connection)
        .await;
    match inserted {
        // Logged before (a redelivered event or a resent push): the first entry stays.
        Err(error) if is_unique_violation(&error) => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}

fn token_from_row(row: &AnyRow) -> Result<PushToken, StoreError> {
    Ok(PushToken {
        id: get(row, "id")?,
        uid: rows::uid(row, "uid")?,
        session: get(row, "session")?,
        platform: get(row, "platform")?,
        provider_id: get(row, "provider_id")?,
        token: get(row, "token")?,
        token_hash: get(row, "token_hash")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn provider_from_row(row: &AnyRow) -> Result<ProviderRecord, StoreError> {
    let is_default: i64 = get(row, "is_default")?;
    Ok(ProviderRecord {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        is_default: is_default != 0,
        body: get(row, "body")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn push_from_row(row: &AnyRow) -> Result<PushJob, StoreError> {
    Ok(PushJob {
        id: get(row, "id")?,
        event_id: get(row, "event_id")?,
        uid: get(row, "uid")?,
        token_id: get(row, "token_id")?,
        provider_id: get(row, "provider_id")?,
        collapse_id: get(row, "collapse_id")?,
        payload: get(row, "payload")?,
        attempts: get(row, "attempts")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        claimed_until: get(row, "claimed_until")?,
        created_at: get(row, "created_at")?,
    })
}

fn log_from_row(row: &AnyRow) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        id: get(row, "id")?,
        event_id: get(row, "event_id")?,
        message_id: get(row, "message_id")?,
        uid: get(row, "uid")?,
        conversation_key: get(row, "conversation_key")?,
        provider_id: get(row, "provider_id")?,
        outcome: get(row, "outcome")?,
        reason: get(row, "reason")?,
        status: get(row, "status")?,
        collapse_id: get(row, "collapse_id")?,
        at: get(row, "at")?,
    })
}
