//! What a deploy must do, as pure data: the desired state of a rendered compose.yaml (`compose`) or
//! stack.yaml (`swarm`), the changes from the observed state (`observed`, plain data the Engine client fills
//! in), the labels that tie the two together, the change lines `diff` and `deploy` show, and the history
//! record. Never imports `engine`, `folder` or `printer`, reads no file and no clock: what it needs from
//! outside (file digests, image ids, the time) is passed in.

pub mod compose;
pub mod history;
pub mod labels;
pub mod lines;
pub mod observed;
pub mod status;
pub mod swarm;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The lowercase hex SHA-256 of `bytes`: configuration hashes, content-named secrets and configs, image ids.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The SHA-256 of a JSON value in canonical form: object keys sorted at every level, so the hash does not
/// depend on the order values were inserted in. (serde_json keeps insertion order when any crate of the build
/// enables its `preserve_order` feature — the MongoDB driver's bson does — and labels come from hash maps.)
pub fn json_hash(value: &serde_json::Value) -> Result<String, String> {
    fn canonical(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(key, item)| (key.clone(), canonical(item))).collect(),
                )
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let text = serde_json::to_string(&canonical(value)).map_err(|error| error.to_string())?;
    Ok(sha256_hex(text.as_bytes()))
}

/// How `deploy` knows a container or service is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// Its health check passes.
    Healthy,
    /// It runs (no health check).
    Running,
    /// It exited 0 (a one-shot job).
    Completed,
}

/// Why a container is (re)created or a service updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Missing,
    ConfigurationChanged,
    ImageChanged,
    NotRunning,
    JobFailed,
    /// A rolling restart asked for it (`rolling-restart` playbook step).
    Restart,
}

impl Reason {
    pub fn describe(&self) -> &'static str {
        match self {
            Reason::Missing => "new",
            Reason::ConfigurationChanged => "configuration changed",
            Reason::ImageChanged => "image changed",
            Reason::NotRunning => "not running",
            Reason::JobFailed => "last run failed",
            Reason::Restart => "restart",
        }
    }
}
