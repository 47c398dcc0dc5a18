//! The embedded schema migrations, one folder per SQL dialect.
//!
//! Both folders hold the same versions with the same meaning; a new migration is added to both. They are
//! compiled into the binary (`include_str!`), so the `migrate` role needs no files beside it.
//!
//! Migrations are expand-then-contract so that a rollback works: release N+1's migrations only add (tables,
//! nullable or defaulted columns, indexes) and release N keeps running on that schema; a table or column that
//! release N still reads is dropped or renamed only in a later release, by a migration that says so in a
//! `-- contract:` line (checked by this module's tests). The migrator therefore accepts applied migrations it
//! does not know — they come from a newer release — and reports them ([`Migrated::newer`]) instead of refusing
//! to start, which would turn every automatic rollback after a schema change into an outage.

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
    step!(11, "moderation", "0011_moderation"),
    step!(12, "moderation async", "0012_moderation_async"),
    step!(13, "notifications", "0013_notifications"),
];

/// What a migration run found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Migrated {
    /// Applied versions this binary does not know, in order: the schema was migrated by a newer release
    /// (after a rollback, or while one rolls out). Empty when this binary knows the whole schema.
    pub newer: Vec<i64>,
}

/// The newest migration this binary carries.
pub fn latest_version() -> i64 {
    STEPS.iter().map(|step| step.version).max().unwrap_or(0)
}

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
    let mut migrator = Migrator::with_migrations(migrations);
    // Versions applied by a newer release are expected after a rollback (see the module's documentation).
    migrator.set_ignore_missing(true);
    migrator
}

/// Applies the pending migrations of `backend`'s dialect up to `last_version` (`i64::MAX`: all), and says which
/// applied versions are newer than anything this binary knows.
pub(crate) async fn run(pool: &AnyPool, backend: Backend, last_version: i64) -> Result<Migrated, StoreError> {
    let migrator = migrator(backend, last_version);
    migrator
        .run(pool)
        .await
        .map_err(|error| StoreError::Migration(format!("applying the {backend:?} schema: {error}")))?;
    let known = migrator.iter().map(|migration| migration.version).max().unwrap_or(0);
    let newer: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE version > ? ORDER BY version")
        .bind(known)
        .fetch_all(pool)
        .await
        .map_err(|error| StoreError::Migration(format!("reading the applied {backend:?} migrations: {error}")))?;
    Ok(Migrated { newer })
}

#[cfg(test)]
mod tests {
    use super::STEPS;

    /// Statements that take away something a running older release may read.
    const CONTRACTING: &[&str] = &["DROP COLUMN", "DROP TABLE", "RENAME", "CHANGE COLUMN", "MODIFY COLUMN"];

    /// The last version written before the expand-then-contract rule: its drops and renames only touch tables it
    /// creates and removes itself, or data the release before it did not read.
    const BEFORE_THE_RULE: i64 = 9;

    /// The contracting statement `sql` holds without a `-- contract:` line declaring it, if any.
    fn undeclared_contraction(sql: &str) -> Option<&'static str> {
        let upper = sql.to_ascii_uppercase();
        let declared = upper.lines().any(|line| line.trim_start().starts_with("-- CONTRACT:"));
        if declared { None } else { CONTRACTING.iter().copied().find(|statement| upper.contains(statement)) }
    }

    #[test]
    fn migrations_after_the_rule_only_expand_unless_they_say_what_they_contract() {
        for step in STEPS.iter().filter(|step| step.version > BEFORE_THE_RULE) {
            for (dialect, sql) in [("mysql", step.mysql), ("sqlite", step.sqlite)] {
                if let Some(statement) = undeclared_contraction(sql) {
                    panic!(
                        "migration {} ({dialect}) contains {statement}: an older release may still read what it \
                         removes. Split it: expand now, contract one release later with a `-- contract:` line \
                         naming what is removed and the release since which nothing reads it",
                        step.version
                    );
                }
            }
        }
    }

    #[test]
    fn the_expand_check_tells_contractions_from_expansions() {
        assert_eq!(undeclared_contraction("ALTER TABLE messages ADD COLUMN lang VARCHAR(16);"), None);
        assert_eq!(undeclared_contraction("alter table messages drop column lang;"), Some("DROP COLUMN"));
        assert_eq!(undeclared_contraction("ALTER TABLE users RENAME TO people;"), Some("RENAME"));
        assert_eq!(
            undeclared_contraction(
                "-- contract: drops users.legacy_flag, unread since release 9\nALTER TABLE users DROP COLUMN legacy_flag;"
            ),
            None
        );
    }

    #[test]
    fn versions_are_unique_and_increasing() {
        let versions: Vec<i64> = STEPS.iter().map(|step| step.version).collect();
        assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "{versions:?}");
    }
}
