//! A consistent logical copy of the whole database, streamed (issue #12): what `comet-server dump` writes and
//! `comet-server load` reads, and what `cometctl backup` stores as the database's part.
//!
//! One snapshot covers every table (MySQL/TiDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT`; SQLite: one read
//! transaction), so a message in the copy has its outbox row and its conversation's seqs are gap-free. The
//! format is JSON lines (docs/operations/backup.md, "The database part"):
//!
//! ```text
//! {"format":"comet-dump","version":1,"schema":9,"backend":"mysql","engine":"10.11.6-MariaDB","snapshotAt":…}
//! {"table":"users","columns":["uid","name",...]}
//! ["alice","Alice",null,...]                  one JSON array per row, values in the columns' order
//! {"end":"users","rows":2}
//! ...
//! {"done":true,"tables":{"users":2,...},"rows":N}
//! ```
//!
//! A copy without its last line was cut short and is refused by the loader. Values are JSON null, integers,
//! floats and strings (the schema holds no binary columns; times are integers). The loader writes into an
//! empty database at the copy's schema version, in batches, and checks every table's row count against the
//! copy's.

use std::collections::BTreeMap;

use comet_model::Millis;
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{Any, Column as _, QueryBuilder, Row as _, ValueRef as _};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{Backend, Store, StoreError};

/// The copy's format name and version: the loader refuses others.
pub const FORMAT: &str = "comet-dump";
pub const FORMAT_VERSION: u32 = 1;

/// Every table of the schema that the copy carries, in an order the loader can write them in (a table after
/// those it refers to, though the schema declares no foreign keys).
pub const TABLES: [&str; 31] = [
    "users",
    "auth_tokens",
    "blocked_users",
    "chat_groups",
    "group_members",
    "group_bans",
    "conversations",
    "user_conversations",
    "messages",
    "message_reactions",
    "conversation_receipts",
    "outbox",
    "outbox_dead_letters",
    "worker_dead_letters",
    "webhooks",
    "webhook_deliveries",
    "webhook_attempts",
    "moderation_rules",
    "moderation_rule_revisions",
    "moderation_lists",
    "moderation_reviews",
    "moderation_reports",
    "moderation_audit",
    "moderation_held",
    "push_tokens",
    "push_providers",
    "notification_preferences",
    "notification_defaults",
    "notification_mutes",
    "notification_pushes",
    "notification_log",
];

/// Tables left out on purpose: the migrator's own record (the copy names its schema version instead), the
/// relay's lease (who publishes is decided again by the processes that run after a restore) and the moderation
/// rules' change counter (its one row is made by the migration; the processes that start after a restore
/// compile the rules they find).
pub const NOT_COPIED: [&str; 3] = ["_sqlx_migrations", "leases", "moderation_state"];

/// Rows per INSERT when loading.
const BATCH_ROWS: usize = 500;

/// What a copy holds, from its first and last lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DumpSummary {
    /// The schema version (the last migration applied) the copy was taken at.
    pub schema: i64,
    /// `mysql` or `sqlite`: where it was taken.
    pub backend: String,
    /// When the snapshot was taken (ms).
    pub snapshot_at: Millis,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
}

impl DumpSummary {
    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }
}

/// Why a copy could not be written or loaded.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("writing or reading the copy: {0}")]
    Io(#[from] std::io::Error),
    /// The input is not a copy this version can load; the message says where and why.
    #[error("line {line}: {message}")]
    Format { line: u64, message: String },
    /// The target database is not empty or not at the copy's schema version.
    #[error("{0}")]
    Target(String),
    /// A table's rows in the target differ from the copy's count after the load.
    #[error("table {table}: the copy has {expected} rows, the database {found} after loading")]
    Count { table: String, expected: u64, found: u64 },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    format: String,
    version: u32,
    schema: i64,
    backend: String,
    /// The database server's own version (`VERSION()`, `sqlite_version()`).
    #[serde(default)]
    engine: String,
    snapshot_at: Millis,
}

#[derive(Serialize, Deserialize)]
struct TableStart {
    table: String,
    columns: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct TableEnd {
    end: String,
    rows: u64,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    done: bool,
    tables: BTreeMap<String, u64>,
    rows: u64,
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::MySql => "mysql",
        Backend::Sqlite => "sqlite",
    }
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), value: &impl Serialize) -> Result<(), DumpError> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    Ok(())
}

/// One column's value as JSON.
fn value(row: &AnyRow, index: usize) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        AnyTypeInfoKind::Null => Value::Null,
        AnyTypeInfoKind::Bool => Value::from(i64::from(row.try_get::<bool, _>(index)?)),
        AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
            Value::from(row.try_get::<i64, _>(index)?)
        }
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => Value::from(row.try_get::<f64, _>(index)?),
        AnyTypeInfoKind::Text => Value::from(row.try_get::<String, _>(index)?),
        AnyTypeInfoKind::Blob => {
            let bytes: Vec<u8> = row.try_get(index)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                sqlx::Error::Decode(format!("column {} holds bytes that are not text", row.column(index).name()).into())
            })?;
            Value::from(text)
        }
    })
}

impl Store {
    /// The schema version this database is at (the last migration applied); 0 before any.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.reads)
            .await?;
        Ok(version.unwrap_or(0))
    }

    /// Writes a consistent copy of every table in [`TABLES`] to `out`, one snapshot for all of them, and
    /// returns what it holds. Rows stream: memory does not grow with the database.
    pub async fn dump(&self, out: &mut (impl AsyncWrite + Unpin), now: Millis) -> Result<DumpSummary, DumpError> {
        let mut connection = self.pool.acquire().await?;
        match self.backend {
            Backend::MySql => {
                sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *connection)
                    .await?;
                sqlx::query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").execute(&mut *connection).await?;
            }
            // A deferred transaction's first read fixes its snapshot (WAL: writers go on meanwhile).
            Backend::Sqlite => {
                sqlx::query("BEGIN").execute(&mut *connection).await?;
            }
        }
        let schema: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&mut *connection)
            .await?;
        let engine: String = match self.backend {
            Backend::MySql => sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)"),
            Backend::Sqlite => sqlx::query_scalar("SELECT 'SQLite ' || sqlite_version()"),
        }
        .fetch_one(&mut *connection)
        .await?;
        let header = Header {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            schema: schema.unwrap_or(0),
            backend: backend_name(self.backend).to_owned(),
            engine,
            snapshot_at: now,
        };
        write_line(out, &header).await?;
        let mut tables = BTreeMap::new();
        for table in TABLES {
            // The columns in the schema's order, from the table itself (also when it has no rows).
            let columns = table_columns(&mut connection, self.backend, table).await?;
            write_line(out, &TableStart { table: table.to_owned(), columns: columns.clone() }).await?;
            let quoted: Vec<String> = columns.iter().map(|column| format!("\"{column}\"")).collect();
            let sql = format!("SELECT {} FROM {table}", quoted.join(", "));
            let sql = if self.backend == Backend::MySql { sql.replace('"', "`") } else { sql };
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *connection);
            let mut count = 0u64;
            while let Some(row) = rows.try_next().await? {
                let values = (0..columns.len()).map(|index| value(&row, index)).collect::<Result<Vec<_>, _>>()?;
                write_line(out, &values).await?;
                count += 1;
            }
            drop(rows);
            write_line(out, &TableEnd { end: table.to_owned(), rows: count }).await?;
            tables.insert(table.to_owned(), count);
        }
        sqlx::query("COMMIT").execute(&mut *connection).await?;
        let rows = tables.values().sum();
        write_line(out, &Trailer { done: true, tables: tables.clone(), rows }).await?;
        out.flush().await?;
        Ok(DumpSummary { schema: header.schema, backend: header.backend, snapshot_at: now, tables })
    }

    /// Loads a copy written by [`Store::dump`] (from either backend) into this database, which must be at the
    /// copy's schema version with every copied table empty; a fresh database (no schema at all) is migrated to
    /// the copy's version first. Refuses a truncated or altered copy (no trailer, a count that differs); rows already
    /// written then stay, so load into a database you can drop.
    pub async fn load(&self, input: &mut (impl AsyncBufRead + Unpin)) -> Result<DumpSummary, DumpError> {
        let mut reader = Lines { input, line: 0, text: String::new() };
        let Some(first) = reader.next().await? else {
            return Err(reader.error("the input is empty: not a copy".to_owned()));
        };
        let header: Header =
            serde_json::from_str(&first).map_err(|error| reader.error(format!("not a {FORMAT} header: {error}")))?;
        if header.format != FORMAT || header.version != FORMAT_VERSION {
            return Err(reader.error(format!(
                "not a {FORMAT} version {FORMAT_VERSION} copy (found {} version {})",
                header.format, header.version
            )));
        }
        // A fresh database (no schema yet) is first migrated to the copy's version.
        let schema = match self.schema_version().await {
            Ok(version) if version > 0 => version,
            _ => {
                self.migrate_to(header.schema).await?;
                self.schema_version().await?
            }
        };
        if schema != header.schema {
            return Err(DumpError::Target(format!(
                "the copy is of schema version {}, this database is at {schema}: load into a fresh, empty \
                 database (it is migrated to version {} first)",
                header.schema, header.schema
            )));
        }
        for table in TABLES {
            if table_rows(&self.pool, table).await? > 0 {
                return Err(DumpError::Target(format!(
                    "table {table} is not empty: load only into a fresh database, nothing was written"
                )));
            }
        }
        let mut loaded = BTreeMap::new();
        loop {
            let Some(line) = reader.next().await? else {
                return Err(reader.error("the copy ends before its last line: it was cut short".to_owned()));
            };
            let value: Value = serde_json::from_str(&line).map_err(|error| reader.error(error.to_string()))?;
            if value.get("done").is_some() {
                let trailer: Trailer =
                    serde_json::from_value(value).map_err(|error| reader.error(error.to_string()))?;
                if trailer.tables != loaded {
                    return Err(reader.error("the last line's counts differ from the tables read".to_owned()));
                }
                break;
            }
            let start: TableStart = serde_json::from_value(value).map_err(|error| reader.error(error.to_string()))?;
            if !TABLES.contains(&start.table.as_str()) || loaded.contains_key(&start.table) {
                return Err(reader.error(format!("unexpected table `{}`", start.table)));
            }
            let rows = self.load_table(&mut reader, &start).await?;
            let found = table_rows(&self.pool, &start.table).await?;
            if found != rows {
                return Err(DumpError::Count { table: start.table, expected: rows, found });
            }
            loaded.insert(start.table, rows);
        }
        Ok(DumpSummary {
            schema: header.schema,
            backend: header.backend,
            snapshot_at: header.snapshot_at,
            tables: loaded,
        })
    }

    /// The rows of one table up to its end line, written in batches; returns the count the end line gave.
    async fn load_table(
        &self,
        reader: &mut Lines<'_, impl AsyncBufRead + Unpin>,
        start: &TableStart,
    ) -> Result<u64, DumpError> {
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(BATCH_ROWS);
        let mut count = 0u64;
        loop {
            let Some(line) = reader.next().await? else {
                return Err(reader.error(format!("the copy ends inside table {}", start.table)));
            };
            let value: Value = serde_json::from_str(&line).map_err(|error| reader.error(error.to_string()))?;
            match value {
                Value::Array(values) => {
                    if values.len() != start.columns.len() {
                        return Err(reader.error(format!(
                            "a row of {} has {} values for {} columns",
                            start.table,
                            values.len(),
                            start.columns.len()
                        )));
                    }
                    batch.push(values);
                    count += 1;
                    if batch.len() == BATCH_ROWS {
                        self.insert_batch(start, &batch).await?;
                        batch.clear();
                    }
                }
                other => {
                    let end: TableEnd =
                        serde_json::from_value(other).map_err(|error| reader.error(error.to_string()))?;
                    if end.end != start.table || end.rows != count {
                        return Err(reader.error(format!(
                            "table {} ends with {} rows announced, {count} read",
                            start.table, end.rows
                        )));
                    }
                    if !batch.is_empty() {
                        self.insert_batch(start, &batch).await?;
                    }
                    return Ok(count);
                }
            }
        }
    }

    async fn insert_batch(&self, start: &TableStart, rows: &[Vec<Value>]) -> Result<(), DumpError> {
        let quote = if self.backend == Backend::MySql { '`' } else { '"' };
        let columns: Vec<String> = start.columns.iter().map(|column| format!("{quote}{column}{quote}")).collect();
        let mut insert: QueryBuilder<Any> =
            QueryBuilder::new(format!("INSERT INTO {} ({}) ", start.table, columns.join(", ")));
        insert.push_values(rows, |mut row, values| {
            for value in values {
                match value {
                    Value::Null => row.push_bind(None::<String>),
                    Value::Bool(true) => row.push_bind(1_i64),
                    Value::Bool(false) => row.push_bind(0_i64),
                    Value::Number(number) => match number.as_i64() {
                        Some(integer) => row.push_bind(integer),
                        None => row.push_bind(number.as_f64().unwrap_or_default()),
                    },
                    Value::String(text) => row.push_bind(text.clone()),
                    other => row.push_bind(other.to_string()),
                };
            }
        });
        let mut transaction = self.begin_write().await?;
        insert.build().execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(())
    }
}

/// Reads the copy line by line, counting lines for error messages.
struct Lines<'a, R> {
    input: &'a mut R,
    line: u64,
    text: String,
}

impl<R: AsyncBufRead + Unpin> Lines<'_, R> {
    async fn next(&mut self) -> Result<Option<String>, DumpError> {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        if self.input.read_line(&mut text).await? == 0 {
            return Ok(None);
        }
        self.line += 1;
        let trimmed = text.trim_end_matches(['\n', '\r']).len();
        text.truncate(trimmed);
        Ok(Some(text))
    }

    fn error(&self, message: String) -> DumpError {
        DumpError::Format { line: self.line, message }
    }
}

async fn table_rows(pool: &sqlx::AnyPool, table: &str) -> Result<u64, DumpError> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The table's columns in their declared order.
async fn table_columns(
    connection: &mut sqlx::AnyConnection,
    backend: Backend,
    table: &str,
) -> Result<Vec<String>, DumpError> {
    let names: Vec<String> = match backend {
        Backend::MySql => {
            sqlx::query_scalar(
                "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *connection)
            .await?
        }
        Backend::Sqlite => {
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(table)
                .fetch_all(&mut *connection)
                .await?
        }
    };
    if names.is_empty() {
        return Err(DumpError::Target(format!("table {table} does not exist: is the database migrated?")));
    }
    Ok(names)
}
