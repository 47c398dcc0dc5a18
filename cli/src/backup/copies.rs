//! The logical copies comet-server writes (`dump`) and reads (`load`) inside a running role's container: the
//! relational database (the `tidb` part) and, when MongoDB is deployed, its database (`mongodb`, `dump
//! documents`). Both are JSON lines with a header and a trailer of counts; this is what differs between them.

/// One kind of copy.
#[derive(Debug, Clone, Copy)]
pub(super) struct CopyKind {
    /// The part's name in a set.
    pub part: &'static str,
    /// Its file in the set.
    pub file: &'static str,
    /// The words after `comet-server dump` / `load`.
    pub words: &'static [&'static str],
    /// The trailer's (and load summary's) field of counts per table or collection.
    pub counts: &'static str,
    /// What is counted, for messages.
    pub items: &'static str,
}

pub(super) const DATABASE: CopyKind =
    CopyKind { part: "tidb", file: "tidb.jsonl.enc", words: &[], counts: "tables", items: "rows" };
pub(super) const DOCUMENTS: CopyKind = CopyKind {
    part: "mongodb",
    file: "mongodb.jsonl.enc",
    words: &["documents"],
    counts: "collections",
    items: "documents",
};

impl CopyKind {
    /// `comet-server <verb> [words]`.
    pub fn command(&self, verb: &str) -> Vec<String> {
        ["comet-server", verb].into_iter().chain(self.words.iter().copied()).map(str::to_owned).collect()
    }

    /// The engine, consistency point and schema the copy's header names: `(engine, snapshot_at, schema)`.
    pub fn described(&self, header: &serde_json::Value) -> (Option<String>, Option<i64>, Option<i64>) {
        match self.part {
            "mongodb" => (
                header["database"].as_str().map(|database| format!("MongoDB database {database}")),
                header["dumpedAt"].as_i64(),
                header["version"].as_i64(),
            ),
            _ => {
                (header["engine"].as_str().map(str::to_owned), header["snapshotAt"].as_i64(), header["schema"].as_i64())
            }
        }
    }

    /// The kind of a set's part, when it is a copy.
    pub fn of_part(name: &str) -> Option<CopyKind> {
        [DATABASE, DOCUMENTS].into_iter().find(|kind| kind.part == name)
    }
}
