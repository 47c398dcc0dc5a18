//! Write transactions: how one begins on each backend, the lock every change to a conversation takes first,
//! and the commit that carries the change's event (the outbox row, in the same transaction).

use comet_model::{ConversationId, EventType, Millis};
use serde::Serialize;
use sqlx::{Any, AnyConnection, Transaction};

use crate::error::unencodable;
use crate::{Backend, Store, StoreError, outbox};

impl Store {
    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// transaction never has to upgrade a read lock halfway through; on MySQL row locks are taken as rows are
    /// written.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let transaction = match self.backend {
            Backend::MySql => self.pool.begin().await?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        };
        Ok(transaction)
    }

    /// Commits a transaction that wrote outbox rows, then wakes this process's relay, so an event is published
    /// as soon as its change is visible rather than at the relay's next poll.
    pub(crate) async fn commit_events(&self, transaction: Transaction<'static, Any>) -> Result<(), sqlx::Error> {
        transaction.commit().await?;
        // One stored permit: a commit while the relay is busy makes its next wait return at once, so no wake is
        // lost; several commits before it looks again cost one read, not one each.
        self.outbox_committed.notify_one();
        Ok(())
    }

    /// Resolves after this process (through this store or a clone of it) committed an outbox row since the last
    /// time it resolved; at once if one was committed meanwhile. Other processes' commits do not wake it: a
    /// relay in another process still polls.
    pub async fn outbox_committed(&self) {
        self.outbox_committed.notified().await;
    }
}

/// Locks a conversation's seq row until the transaction ends and returns its `last_seq`; `None` if the
/// conversation has no row.
///
/// SQLite needs no row lock: the transaction began with `BEGIN IMMEDIATE` and holds the database's write lock.
pub(crate) async fn lock_conversation(
    connection: &mut AnyConnection,
    backend: Backend,
    conversation: &ConversationId,
) -> Result<Option<i64>, StoreError> {
    let sql = match backend {
        Backend::MySql => "SELECT last_seq FROM conversations WHERE conversation_id = ? FOR UPDATE",
        Backend::Sqlite => "SELECT last_seq FROM conversations WHERE conversation_id = ?",
    };
    let last_seq: Option<i64> = sqlx::query_scalar(sql).bind(conversation.key()).fetch_optional(connection).await?;
    Ok(last_seq)
}

/// Writes the event of a change to `conversation` (data: `data` as JSON, ordered after the conversation's
/// `key_seq`) and commits the transaction with it.
pub(crate) async fn commit_with_event(
    store: &Store,
    mut transaction: Transaction<'static, Any>,
    event_type: EventType,
    conversation: &ConversationId,
    key_seq: i64,
    now: Millis,
    data: &impl Serialize,
) -> Result<(), StoreError> {
    let data = serde_json::to_value(data).map_err(unencodable)?;
    outbox::insert(&mut transaction, event_type, conversation.key(), key_seq, now, &data).await?;
    store.commit_events(transaction).await?;
    Ok(())
}
