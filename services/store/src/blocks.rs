//! Blocked users: a user blocks others, and messages between the two are refused in either direction.

use comet_model::{EventType, Millis, Uid, User};
use serde_json::json;

use crate::error::is_unique_violation;
use crate::users::user_from_row;
use crate::{Store, StoreError, outbox};

impl Store {
    /// `blocker` blocks each of `blocked`, in one transaction with a `user.blocked` event (key: the blocker;
    /// data: `uid`, `blockedUid`) for each pair that was not blocked yet. Returns the newly blocked uids; blocking
    /// again is a no-op without an event.
    pub async fn block_users(&self, blocker: &Uid, blocked: &[Uid], now: Millis) -> Result<Vec<Uid>, StoreError> {
        let mut transaction = self.begin_write().await?;
        let mut newly = Vec::new();
        for target in blocked {
            let inserted = sqlx::query("INSERT INTO blocked_users (blocker, blocked, created_at) VALUES (?, ?, ?)")
                .bind(blocker.as_str())
                .bind(target.as_str())
                .bind(now)
                .execute(&mut *transaction)
                .await;
            match inserted {
                Ok(_) => {}
                // Already blocked: the failed statement is undone on its own, the transaction goes on.
                Err(error) if is_unique_violation(&error) => continue,
                Err(error) => return Err(error.into()),
            }
            let data = json!({ "uid": blocker, "blockedUid": target });
            outbox::insert(&mut transaction, EventType::UserBlocked, blocker.as_str(), 0, now, &data).await?;
            newly.push(target.clone());
        }
        self.commit_events(transaction).await?;
        Ok(newly)
    }

    /// `blocker` unblocks each of `blocked`, in one transaction with a `user.unblocked` event for each pair that
    /// was blocked. Returns the uids that were unblocked.
    pub async fn unblock_users(&self, blocker: &Uid, blocked: &[Uid], now: Millis) -> Result<Vec<Uid>, StoreError> {
        let mut transaction = self.begin_write().await?;
        let mut removed = Vec::new();
        for target in blocked {
            let deleted = sqlx::query("DELETE FROM blocked_users WHERE blocker = ? AND blocked = ?")
                .bind(blocker.as_str())
                .bind(target.as_str())
                .execute(&mut *transaction)
                .await?;
            if deleted.rows_affected() == 0 {
                continue;
            }
            let data = json!({ "uid": blocker, "blockedUid": target });
            outbox::insert(&mut transaction, EventType::UserUnblocked, blocker.as_str(), 0, now, &data).await?;
            removed.push(target.clone());
        }
        self.commit_events(transaction).await?;
        Ok(removed)
    }

    /// Up to `limit` users that `blocker` blocked and that are not deleted, ordered by uid, after the uid `after`.
    pub async fn list_blocked_users(
        &self,
        blocker: &Uid,
        after: Option<&Uid>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        // Every uid is longer than the empty string, so "" means "from the start".
        let after = after.map_or("", Uid::as_str);
        let found = sqlx::query(
            "SELECT users.uid AS uid, users.name AS name, users.avatar AS avatar, users.link AS link, \
             users.role AS role, users.metadata AS metadata, users.created_at AS created_at, \
             users.updated_at AS updated_at, users.deleted_at AS deleted_at \
             FROM blocked_users JOIN users ON users.uid = blocked_users.blocked \
             WHERE blocked_users.blocker = ? AND users.deleted_at IS NULL AND users.uid > ? \
             ORDER BY users.uid LIMIT ?",
        )
        .bind(blocker.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        found.iter().map(user_from_row).collect()
    }

    /// True when `a` blocked `b` or `b` blocked `a`.
    pub async fn blocked_either_way(&self, a: &Uid, b: &Uid) -> Result<bool, StoreError> {
        let found = sqlx::query(
            "SELECT blocker FROM blocked_users WHERE (blocker = ? AND blocked = ?) OR (blocker = ? AND blocked = ?)",
        )
        .bind(a.as_str())
        .bind(b.as_str())
        .bind(b.as_str())
        .bind(a.as_str())
        .fetch_optional(&self.reads)
        .await?;
        Ok(found.is_some())
    }
}
