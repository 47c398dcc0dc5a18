//! The logical copy of the deployment's MongoDB database (issue #12, docs/operations/backup.md): what
//! `comet-server dump documents` writes and `comet-server load documents` reads, so `cometctl backup` can take
//! MongoDB's part through a role's container like the relational one, without mongodump.
//!
//! The format is JSON lines: a header `{"format": "comet-documents", "version": 1, "database", "dumpedAt"}`,
//! one line per document `{"c": collection, "d": document}` with the document in MongoDB's canonical Extended
//! JSON (so every BSON type survives, dates and ObjectIds included), collections in name order, and a trailer
//! `{"done": true, "collections": {name: count}}`. Each collection is read by one cursor: a standalone server
//! has no snapshot across collections, so a document written during the copy may be in it or not (the data
//! here — webhook configurations, moderation rules and queues, preferences — changes seldom). Indexes are not
//! copied: every role creates its own at start.

use std::collections::BTreeMap;

use mongodb::bson::{Bson, Document, doc};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{Documents, DocumentsError};

pub const COPY_FORMAT: &str = "comet-documents";
pub const COPY_VERSION: u64 = 1;
/// Documents inserted per request while loading.
const LOAD_BATCH: usize = 500;

/// What a copy held: documents per collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopySummary {
    pub database: String,
    pub collections: BTreeMap<String, u64>,
}

impl CopySummary {
    pub fn documents(&self) -> u64 {
        self.collections.values().sum()
    }
}

fn invalid(message: impl Into<String>) -> DocumentsError {
    DocumentsError::Copy(message.into())
}

impl Documents {
    /// The collections of the database, without MongoDB's own (`system.*`), in name order.
    async fn collection_names(&self) -> Result<Vec<String>, DocumentsError> {
        let mut names: Vec<String> = self
            .database
            .list_collection_names()
            .await?
            .into_iter()
            .filter(|name| !name.starts_with("system."))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Writes the copy of every collection to `out`; `now` (ms) is the header's `dumpedAt`.
    pub async fn dump<W: AsyncWrite + Unpin>(&self, out: &mut W, now: i64) -> Result<CopySummary, DocumentsError> {
        let header =
            json!({ "format": COPY_FORMAT, "version": COPY_VERSION, "database": self.name(), "dumpedAt": now });
        write_line(out, &header).await?;
        let mut collections = BTreeMap::new();
        for name in self.collection_names().await? {
            let mut cursor = self.collection::<Document>(&name).find(doc! {}).await?;
            let mut count = 0u64;
            while cursor.advance().await? {
                let document = cursor.deserialize_current()?;
                write_line(out, &json!({ "c": name, "d": Bson::Document(document).into_canonical_extjson() })).await?;
                count += 1;
            }
            collections.insert(name, count);
        }
        write_line(out, &json!({ "done": true, "collections": collections })).await?;
        out.flush().await?;
        Ok(CopySummary { database: self.name().to_owned(), collections })
    }

    /// Loads a copy from `input` into this database, which must hold no document (empty collections, such as
    /// those a role made at start with its indexes, are fine), and checks every collection's count against the
    /// trailer. A copy that is cut short, altered or of another format is refused; what was inserted before the
    /// refusal stays, so load again only into a fresh database.
    pub async fn load<R: AsyncBufRead + Unpin>(&self, input: &mut R) -> Result<CopySummary, DocumentsError> {
        for name in self.collection_names().await? {
            if self.collection::<Document>(&name).estimated_document_count().await? > 0 {
                return Err(invalid(format!(
                    "the database `{}` already holds documents (collection `{name}`): load only into an empty one",
                    self.name()
                )));
            }
        }
        let mut lines = input.lines();
        let header = next_json(&mut lines).await?.ok_or_else(|| invalid("the copy is empty"))?;
        if header["format"] != COPY_FORMAT || header["version"] != COPY_VERSION {
            return Err(invalid(format!(
                "not a {COPY_FORMAT} copy of version {COPY_VERSION} (its first line: {})",
                excerpt(&header)
            )));
        }
        let mut loaded: BTreeMap<String, u64> = BTreeMap::new();
        let mut batch: Vec<Document> = Vec::new();
        let mut batch_collection = String::new();
        let trailer = loop {
            let line = next_json(&mut lines).await?.ok_or_else(|| invalid("the copy ends before its last line"))?;
            if line.get("done").is_some() {
                break line;
            }
            let (Some(collection), Some(document)) = (line["c"].as_str(), line.get("d")) else {
                return Err(invalid(format!("a line that is not a document: {}", excerpt(&line))));
            };
            let document = match Bson::try_from(document.clone()) {
                Ok(Bson::Document(document)) => document,
                _ => return Err(invalid(format!("not an Extended JSON document in `{collection}`"))),
            };
            if collection != batch_collection && !batch.is_empty() {
                self.insert_batch(&batch_collection, &mut batch).await?;
            }
            collection.clone_into(&mut batch_collection);
            batch.push(document);
            *loaded.entry(collection.to_owned()).or_default() += 1;
            if batch.len() >= LOAD_BATCH {
                self.insert_batch(&batch_collection, &mut batch).await?;
            }
        };
        if !batch.is_empty() {
            self.insert_batch(&batch_collection, &mut batch).await?;
        }
        let expected: BTreeMap<String, u64> = serde_json::from_value(trailer["collections"].clone())
            .map_err(|_| invalid("the copy's last line has no collection counts"))?;
        let mut with_empty = loaded.clone();
        for (name, count) in &expected {
            if *count == 0 {
                with_empty.entry(name.clone()).or_default();
            }
        }
        if trailer["done"] != true || with_empty != expected {
            return Err(invalid(format!("the copy's counts {expected:?} differ from its documents {loaded:?}")));
        }
        Ok(CopySummary { database: self.name().to_owned(), collections: expected })
    }

    async fn insert_batch(&self, collection: &str, batch: &mut Vec<Document>) -> Result<(), DocumentsError> {
        self.collection::<Document>(collection).insert_many(std::mem::take(batch)).await?;
        Ok(())
    }
}

async fn write_line<W: AsyncWrite + Unpin>(out: &mut W, value: &Value) -> Result<(), DocumentsError> {
    let mut line = serde_json::to_vec(value).map_err(|error| invalid(error.to_string()))?;
    line.push(b'\n');
    out.write_all(&line).await?;
    Ok(())
}

async fn next_json<R: AsyncBufRead + Unpin>(lines: &mut tokio::io::Lines<R>) -> Result<Option<Value>, DocumentsError> {
    let Some(line) = lines.next_line().await? else { return Ok(None) };
    serde_json::from_str(&line).map(Some).map_err(|_| invalid("a line of the copy is not JSON"))
}

/// The start of a line, for an error message.
fn excerpt(value: &Value) -> String {
    value.to_string().chars().take(120).collect()
}
