//! `manifest.json` of a backup set: what it holds, checked part by part, and authenticated with the backup
//! key so that a changed manifest (a part's hash rewritten to match a changed part) is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::crypt::BackupKey;

/// The manifest's own format version.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// The set's id: its start time, `YYYYMMDDTHHMMSSZ`, so ids sort by time.
    pub id: String,
    pub deployment: String,
    pub cometctl_version: String,
    /// The comet-server image tag the deployment ran.
    pub comet_server_version: String,
    pub target: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub finished_at: u64,
    pub encryption: Encryption,
    pub parts: Vec<Part>,
    /// Stores this set does not hold, each with why.
    pub skipped: Vec<Skipped>,
    /// HMAC-SHA256 of the manifest without this field (see [`Manifest::seal`]).
    #[serde(default)]
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Encryption {
    pub cipher: String,
    pub chunk_bytes: u64,
    /// The backup key's public id (`secrets/backup.key`): which key opens this set.
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Part {
    /// `config`, `tidb`, …
    pub name: String,
    /// The file in the set's folder.
    pub file: String,
    /// Stored (encrypted) bytes and their SHA-256, hex: `backup verify` re-hashes the file.
    pub bytes: u64,
    pub sha256: String,
    /// Plaintext bytes.
    pub plain_bytes: u64,
    /// The store's engine and version, where it has one (`MariaDB 10.11.6`, `TiDB …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The consistency point: the database snapshot's time (ms since the epoch) and schema version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<i64>,
    /// What it holds: rows per table, files, …
    pub items: BTreeMap<String, u64>,
    pub started_at: u64,
    pub finished_at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

impl Manifest {
    /// The bytes the MAC covers: the manifest as JSON with an empty `mac`.
    fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Manifest { mac: String::new(), ..self.clone() };
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    pub fn seal(&mut self, key: &BackupKey) {
        self.mac = key.mac(&self.signed_bytes());
    }

    /// Whether `key` made this manifest's MAC (false for a changed manifest or another key).
    pub fn is_authentic(&self, key: &BackupKey) -> bool {
        key.mac_matches(&self.signed_bytes(), &self.mac)
    }

    pub fn total_bytes(&self) -> u64 {
        self.parts.iter().map(|part| part.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            id: "20261207T070000Z".to_owned(),
            deployment: "chat".to_owned(),
            cometctl_version: "0.1.0".to_owned(),
            comet_server_version: "0.1.0".to_owned(),
            target: "compose".to_owned(),
            started_at: 1,
            finished_at: 2,
            encryption: Encryption { cipher: "AES-256-GCM".to_owned(), chunk_bytes: 65_536, key_id: "ab".to_owned() },
            parts: vec![Part {
                name: "config".to_owned(),
                file: "config.tar.enc".to_owned(),
                bytes: 10,
                sha256: "00".to_owned(),
                plain_bytes: 5,
                engine: None,
                snapshot_at: None,
                schema: None,
                items: BTreeMap::from([("files".to_owned(), 3)]),
                started_at: 1,
                finished_at: 2,
            }],
            skipped: vec![],
            mac: String::new(),
        }
    }

    #[test]
    fn a_sealed_manifest_is_authentic_until_a_field_changes() {
        let key = BackupKey::generate().expect("key");
        let mut sealed = manifest();
        sealed.seal(&key);
        assert!(sealed.is_authentic(&key));
        let read: Manifest = serde_json::from_str(&serde_json::to_string_pretty(&sealed).expect("json")).expect("read");
        assert!(read.is_authentic(&key), "survives being written and read back");
        let mut changed = read.clone();
        changed.parts[0].sha256 = "11".to_owned();
        assert!(!changed.is_authentic(&key));
        assert!(!read.is_authentic(&BackupKey::generate().expect("key")));
    }
}
