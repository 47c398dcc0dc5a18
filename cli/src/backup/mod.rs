//! `cometctl backup` (issue #12): a backup set of the deployment, one encrypted part per store plus `config`,
//! described by an authenticated `manifest.json` (docs/operations/backup.md).
//!
//! ```text
//! parts:  config  cometctl.yaml, history.jsonl, secrets/ (not the backup key), tls/, rendered/ → tar
//!         tidb    `comet-server dump` run in a role's container (one snapshot of every table) → JSON lines
//!         mongodb `comet-server dump documents` likewise, when MongoDB is deployed (each collection by one cursor)
//!         redis   `redis-cli --rdb -` per primary (kept; not loaded on restore: rebuilt by the gateways)
//!   each  → crypt::Encryptor (AES-256-GCM chunks) → target::Hashed (size, SHA-256) → <target>/<id>.partial/
//! then    manifest (counts, consistency point, hashes) sealed with the key → <id>/ (complete)
//! verify  manifest authentic → every part re-hashed → every chunk decrypts → the dump's own counts agree
//! ```
//!
//! Kafka (topic configurations and consumer offsets) is recorded as skipped with the reason. Sets go to a
//! folder or an S3-compatible bucket (`target`).

mod access;
mod copies;
pub mod crypt;
mod drill;
mod listing;
pub mod manifest;
pub mod prune;
mod restore;
mod take;
mod target;
mod verify;

pub use access::{existing_key, key, location};
pub use drill::{Drill, DrillRequest, DrillStep, drill};
pub use listing::ListedView;
pub use restore::{RestoreRequest, Restored, RestoredPart, restore};
pub use take::{PART_NAMES, Request, create, human_bytes, id_at};
pub use target::{Listed, Location, Target};
pub use verify::{PartCheck, Verification, verify};
