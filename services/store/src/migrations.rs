//! The embedded schema migrations, one folder per SQL dialect.
//!
//! Both folders hold the same versions with the same meaning; a new migration is added to both. They are
//! compiled into the binary (`include_str!`), so the `migrate` role needs no files beside it.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Backend, StoreError};

/// One migration: its version, description, and SQL for MySQL and for SQLite.
struct Step {
    version: i64,
    description: &'static str,
    mysql: &'static str,
    sqlite: &'static str,
}

/// One [`Step`] from its version, description and file name (the same in both dialect folders).
macro_rules! step {
    ($version:literal, $description:literal, $file:literal) => {
        Step {
            version: $version,
            description: $description,
            mysql: include_str!(concat!("../migrations/mysql/", $file, ".sql")),
            sqlite: include_str!(concat!("../migrations/sqlite/", $file, ".sql")),
        }
    };
}

const STEPS: &[Step] = &[
    step!(1, "initial", "0001_initial"),
    step!(2, "users blocks tokens", "0002_users_blocks_tokens"),
    step!(3, "group moderation", "0003_group_moderation"),
    step!(4, "message changes", "0004_message_changes"),
    step!(5, "conversations", "0005_conversations"),
    step!(6, "conversation keys", "0006_conversation_keys"),
    step!(7, "outbox dead letters", "0007_outbox_dead_letters"),
    step!(8, "worker dead letters", "0008_worker_dead_letters"),
    step!(9, "webhooks", "0009_webhooks"),
];

/// The migrator for one backend's dialect, up to and including `last_version`.
fn migrator(backend: Backend, last_version: i64) -> Migrator {
    let migrations = STEPS
        .iter()
        .filter(|step| step.version <= last_version)
        .map(|step| {
            let sql = match backend {
                Backend::MySql => step.mysql,
                Backend::Sqlite => step.sqlite,
            };
            Migration::new(
                step.version,
                Cow::Borrowed(step.description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Applies the pending migrations of `backend`'s dialect up to `last_version` (`i64::MAX`: all).
pub(crate) async fn run(pool: &AnyPool, backend: Backend, last_version: i64) -> Result<(), StoreError> {
    migrator(backend, last_version)
        .run(pool)
        .await
        .map_err(|error| StoreError::Migration(format!("applying the {backend:?} schema: {error}")))
}
