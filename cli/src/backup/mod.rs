//! `cometctl backup` (issue #12): a backup set of the deployment, one encrypted part per store plus `config`,
//! described by an authenticated `manifest.json` (docs/operations/backup.md).
//!
//! ```text
//! parts:  config  cometctl.yaml, history.jsonl, secrets/ (not the backup key), tls/, rendered/ → tar
//!         tidb    `comet-server dump` run in a role's container (one snapshot of every table) → JSON lines
//!   each  → crypt::Encryptor (AES-256-GCM chunks) → target::Hashed (size, SHA-256) → <target>/<id>.partial/
//! then    manifest (counts, consistency point, hashes) sealed with the key → <id>/ (complete)
//! verify  manifest authentic → every part re-hashed → every chunk decrypts → the dump's own counts agree
//! ```
//!
//! Redis (presence and typing: rebuilt by the gateways), Kafka (topic configurations and consumer offsets)
//! and MongoDB are recorded as skipped with the reason; S3 targets, `prune`, `restore` and the restore drill
//! are the rest of the issue.

pub mod crypt;
pub mod manifest;
mod restore;
mod target;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::context::Context;
use crate::domain::{ServiceKey, Target};
use crate::error::Refusal;
use crate::plan::observed::ObservedContainer;
use crypt::{BackupKey, CHUNK_BYTES, Encryptor};
use manifest::{Encryption, MANIFEST_VERSION, Manifest, Part, Skipped};
pub use restore::{RestoreRequest, Restored, RestoredPart, restore};
pub use target::{Listed, LocalTarget};

/// The parts a set can hold, as `--only` names them.
pub const PART_NAMES: [&str; 5] = ["tidb", "redis", "kafka", "mongodb", "config"];

/// What `cometctl backup` was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Parts to take (empty: every part this version can take).
    pub only: Vec<String>,
    /// The target folder (default `<dir>/backups`).
    pub to: Option<PathBuf>,
}

/// The default folder of backup sets.
pub fn default_target(context: &Context<'_>) -> PathBuf {
    context.folder.root().join("backups")
}

/// The deployment's backup key; made (and announced) when the folder has none.
pub fn key(context: &Context<'_>) -> Result<BackupKey> {
    let (text, created) = context.folder.backup_key(|| Ok(BackupKey::generate()?.to_hex()))?;
    if created {
        context.printer.warning(&format!(
            "made the backup key {}/secrets/backup.key: keep a copy outside this host and outside the backups \
             (a backup is useless without it, and it is never inside a backup set)",
            context.folder.root().display()
        ));
    }
    BackupKey::from_hex(&text).context("secrets/backup.key")
}

/// The deployment's backup key, which must exist (verifying or restoring never makes one).
pub fn existing_key(context: &Context<'_>) -> Result<BackupKey> {
    let (text, path) = context.folder.existing_backup_key()?;
    let text = text.ok_or_else(|| {
        Refusal(format!(
            "no backup key at {}: put there the copy of the key you kept (the one that made the set)",
            path.display()
        ))
    })?;
    BackupKey::from_hex(&text).with_context(|| path.display().to_string())
}

/// A set id from a time: `YYYYMMDDTHHMMSSZ` (UTC).
pub fn id_at(unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = crate::plan::history::civil_from_days(days);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", seconds / 3_600, (seconds % 3_600) / 60, seconds % 60)
}

fn wanted(request: &Request) -> Result<Vec<&'static str>> {
    for name in &request.only {
        if !PART_NAMES.contains(&name.as_str()) {
            return Err(Refusal(format!("--only: unknown part `{name}` (parts: {})", PART_NAMES.join(", "))).into());
        }
    }
    let chosen: Vec<&'static str> = PART_NAMES
        .iter()
        .copied()
        .filter(|name| request.only.is_empty() || request.only.iter().any(|only| only == name))
        .collect();
    Ok(chosen)
}

/// Takes a backup set; returns its manifest.
pub fn create(context: &Context<'_>, request: &Request) -> Result<Manifest> {
    let spec = context.spec()?;
    let parts = wanted(request)?;
    let key = key(context)?;
    let target = LocalTarget::new(&request.to.clone().unwrap_or_else(|| default_target(context)));
    let started_at = context.clock.now_unix_seconds();
    let id = id_at(started_at);
    let set = target.begin(&id)?;
    let progress = context.printer.progress();
    let mut manifest = Manifest {
        version: MANIFEST_VERSION,
        id: id.clone(),
        deployment: spec.name.as_str().to_owned(),
        cometctl_version: env!("CARGO_PKG_VERSION").to_owned(),
        comet_server_version: spec.images.comet.tag.clone(),
        target: spec.target.to_string(),
        started_at,
        finished_at: started_at,
        encryption: Encryption { cipher: "AES-256-GCM".to_owned(), chunk_bytes: CHUNK_BYTES as u64, key_id: key.id() },
        parts: Vec::new(),
        skipped: Vec::new(),
        mac: String::new(),
    };
    if let Err(error) = take_parts(context, &set, &key, &parts, &progress, &mut manifest) {
        set.abandon();
        return Err(error);
    }
    manifest.finished_at = context.clock.now_unix_seconds();
    manifest.seal(&key);
    set.finish(&manifest)?;
    Ok(manifest)
}

/// Takes each part into `set`, recording it (or why it was skipped) in `manifest`.
fn take_parts(
    context: &Context<'_>,
    set: &target::NewSet,
    key: &BackupKey,
    parts: &[&'static str],
    progress: &crate::printer::Progress,
    manifest: &mut Manifest,
) -> Result<()> {
    let spec = context.spec()?;
    for &name in parts {
        let line = progress.line(name);
        let part = match name {
            "config" => {
                line.set("archiving the deployment folder");
                Some(config_part(context, set, key)?)
            }
            "tidb" => {
                line.set("comet-server dump");
                Some(database_part(context, set, key).with_context(|| "the tidb part")?)
            }
            _ => None,
        };
        match part {
            Some(part) => {
                line.finish(&format!("{} in {} s", human_bytes(part.bytes), part.finished_at - part.started_at));
                manifest.parts.push(part);
            }
            None => {
                let reason = skip_reason(name, spec);
                line.finish(&format!("skipped: {reason}"));
                manifest.skipped.push(Skipped { name: name.to_owned(), reason });
            }
        }
    }
    Ok(())
}

fn skip_reason(name: &str, spec: &crate::spec::Spec) -> String {
    match name {
        "redis" => "Redis holds presence and typing only; the gateways rebuild it (restore is not needed)".to_owned(),
        "kafka" => "topic configurations and consumer-group offsets are not backed up yet; every event is in the \
                    database's outbox until published"
            .to_owned(),
        "mongodb" if !spec.plan.deploys(ServiceKey::Mongodb) => "MongoDB is not deployed".to_owned(),
        _ => "not backed up yet by this version".to_owned(),
    }
}

pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..1_024 => format!("{bytes} B"),
        1_024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1_024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// Counts what passes through it into `inner`.
struct Counted<W: Write> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn config_part(context: &Context<'_>, set: &target::NewSet, key: &BackupKey) -> Result<Part> {
    let started_at = context.clock.now_unix_seconds();
    let file = "config.tar.enc";
    let files = context.folder.config_files()?;
    let sink = set.part(file)?;
    let mut archive = tar::Builder::new(Counted { inner: Encryptor::new(sink, key)?, bytes: 0 });
    archive.mode(tar::HeaderMode::Deterministic);
    for (name, path) in &files {
        archive.append_path_with_name(path, name).with_context(|| format!("archiving {name}"))?;
    }
    let counted = archive.into_inner()?;
    let (bytes, sha256) = counted.inner.finish()?.finish()?;
    Ok(Part {
        name: "config".to_owned(),
        file: file.to_owned(),
        bytes,
        sha256,
        plain_bytes: counted.bytes,
        engine: None,
        snapshot_at: None,
        schema: None,
        items: BTreeMap::from([("files".to_owned(), files.len() as u64)]),
        started_at,
        finished_at: context.clock.now_unix_seconds(),
    })
}

/// Keeps the first line and the last complete line of what passes through it (the dump's header and
/// trailer), without holding the rest.
struct Ends<W: Write> {
    inner: W,
    first: Vec<u8>,
    first_done: bool,
    current: Vec<u8>,
    last: Vec<u8>,
    bytes: u64,
}

/// A line longer than this is not a header or trailer worth keeping.
const END_LINE_LIMIT: usize = 1 << 20;

impl<W: Write> Ends<W> {
    fn new(inner: W) -> Ends<W> {
        Ends { inner, first: Vec::new(), first_done: false, current: Vec::new(), last: Vec::new(), bytes: 0 }
    }
}

impl<W: Write> Write for Ends<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        for &byte in &bytes[..written] {
            if byte == b'\n' {
                if !self.first_done {
                    self.first = std::mem::take(&mut self.current);
                    self.first_done = true;
                } else {
                    self.last = std::mem::take(&mut self.current);
                }
                self.current.clear();
            } else if self.current.len() < END_LINE_LIMIT {
                self.current.push(byte);
            }
        }
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A running container of a comet-server role (they all reach the database with its credentials).
fn role_container(context: &Context<'_>, spec: &crate::spec::Spec) -> Result<ObservedContainer> {
    let engine = context.engine()?;
    let deployment = spec.name.as_str();
    // Where the deployment runs, as the Engine says (the one place that decides it).
    let target = crate::deploy::backend_for(context, crate::deploy::Choice::Observed)?.target();
    let observed =
        if target == Target::Swarm { engine.task_containers(deployment)? } else { engine.containers(deployment)? };
    let roles = [ServiceKey::Api, ServiceKey::Relay, ServiceKey::Gateway, ServiceKey::Webhooks];
    observed
        .into_iter()
        .find(|container| container.running && roles.iter().any(|role| role.key() == container.service))
        .ok_or_else(|| {
            Refusal(format!(
                "no running comet-server container of deployment `{deployment}` to take the database copy in: \
                 `cometctl status` shows what runs; deploy first, or back up only the config (--only config)"
            ))
            .into()
        })
}

fn database_part(context: &Context<'_>, set: &target::NewSet, key: &BackupKey) -> Result<Part> {
    let spec = context.spec()?;
    let container = role_container(context, spec)?;
    let started_at = context.clock.now_unix_seconds();
    let file = "tidb.jsonl.enc";
    let sink = set.part(file)?;
    let mut ends = Ends::new(Encryptor::new(sink, key)?);
    let command = ["comet-server".to_owned(), "dump".to_owned()];
    let ran = context.engine()?.exec_streaming(&container.id, &command, None, &mut ends)?;
    if ran.exit_code != Some(0) {
        bail!(
            "`comet-server dump` in {} exited with {:?}: {}",
            container.name,
            ran.exit_code,
            ran.stderr.lines().last().unwrap_or("no output")
        );
    }
    let header: serde_json::Value = serde_json::from_slice(&ends.first).context("the copy's first line")?;
    let trailer: serde_json::Value = serde_json::from_slice(&ends.last).context("the copy's last line")?;
    if trailer["done"] != true {
        bail!("the database copy from {} ended before its last line", container.name);
    }
    let items: BTreeMap<String, u64> =
        serde_json::from_value(trailer["tables"].clone()).context("the copy's table counts")?;
    let plain_bytes = ends.bytes;
    let (bytes, sha256) = ends.inner.finish()?.finish()?;
    Ok(Part {
        name: "tidb".to_owned(),
        file: file.to_owned(),
        bytes,
        sha256,
        plain_bytes,
        engine: header["engine"].as_str().map(str::to_owned),
        snapshot_at: header["snapshotAt"].as_i64(),
        schema: header["schema"].as_i64(),
        items,
        started_at,
        finished_at: context.clock.now_unix_seconds(),
    })
}

/// Every set of the target, oldest first.
pub fn list(target: &Path) -> Result<Vec<Listed>> {
    LocalTarget::new(target).list()
}

/// A listed set as `backup list --output json` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedView {
    pub id: String,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub parts: Vec<String>,
    pub skipped: Vec<String>,
    pub bytes: u64,
    pub key_id: Option<String>,
}

impl From<&Listed> for ListedView {
    fn from(listed: &Listed) -> ListedView {
        match listed {
            Listed::Complete(manifest) => ListedView {
                id: manifest.id.clone(),
                complete: true,
                reason: None,
                started_at: Some(manifest.started_at),
                finished_at: Some(manifest.finished_at),
                parts: manifest.parts.iter().map(|part| part.name.clone()).collect(),
                skipped: manifest.skipped.iter().map(|skipped| skipped.name.clone()).collect(),
                bytes: manifest.total_bytes(),
                key_id: Some(manifest.encryption.key_id.clone()),
            },
            Listed::Incomplete { id, why } => ListedView {
                id: id.clone(),
                complete: false,
                reason: Some(why.clone()),
                started_at: None,
                finished_at: None,
                parts: Vec::new(),
                skipped: Vec::new(),
                bytes: 0,
                key_id: None,
            },
        }
    }
}

/// One finding of `backup verify`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartCheck {
    pub part: String,
    pub ok: bool,
    pub detail: String,
}

/// What `backup verify` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub id: String,
    pub ok: bool,
    pub checks: Vec<PartCheck>,
}

/// Checks set `id`: the manifest is authentic (this key, unchanged), every part has its size and SHA-256,
/// every chunk decrypts, and the database part's own counts agree with the manifest's.
pub fn verify(target: &Path, id: &str, key: &BackupKey) -> Result<Verification> {
    let target = LocalTarget::new(target);
    let manifest = target.manifest(id)?;
    let mut checks = Vec::new();
    let authentic = manifest.is_authentic(key);
    checks.push(PartCheck {
        part: "manifest".to_owned(),
        ok: authentic,
        detail: if authentic {
            format!("authentic (key {})", key.id())
        } else if manifest.encryption.key_id != key.id() {
            format!("made with key {}, not this deployment's key {}", manifest.encryption.key_id, key.id())
        } else {
            "changed since it was written: its MAC does not match".to_owned()
        },
    });
    for part in &manifest.parts {
        checks.push(verify_part(&target, &manifest, part, key));
    }
    let ok = checks.iter().all(|check| check.ok);
    Ok(Verification { id: manifest.id, ok, checks })
}

fn verify_part(target: &LocalTarget, manifest: &Manifest, part: &Part, key: &BackupKey) -> PartCheck {
    let check = |ok: bool, detail: String| PartCheck { part: part.name.clone(), ok, detail };
    let mut hashed = target::Hashed::new(std::io::sink());
    let stored = target.open_part(&manifest.id, &part.file).and_then(|mut file| {
        std::io::copy(&mut file, &mut hashed)?;
        Ok(())
    });
    if let Err(error) = stored {
        return check(false, format!("{}: {error:#}", part.file));
    }
    let (bytes, sha256) = match hashed.finish() {
        Ok(done) => done,
        Err(error) => return check(false, error.to_string()),
    };
    if bytes != part.bytes || sha256 != part.sha256 {
        return check(false, format!("{} differs from the manifest (size or SHA-256): it was changed", part.file));
    }
    let mut plain = Ends::new(std::io::sink());
    let opened = target
        .open_part(&manifest.id, &part.file)
        .map_err(|error| format!("{error:#}"))
        .and_then(|mut file| crypt::decrypt(&mut file, key, &mut plain).map_err(|error| error.to_string()));
    match opened {
        Err(error) => check(false, format!("{}: {error}", part.file)),
        Ok(plain_bytes) if plain_bytes != part.plain_bytes => {
            check(false, format!("decrypts to {plain_bytes} bytes, the manifest says {}", part.plain_bytes))
        }
        Ok(_) if part.name == "tidb" => {
            let counts = serde_json::from_slice::<serde_json::Value>(&plain.last)
                .ok()
                .and_then(|trailer| serde_json::from_value::<BTreeMap<String, u64>>(trailer["tables"].clone()).ok());
            match counts {
                Some(counts) if counts == part.items => check(
                    true,
                    format!(
                        "{} rows in {} tables, hash and every chunk good",
                        counts.values().sum::<u64>(),
                        counts.len()
                    ),
                ),
                _ => check(false, "the copy's own counts differ from the manifest's".to_owned()),
            }
        }
        Ok(plain_bytes) => check(true, format!("{} ({plain_bytes} bytes plain), hash and every chunk good", part.file)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_utc_times_that_sort() {
        assert_eq!(id_at(0), "19700101T000000Z");
        assert_eq!(id_at(951_782_400), "20000229T000000Z");
        assert_eq!(id_at(1_796_625_296), "20261207T063456Z");
        assert!(id_at(1_796_625_296) < id_at(1_796_625_297));
    }

    #[test]
    fn only_names_known_parts() {
        let request = |only: &[&str]| Request { only: only.iter().map(|name| (*name).to_owned()).collect(), to: None };
        assert_eq!(wanted(&request(&[])).expect("all"), PART_NAMES.to_vec());
        assert_eq!(wanted(&request(&["config"])).expect("one"), vec!["config"]);
        assert!(wanted(&request(&["tidb", "nope"])).is_err());
    }
}
