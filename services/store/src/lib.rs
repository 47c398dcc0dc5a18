//! Durable storage for Comet: users, groups, messages and the transactional outbox, over sqlx's Any driver.
//!
//! One [`Store`] speaks either the MySQL protocol (TiDB in production, MariaDB in tests) or SQLite (the
//! embedded single-process mode). The SQL is written once with `?` placeholders and portable types (BIGINT
//! millis, JSON as text); only the schema (`migrations/mysql`, `migrations/sqlite`) and the way a write
//! transaction begins differ between the two.
//!
//! Every change that other roles must hear about writes an outbox row in the same transaction, so an event is
//! published if and only if its change committed. The relay reads the outbox with
//! [`Store::unpublished_events`] and marks what it published with [`Store::mark_published`].
//!
//! Before the schema, the `migrate` role may make the database and its account as the server's root user:
//! [`Bootstrap`].
//!
//! This crate reads no clock: every write takes `now` from the caller.

mod access;
mod blocks;
mod bootstrap;
mod conversations;
mod dead_letters;
mod dump;
mod error;
mod groups;
mod messages;
mod migrations;
mod moderation;
mod notifications;
mod outbox;
mod reach;
mod rows;
mod tx;
mod users;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use tokio::sync::Notify;

pub use bootstrap::{Bootstrap, BootstrapError};
pub use conversations::{ConversationCursor, ConversationSummary, ConversationWith, Receipt, ReceiptKind};
pub use dead_letters::WorkerDeadLetter;
pub use dump::{DumpError, DumpSummary, NOT_COPIED, TABLES};
pub use error::{Refusal, StoreError};
pub use messages::{
    Decided, HeldDecision, HeldMessage, HeldStatus, MessageChange, MessageFilter, MessagePage, ReactionChange,
    ReactionCount,
};
pub use migrations::{Migrated, latest_version};
pub use moderation::{
    AuditEntry, ModerationDocument, ReviewFilter, ReviewItem, ReviewQueue, ReviewStatus, RuleRevision, UserReport,
};
pub use notifications::{LogEntry, LogFilter, ProviderRecord, PushJob, PushToken, TokenRegistration};
pub use outbox::{DeadLetter, Lease};
pub use reach::Reach;
pub use users::AuthToken;
pub use webhooks::{AttemptResult, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryState, WebhookRecord};

/// How long a SQLite connection waits for a lock held by another process before failing with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only connections to a SQLite file, beside its one writer: reads outside a transaction take turns on
/// these and never queue behind a commit.
const SQLITE_READERS: u32 = 4;

/// Connections to a MySQL-protocol server. Senders to one conversation queue on its row lock, not on the pool;
/// this bounds how many transactions one process keeps open against TiDB.
const MYSQL_MAX_CONNECTIONS: u32 = 16;

/// The longest a statement waits for a pooled connection before failing with [`StoreError::is_busy`] (the API
/// answers 503 `ERR_OVERLOADED`, which a client retries) rather than queueing for sqlx's default 30 s.
const POOL_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The database a [`Store`] talks to, decided by the URL scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The MySQL protocol: TiDB, MySQL or MariaDB (`mysql://…` or `mariadb://…`).
    MySql,
    /// A SQLite file (`sqlite://path`), created when missing.
    Sqlite,
}

impl Backend {
    /// Picks the backend from a database URL, or refuses a URL neither driver understands.
    fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Backend::MySql)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(StoreError::BadUrl(redact(url)))
        }
    }
}

/// A pool of connections to the Comet database. Cheap to clone: clones share the pool.
#[derive(Clone, Debug)]
pub struct Store {
    /// Every write, and on MySQL everything.
    pool: AnyPool,
    /// Reads outside a transaction: SQLite's read-only connections beside its one writer; on MySQL `pool` itself.
    reads: AnyPool,
    backend: Backend,
    /// SQLite's writer task, which commits waiting sends together (`messages::group_commit`); `None` on MySQL,
    /// where concurrent sends to different conversations commit side by side.
    sends: Option<messages::group_commit::SendQueue>,
    /// Woken after every commit that wrote an outbox row; this process's relay waits on it when idle.
    outbox_committed: Arc<Notify>,
}

impl Store {
    /// Connects to `mysql://…` (TiDB, MySQL, MariaDB) or `sqlite://path`.
    ///
    /// A SQLite file is created when missing (its folder must exist), switched to write-ahead logging, and
    /// given a busy timeout for locks held by other processes. The SQLite pool has exactly one connection:
    /// SQLite admits one writer at a time, and with several connections a transaction that reads and then
    /// writes can fail at once with `SQLITE_BUSY` when another connection wrote in between (the busy timeout
    /// does not cover that upgrade). One connection makes writers wait their turn in the pool's fair queue
    /// instead, which also serializes concurrent sends to a conversation exactly as the row lock does on MySQL.
    /// Reads outside a transaction go to a second pool of [`SQLITE_READERS`] read-only connections (write-ahead
    /// logging lets them read while the writer commits), so a read never waits for a commit's sync.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let pool = match backend {
            Backend::MySql => {
                AnyPoolOptions::new()
                    .max_connections(MYSQL_MAX_CONNECTIONS)
                    .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?
            }
            Backend::Sqlite => {
                sqlite_pool(1)
                    .after_connect(|connection, _metadata| {
                        Box::pin(async move {
                            connection.execute("PRAGMA journal_mode = WAL").await?;
                            // An acknowledged message must survive a power cut, so every commit syncs the log.
                            connection.execute("PRAGMA synchronous = FULL").await?;
                            connection.execute(sqlite_busy_timeout_pragma()).await?;
                            Ok(())
                        })
                    })
                    .connect(&sqlite_create_if_missing(url))
                    .await?
            }
        };
        let reads = match backend {
            // An in-memory database is private to its one connection: nothing else could read it.
            Backend::Sqlite if !url.contains(":memory:") => {
                sqlite_pool(SQLITE_READERS)
                    .after_connect(|connection, _metadata| {
                        Box::pin(async move {
                            // A statement that writes through a reader fails at once instead of racing the writer.
                            connection.execute("PRAGMA query_only = ON").await?;
                            connection.execute(sqlite_busy_timeout_pragma()).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            _ => pool.clone(),
        };
        let outbox_committed = Arc::new(Notify::new());
        let sends = (backend == Backend::Sqlite)
            .then(|| messages::group_commit::SendQueue::start(pool.clone(), Arc::clone(&outbox_committed)));
        Ok(Store { pool, reads, backend, sends, outbox_committed })
    }

    /// The database behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the embedded migrations that have not run yet; running it again is a no-op.
    ///
    /// Applied migrations are recorded in `_sqlx_migrations` with a checksum, so an edited migration that
    /// already ran is reported instead of silently skipped. On MySQL an advisory lock (`GET_LOCK`) keeps two
    /// `migrate` jobs from running at once.
    ///
    /// Applied versions newer than this binary's (a rollback after a newer release migrated) are accepted and
    /// returned in [`Migrated::newer`]: migrations are expand-then-contract (see the `migrations` module).
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        migrations::run(&self.pool, self.backend, i64::MAX).await
    }

    /// Applies the migrations up to and including `version` only: for tests that write data as an older
    /// release did and then migrate it.
    #[doc(hidden)]
    pub async fn migrate_to(&self, version: i64) -> Result<Migrated, StoreError> {
        migrations::run(&self.pool, self.backend, version).await
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }
}

/// The busy-timeout pragma with its value taken from [`SQLITE_BUSY_TIMEOUT`].
/// A pool of `connections` to a SQLite file. No idle reaping: the connections are to a local file and never go
/// stale, and sqlx's reaper spins without yielding when its idle count wraps after cancelled calls (seen as a
/// relay test hanging with a tokio worker at 100 % in `spawn_maintenance_tasks`).
fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
}

fn sqlite_busy_timeout_pragma() -> sqlx::AssertSqlSafe<String> {
    // The value is a constant of this crate, not input.
    sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()))
}

/// Adds `mode=rwc` (read, write, create) to a SQLite URL that names no mode, so a missing file is created.
fn sqlite_create_if_missing(url: &str) -> String {
    let in_memory = url.contains(":memory:");
    let (_, query) = url.split_once('?').unwrap_or((url, ""));
    let names_mode = query.split('&').any(|pair| pair.starts_with("mode="));
    if in_memory || names_mode {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// A URL with its password replaced by `***`, fit for error messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_or_are_refused() {
        assert_eq!(Backend::from_url("mysql://app:app@127.0.0.1:3306/app").ok(), Some(Backend::MySql));
        assert_eq!(Backend::from_url("mariadb://app@db/app").ok(), Some(Backend::MySql));
        assert_eq!(Backend::from_url("sqlite:///var/lib/comet/comet.db").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("sqlite::memory:").ok(), Some(Backend::Sqlite));
        let refused = Backend::from_url("postgres://app:secret@db/app").expect_err("postgres is refused");
        assert_eq!(
            refused.to_string(),
            "unsupported database URL `postgres://app:***@db/app`: use mysql://… or sqlite://…"
        );
    }

    #[test]
    fn sqlite_urls_create_the_file_unless_a_mode_is_named() {
        assert_eq!(sqlite_create_if_missing("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db?mode=rwc");
        assert_eq!(
            sqlite_create_if_missing("sqlite:///tmp/a.db?cache=shared"),
            "sqlite:///tmp/a.db?cache=shared&mode=rwc"
        );
        assert_eq!(sqlite_create_if_missing("sqlite:///tmp/a.db?mode=ro"), "sqlite:///tmp/a.db?mode=ro");
        assert_eq!(sqlite_create_if_missing("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact("mysql://root:hunter2@db:4000/comet?ssl-mode=required"),
            "mysql://root:***@db:4000/comet?ssl-mode=required"
        );
        assert_eq!(redact("mysql://root@db/comet"), "mysql://root@db/comet");
        assert_eq!(redact("nonsense"), "nonsense");
    }
}
