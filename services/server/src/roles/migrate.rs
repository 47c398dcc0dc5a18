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

/// Applies the schema.
pub async fn migrate(store: &Store) -> Result<()> {
    store.migrate().await.context("applying the schema")?;
    tracing::info!("schema is up to date");
    Ok(())
}

/// Checks the settings this role reads.
pub fn check(settings: &Settings) -> Result<()> {
    settings.database_bootstrap()?;
    Ok(())
}
