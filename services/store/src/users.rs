//! Users and their auth tokens.

use comet_model::{EventType, Millis, NewUser, Uid, User};
use sqlx::any::AnyRow;

use crate::error::{is_unique_violation, unencodable};
use crate::rows::{self, get};
use crate::{Store, StoreError, outbox};

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
        transaction.commit().await?;
        Ok(created)
    }

    /// The user with this uid, deleted or not (a deleted user has `deleted_at` set).
    pub async fn get_user(&self, uid: &Uid) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE uid = ?"))
            .bind(uid.as_str())
            .fetch_optional(&self.pool)
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
                .fetch_all(&self.pool)
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
                .fetch_all(&self.pool)
                .await?
            }
        };
        found.iter().map(user_from_row).collect()
    }

    /// Records an auth token for `uid`. Only the token's hash is given and stored, never the token.
    pub async fn create_auth_token(&self, uid: &Uid, token_hash: &str, now: Millis) -> Result<(), StoreError> {
        let inserted = sqlx::query("INSERT INTO auth_tokens (token_hash, uid, created_at) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(uid.as_str())
            .bind(now)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict("auth token")),
            Err(error) => Err(error.into()),
        }
    }

    /// The user an auth token (given by its hash) signs in, if the token exists and its user is not deleted.
    pub async fn user_for_token(&self, token_hash: &str) -> Result<Option<Uid>, StoreError> {
        let row = sqlx::query(
            "SELECT auth_tokens.uid AS uid FROM auth_tokens JOIN users ON users.uid = auth_tokens.uid \
             WHERE auth_tokens.token_hash = ? AND users.deleted_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| rows::uid(&row, "uid")).transpose()
    }
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
fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
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
