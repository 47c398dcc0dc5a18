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

const STEPS: &[Step] = &[
    Step {
        version: 1,
        description: "initial",
        mysql: include_str!("../migrations/mysql/0001_initial.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Step {
        version: 2,
        description: "users blocks tokens",
        mysql: include_str!("../migrations/mysql/0002_users_blocks_tokens.sql"),
        sqlite: include_str!("../migrations/sqlite/0002_users_blocks_tokens.sql"),
    },
    Step {
        version: 3,
        description: "group moderation",
        mysql: include_str!("../migrations/mysql/0003_group_moderation.sql"),
        sqlite: include_str!("../migrations/sqlite/0003_group_moderation.sql"),
    },
    Step {
        version: 4,
        description: "message changes",
        mysql: include_str!("../migrations/mysql/0004_message_changes.sql"),
        sqlite: include_str!("../migrations/sqlite/0004_message_changes.sql"),
    },
    Step {
        version: 5,
        description: "conversations",
        mysql: include_str!("../migrations/mysql/0005_conversations.sql"),
        sqlite: include_str!("../migrations/sqlite/0005_conversations.sql"),
    },
    Step {
        version: 6,
        description: "conversation keys",
        mysql: include_str!("../migrations/mysql/0006_conversation_keys.sql"),
        sqlite: include_str!("../migrations/sqlite/0006_conversation_keys.sql"),
    },
    Step {
        version: 7,
        description: "outbox dead letters",
        mysql: include_str!("../migrations/mysql/0007_outbox_dead_letters.sql"),
        sqlite: include_str!("../migrations/sqlite/0007_outbox_dead_letters.sql"),
    },
    Step {
        version: 8,
        description: "worker dead letters",
        mysql: include_str!("../migrations/mysql/0008_worker_dead_letters.sql"),
        sqlite: include_str!("../migrations/sqlite/0008_worker_dead_letters.sql"),
    },
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
