//! `comet-server dump` and `comet-server load`: the database's consistent logical copy (issue #12,
//! docs/operations/backup.md), streamed through stdout and stdin so `cometctl backup` can run them inside a
//! role's container and hash, encrypt and store the stream without a file in between.
//!
//! - `dump` writes the copy of `COMET_DATABASE_URL` to stdout (one snapshot for every table; the roles need
//!   not stop) and logs its summary on stderr.
//! - `load` reads a copy from stdin into `COMET_DATABASE_URL`, which must be empty (a fresh database is
//!   migrated to the copy's schema version first), checks every table's count, and prints the summary as one
//!   JSON line on stdout. Run `migrate` afterwards when this release's schema is newer than the copy's.
//! - `dump documents` and `load documents` do the same for the MongoDB database of `COMET_MONGODB_URL`
//!   (`comet_documents`' copy format), which must be set.

use anyhow::{Context as _, Result};
use comet_store::Store;
use tokio::io::{AsyncWriteExt as _, BufReader, BufWriter};

use crate::config::Settings;

pub async fn dump(settings: &Settings) -> Result<()> {
    let store = Store::connect(&settings.database_url()?).await.context("connecting to the database")?;
    let mut out = BufWriter::with_capacity(256 * 1024, tokio::io::stdout());
    let summary = store.dump(&mut out, comet_model::now_millis()).await.context("writing the database copy")?;
    out.flush().await.context("writing the database copy")?;
    tracing::info!(
        schema = summary.schema,
        rows = summary.rows(),
        tables = summary.tables.len(),
        snapshot_at = summary.snapshot_at,
        "database copy written"
    );
    Ok(())
}

pub async fn load(settings: &Settings) -> Result<()> {
    let store = Store::connect(&settings.database_url()?).await.context("connecting to the database")?;
    let mut input = BufReader::with_capacity(256 * 1024, tokio::io::stdin());
    let summary = store.load(&mut input).await.context("loading the database copy")?;
    let line = serde_json::to_string(&summary).context("the summary")?;
    print_summary(&line);
    Ok(())
}

/// The word after `dump` or `load` that names the MongoDB copy.
pub const DOCUMENTS: &str = "documents";

async fn documents(settings: &Settings) -> Result<comet_documents::Documents> {
    settings
        .documents()
        .await?
        .ok_or_else(|| anyhow::anyhow!("`{DOCUMENTS}` copies the MongoDB database, and COMET_MONGODB_URL is not set"))
}

pub async fn dump_documents(settings: &Settings) -> Result<()> {
    let documents = documents(settings).await?;
    let mut out = BufWriter::with_capacity(256 * 1024, tokio::io::stdout());
    let summary = documents.dump(&mut out, comet_model::now_millis()).await.context("writing the documents copy")?;
    tracing::info!(
        database = summary.database,
        documents = summary.documents(),
        collections = summary.collections.len(),
        "documents copy written"
    );
    Ok(())
}

pub async fn load_documents(settings: &Settings) -> Result<()> {
    let documents = documents(settings).await?;
    let mut input = BufReader::with_capacity(256 * 1024, tokio::io::stdin());
    let summary = documents.load(&mut input).await.context("loading the documents copy")?;
    print_summary(&serde_json::to_string(&summary).context("the summary")?);
    Ok(())
}

/// The load's result is the command's output (stdout); logs stay on stderr.
#[allow(clippy::print_stdout)]
fn print_summary(line: &str) {
    println!("{line}");
}
