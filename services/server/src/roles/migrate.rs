//! The `migrate` role: the database and its account made when missing (`COMET_DATABASE_ROOT_PASSWORD`), then
//! the schema applied. It is a one-shot job: a process whose only role it is exits afterwards.

use anyhow::{Context as _, Result};
use comet_store::{BootstrapError, Store};

use crate::config::{self, Settings};

/// Makes the database and its account when the settings ask for it; runs before the store connects.
pub async fn bootstrap(settings: &Settings) -> Result<()> {
    let Some(bootstrap) = settings.database_bootstrap()? else { return Ok(()) };
    bootstrap.run().await.map_err(|error| match error {
        BootstrapError::RootRefused { user, source } => anyhow::anyhow!(
            "the database refused {user} with the configured {} (and an empty one): {source}",
            config::DATABASE_ROOT_PASSWORD
        ),
        other => anyhow::Error::from(other).context("making the database and its account"),
    })?;
    Ok(())
}

/// Applies the schema. A schema a newer release already migrated further is accepted (migrations are
/// expand-then-contract, so this release runs on it after a rollback) and said in a warning.
pub async fn migrate(store: &Store) -> Result<()> {
    let migrated = store.migrate().await.context("applying the schema")?;
    if migrated.newer.is_empty() {
        tracing::info!(version = comet_store::latest_version(), "schema is up to date");
    } else {
        tracing::warn!(
            version = comet_store::latest_version(),
            newer = ?migrated.newer,
            "the schema has migrations from a newer release; this release runs on it (they only add), \
             and the newer release's next start finds nothing left to apply"
        );
    }
    Ok(())
}

/// Checks the settings this role reads.
pub fn check(settings: &Settings) -> Result<()> {
    settings.database_bootstrap()?;
    Ok(())
}
