//! Users and their auth tokens.

use comet_model::{EventType, Millis, NewUser, Uid, User, UserUpdate, new_id};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{is_unique_violation, unencodable};
use crate::rows::{self, get};
use crate::{Store, StoreError, outbox};

/// An auth token as it may be shown: its id and owner, never the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthToken {
    /// Names the token for listing and revoking.
    pub id: String,
    pub uid: Uid,
    pub created_at: Millis,
}

/// The columns every user query selects, in the order [`user_from_row`] reads them.
macro_rules! user_columns {
    () => {
        "uid, name, avatar, link, role, metadata, created_at, updated_at, deleted_at"
    };
}

impl Store {
    /// Creates a user, and in the same transaction the `user.created` event (its data is the user as JSON).
    ///
    /// Fails with `Conflict("user")` when the uid is taken, by a live or a deleted user.
    pub async fn create_user(&self, user: &NewUser, now: Millis) -> Result<User, StoreError> {
        let created = User {
            uid: user.uid.clone(),
            name: user.name.clone(),
            avatar: user.avatar.clone(),
            link: user.link.clone(),
            role: user.role.clone(),
            metadata: user.metadata.clone(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let event_data = serde_json::to_value(&created).map_err(unencodable)?;
        let mut transaction = self.begin_write().await?;
        let inserted =
            sqlx::query(concat!("INSERT INTO users (", user_columns!(), ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"))
                .bind(created.uid.as_str())
                .bind(created.name.as_str())
                .bind(created.avatar.as_deref())
                .bind(created.link.as_deref())
                .bind(created.role.as_deref())
                .bind(rows::optional_json_text(created.metadata.as_ref()))
                .bind(created.created_at)
                .bind(created.updated_at)
                .bind(created.deleted_at)
                .execute(&mut *transaction)
                .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                transaction.rollback().await?;
                return Err(StoreError::Conflict("user"));
            }
            Err(error) => return Err(error.into()),
        }
        outbox::insert(&mut transaction, EventType::UserCreated, created.uid.as_str(), 0, now, &event_data).await?;
        self.commit_events(transaction).await?;
        Ok(created)
    }

    /// Records that `uid` came online (`online`) or went offline everywhere, as the gateway saw it: writes
    /// `user.connection_status_changed` (data `{"uid", "status": "online" | "offline", "at"}`), keyed by uid so
    /// one user's changes stay in order. Nothing else is stored; who is online lives in the gateway's presence.
    pub async fn record_connection_status(&self, uid: &Uid, online: bool, now: Millis) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        let status = if online { "online" } else { "offline" };
        let data = serde_json::json!({ "uid": uid, "status": status, "at": now });
        outbox::insert(&mut transaction, EventType::UserConnectionStatusChanged, uid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(())
    }

    /// The user with this uid, deleted or not (a deleted user has `deleted_at` set).
    pub async fn get_user(&self, uid: &Uid) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE uid = ?"))
            .bind(uid.as_str())
            .fetch_optional(&self.reads)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Up to `limit` users that are not deleted, ordered by uid, starting after the uid `after`.
    ///
    /// `search` keeps the users whose uid or name contains it, ignoring case (on SQLite, case is ignored for
    /// ASCII letters only). `%` and `_` in `search` match themselves.
    pub async fn list_users(
        &self,
        search: Option<&str>,
        after: Option<&Uid>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        // Every uid is longer than the empty string, so "" means "from the start".
        let after = after.map_or("", Uid::as_str);
        let found = match search {
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE deleted_at IS NULL AND uid > ? ORDER BY uid LIMIT ?"
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.reads)
                .await?
            }
            Some(search) => {
                let pattern = contains_pattern(search);
                sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE deleted_at IS NULL AND uid > ?",
                    " AND (LOWER(uid) LIKE ? ESCAPE '!' OR LOWER(name) LIKE ? ESCAPE '!')",
                    " ORDER BY uid LIMIT ?"
                ))
                .bind(after)
                .bind(pattern.as_str())
                .bind(pattern.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.reads)
                .await?
            }
        };
        found.iter().map(user_from_row).collect()
    }

    /// Records an auth token for `uid` under a new id. Only the token's hash is given and stored, never the token.
    pub async fn create_auth_token(&self, uid: &Uid, token_hash: &str, now: Millis) -> Result<AuthToken, StoreError> {
        let token = AuthToken { id: new_id(), uid: uid.clone(), created_at: now };
        let inserted = sqlx::query("INSERT INTO auth_tokens (token_hash, id, uid, created_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(token.id.as_str())
            .bind(uid.as_str())
            .bind(now)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(token),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict("auth token")),
            Err(error) => Err(error.into()),
        }
    }

    /// The auth tokens of `uid`, oldest first.
    pub async fn list_auth_tokens(&self, uid: &Uid) -> Result<Vec<AuthToken>, StoreError> {
        let found = sqlx::query("SELECT id, uid, created_at FROM auth_tokens WHERE uid = ? ORDER BY created_at, id")
            .bind(uid.as_str())
            .fetch_all(&self.reads)
            .await?;
        found
            .iter()
            .map(|row| {
                Ok(AuthToken { id: get(row, "id")?, uid: rows::uid(row, "uid")?, created_at: get(row, "created_at")? })
            })
            .collect()
    }

    /// Revokes the auth token `id` of `uid`: it no longer signs in, and `user.auth_token_revoked` (data: `uid`,
    /// `id`) commits with the deletion so gateways close the sockets opened with it. Fails with
    /// `NotFound("auth token")` when `uid` has no token with that id.
    pub async fn revoke_auth_token(&self, uid: &Uid, id: &str, now: Millis) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM auth_tokens WHERE uid = ? AND id = ?")
            .bind(uid.as_str())
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        if deleted.rows_affected() == 0 {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("auth token"));
        }
        let data = serde_json::json!({ "uid": uid, "id": id });
        outbox::insert(&mut transaction, EventType::UserAuthTokenRevoked, uid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(())
    }

    /// The user signed in by the token with this hash, and the token's id; `None` when no live user has it.
    pub async fn session_for_token(&self, token_hash: &str) -> Result<Option<(Uid, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT auth_tokens.uid AS uid, auth_tokens.id AS id FROM auth_tokens \
             JOIN users ON users.uid = auth_tokens.uid WHERE auth_tokens.token_hash = ? AND users.deleted_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.reads)
        .await?;
        row.map(|row| Ok((rows::uid(&row, "uid")?, get(&row, "id")?))).transpose()
    }

    /// Applies `update` to a user that is not deleted, and in the same transaction writes `user.updated` (its
    /// data is the updated user). Fails with `NotFound("user")` when there is no such user or it is deleted.
    pub async fn update_user(&self, uid: &Uid, update: &UserUpdate, now: Millis) -> Result<User, StoreError> {
        let mut transaction = self.begin_write().await?;
        // Locks the row before reading it, so concurrent updates of different fields do not undo each other.
        let locked = sqlx::query("UPDATE users SET updated_at = ? WHERE uid = ? AND deleted_at IS NULL")
            .bind(now)
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        if locked.rows_affected() == 0 {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("user"));
        }
        let current = user_in(&mut transaction, uid).await?.ok_or(StoreError::NotFound("user"))?;
        let updated = User { updated_at: now, ..update.apply(&current) };
        sqlx::query("UPDATE users SET name = ?, avatar = ?, link = ?, role = ?, metadata = ? WHERE uid = ?")
            .bind(updated.name.as_str())
            .bind(updated.avatar.as_deref())
            .bind(updated.link.as_deref())
            .bind(updated.role.as_deref())
            .bind(rows::optional_json_text(updated.metadata.as_ref()))
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        let event_data = serde_json::to_value(&updated).map_err(unencodable)?;
        outbox::insert(&mut transaction, EventType::UserUpdated, uid.as_str(), 0, now, &event_data).await?;
        self.commit_events(transaction).await?;
        Ok(updated)
    }

    /// Soft-deletes a user (sets `deleted_at`), and in the same transaction writes `user.deleted` (its data is
    /// the deleted user). The user is no longer listed, its tokens stop signing in, and it can neither send nor
    /// be messaged; [`Store::restore_user`] undoes this. Fails with `NotFound("user")` when there is no such
    /// user or it is already deleted.
    pub async fn delete_user(&self, uid: &Uid, now: Millis) -> Result<User, StoreError> {
        self.set_deleted(uid, Some(now), now).await
    }

    /// Restores a deleted user, and in the same transaction writes `user.restored` (its data is the restored
    /// user). Fails with `NotFound("user")` when there is no such user or it is not deleted.
    pub async fn restore_user(&self, uid: &Uid, now: Millis) -> Result<User, StoreError> {
        self.set_deleted(uid, None, now).await
    }

    /// Deletes (`deleted_at` is `Some`) or restores (`None`) a user that is in the other state, with its event.
    async fn set_deleted(&self, uid: &Uid, deleted_at: Option<Millis>, now: Millis) -> Result<User, StoreError> {
        let (statement, event_type) = match deleted_at {
            Some(_) => (
                "UPDATE users SET deleted_at = ?, updated_at = ? WHERE uid = ? AND deleted_at IS NULL",
                EventType::UserDeleted,
            ),
            None => (
                "UPDATE users SET deleted_at = ?, updated_at = ? WHERE uid = ? AND deleted_at IS NOT NULL",
                EventType::UserRestored,
            ),
        };
        let mut transaction = self.begin_write().await?;
        let changed =
            sqlx::query(statement).bind(deleted_at).bind(now).bind(uid.as_str()).execute(&mut *transaction).await?;
        if changed.rows_affected() == 0 {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("user"));
        }
        let user = user_in(&mut transaction, uid).await?.ok_or(StoreError::NotFound("user"))?;
        let event_data = serde_json::to_value(&user).map_err(unencodable)?;
        outbox::insert(&mut transaction, event_type, uid.as_str(), 0, now, &event_data).await?;
        self.commit_events(transaction).await?;
        Ok(user)
    }

    /// The user an auth token (given by its hash) signs in, if the token exists and its user is not deleted.
    pub async fn user_for_token(&self, token_hash: &str) -> Result<Option<Uid>, StoreError> {
        let row = sqlx::query(
            "SELECT auth_tokens.uid AS uid FROM auth_tokens JOIN users ON users.uid = auth_tokens.uid \
             WHERE auth_tokens.token_hash = ? AND users.deleted_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.reads)
        .await?;
        row.map(|row| rows::uid(&row, "uid")).transpose()
    }
}

/// The user with this uid read inside a transaction, deleted or not.
async fn user_in(connection: &mut AnyConnection, uid: &Uid) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE uid = ?"))
        .bind(uid.as_str())
        .fetch_optional(connection)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// A `LIKE` pattern matching any text that contains `needle` (lowercased), with `!` as the escape character.
fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for character in needle.to_lowercase().chars() {
        if matches!(character, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// A user from a row selected with [`user_columns!`].
pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        uid: rows::uid(row, "uid")?,
        name: get(row, "name")?,
        avatar: get(row, "avatar")?,
        link: get(row, "link")?,
        role: get(row, "role")?,
        metadata: rows::optional_json(row, "metadata")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        deleted_at: get(row, "deleted_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn search_patterns_escape_wildcards_and_ignore_case() {
        assert_eq!(contains_pattern("Ann"), "%ann%");
        assert_eq!(contains_pattern("user_1"), "%user!_1%");
        assert_eq!(contains_pattern("100%!"), "%100!%!!%");
    }
}
