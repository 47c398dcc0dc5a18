//! Taking a backup set: each part streamed through encryption and hashing into the target, then the
//! manifest sealed.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context as _, Result, bail};

use super::access::{key, role_container};
use super::copies::{CopyKind, DATABASE, DOCUMENTS};
use super::crypt::{BackupKey, CHUNK_BYTES, Encryptor};
use super::manifest::{Encryption, MANIFEST_VERSION, Manifest, Part, Skipped};
use super::target::{self, Target};
use crate::checks::stores;
use crate::context::Context;
use crate::domain::ServiceKey;
use crate::error::Refusal;
use crate::plan::observed::ExecRequest;
use crate::printer::ProgressLine;

/// The parts a set can hold, as `--only` names them.
pub const PART_NAMES: [&str; 5] = ["tidb", "redis", "kafka", "mongodb", "config"];

/// What `cometctl backup` was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Parts to take (empty: every part this version can take).
    pub only: Vec<String>,
    /// The target, a folder or `s3://bucket/prefix` (default: the spec's `backup.destination`).
    pub to: Option<String>,
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
    let target = Target::open(&super::access::location(context, request.to.as_deref())?)?;
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
        let taken = match name {
            "config" => {
                line.set("archiving the deployment folder");
                vec![config_part(context, set, key)?]
            }
            "tidb" => {
                line.set("comet-server dump");
                vec![copy_part(context, set, key, &DATABASE, &line).with_context(|| "the tidb part")?]
            }
            "mongodb" if spec.plan.deploys(ServiceKey::Mongodb) => {
                line.set("comet-server dump documents");
                vec![copy_part(context, set, key, &DOCUMENTS, &line).with_context(|| "the mongodb part")?]
            }
            "redis" => {
                line.set("redis-cli --rdb");
                redis_parts(context, set, key, &line).with_context(|| "the redis part")?
            }
            _ => vec![],
        };
        if taken.is_empty() {
            let reason = skip_reason(name, spec);
            line.finish(&format!("skipped: {reason}"));
            manifest.skipped.push(Skipped { name: name.to_owned(), reason });
        }
        if let (Some(first), Some(last)) = (taken.first(), taken.last()) {
            let bytes = taken.iter().map(|part| part.bytes).sum();
            line.finish(&format!("{} in {} s", human_bytes(bytes), last.finished_at - first.started_at));
        }
        manifest.parts.extend(taken);
    }
    Ok(())
}

fn skip_reason(name: &str, spec: &crate::spec::Spec) -> String {
    match name {
        "redis" => "no Redis node runs".to_owned(),
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

fn config_part(context: &Context<'_>, set: &target::NewSet, key: &BackupKey) -> Result<Part> {
    let started_at = context.clock.now_unix_seconds();
    let file = "config.tar.enc";
    let files = context.folder.config_files()?;
    let sink = set.part(file)?;
    let mut archive = tar::Builder::new(Ends::new(Encryptor::new(sink, key)?));
    archive.mode(tar::HeaderMode::Deterministic);
    for (name, path) in &files {
        archive.append_path_with_name(path, name).with_context(|| format!("archiving {name}"))?;
    }
    let archived = archive.into_inner()?;
    let (bytes, sha256) = archived.inner.finish()?.finish()?;
    Ok(Part {
        name: "config".to_owned(),
        file: file.to_owned(),
        bytes,
        sha256,
        plain_bytes: archived.bytes,
        engine: None,
        snapshot_at: None,
        schema: None,
        items: BTreeMap::from([("files".to_owned(), files.len() as u64)]),
        started_at,
        finished_at: context.clock.now_unix_seconds(),
    })
}

/// Shows on a progress line how much of a part has streamed by (every MiB).
struct Metered<'a, W: Write> {
    inner: W,
    line: &'a ProgressLine,
    what: String,
    bytes: u64,
    shown: u64,
}

impl<'a, W: Write> Metered<'a, W> {
    fn new(inner: W, line: &'a ProgressLine, what: String) -> Metered<'a, W> {
        Metered { inner, line, what, bytes: 0, shown: 0 }
    }
}

impl<W: Write> Write for Metered<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.bytes += written as u64;
        if self.bytes >= self.shown + (1 << 20) {
            self.shown = self.bytes;
            self.line.set(&format!("{}: {} streamed", self.what, human_bytes(self.bytes)));
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Counts what passes through it and keeps its first line and last complete line (the dump's header and
/// trailer), without holding the rest.
pub(super) struct Ends<W: Write> {
    inner: W,
    first: Vec<u8>,
    first_done: bool,
    current: Vec<u8>,
    pub(super) last: Vec<u8>,
    bytes: u64,
}

/// A line longer than this is not a header or trailer worth keeping.
const END_LINE_LIMIT: usize = 1 << 20;

impl<W: Write> Ends<W> {
    pub(super) fn new(inner: W) -> Ends<W> {
        Ends { inner, first: Vec::new(), first_done: false, current: Vec::new(), last: Vec::new(), bytes: 0 }
    }

    /// The start of what passed (its first line, or as much of it as was kept).
    pub(super) fn head(&self) -> &[u8] {
        if self.first_done { &self.first } else { &self.current }
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

/// A part that is a copy comet-server writes in a running role's container (the database, or MongoDB's).
fn copy_part(
    context: &Context<'_>,
    set: &target::NewSet,
    key: &BackupKey,
    kind: &CopyKind,
    line: &ProgressLine,
) -> Result<Part> {
    let spec = context.spec()?;
    let container = role_container(context, spec)?;
    let started_at = context.clock.now_unix_seconds();
    let sink = set.part(kind.file)?;
    let command = kind.command("dump");
    let mut ends = Ends::new(Metered::new(Encryptor::new(sink, key)?, line, command.join(" ")));
    let ran = context.engine()?.exec_streaming(&container.id, &command, None, &mut ends)?;
    if ran.exit_code != Some(0) {
        bail!(
            "`{}` in {} exited with {:?}: {}",
            command.join(" "),
            container.name,
            ran.exit_code,
            ran.stderr.lines().last().unwrap_or("no output")
        );
    }
    let header: serde_json::Value = serde_json::from_slice(&ends.first).context("the copy's first line")?;
    let trailer: serde_json::Value = serde_json::from_slice(&ends.last).context("the copy's last line")?;
    if trailer["done"] != true {
        bail!("the {} copy from {} ended before its last line", kind.part, container.name);
    }
    let items: BTreeMap<String, u64> =
        serde_json::from_value(trailer[kind.counts].clone()).context("the copy's counts")?;
    let (engine, snapshot_at, schema) = kind.described(&header);
    let plain_bytes = ends.bytes;
    let (bytes, sha256) = ends.inner.inner.finish()?.finish()?;
    Ok(Part {
        name: kind.part.to_owned(),
        file: kind.file.to_owned(),
        bytes,
        sha256,
        plain_bytes,
        engine,
        snapshot_at,
        schema,
        items,
        started_at,
        finished_at: context.clock.now_unix_seconds(),
    })
}

/// One part per Redis primary: its RDB (`redis-cli --rdb -`, a point-in-time snapshot forked by the server),
/// with its key count. Replicas hold what their primary does and are left out.
fn redis_parts(context: &Context<'_>, set: &target::NewSet, key: &BackupKey, line: &ProgressLine) -> Result<Vec<Part>> {
    let spec = context.spec()?;
    let engine = context.engine()?;
    let mut parts = Vec::new();
    for container in super::access::store_containers(context, spec, ServiceKey::Redis)? {
        let identity = engine.exec_all(
            &[ExecRequest { container: container.id.clone(), command: stores::commands::redis_identity() }],
            std::time::Duration::from_secs(30),
        );
        let answer = identity.into_iter().next().transpose()?.filter(|answer| answer.exit_code == Some(0));
        let answer = answer.ok_or_else(|| anyhow::anyhow!("{} did not answer ROLE / DBSIZE", container.name))?;
        let mut lines = answer.output.lines();
        let (role, keys, version) = (lines.next().unwrap_or_default(), lines.next(), lines.next());
        if role.trim() != "master" {
            continue;
        }
        let keys: u64 = keys.and_then(|keys| keys.trim().parse().ok()).unwrap_or_default();
        let started_at = context.clock.now_unix_seconds();
        let file = format!("{}.rdb.enc", container.service);
        let what = format!("{}: redis-cli --rdb", container.service);
        let mut ends = Ends::new(Metered::new(Encryptor::new(set.part(&file)?, key)?, line, what));
        let ran = engine.exec_streaming(&container.id, &stores::commands::redis_rdb(), None, &mut ends)?;
        if ran.exit_code != Some(0) || !ends.head().starts_with(b"REDIS") {
            bail!(
                "`redis-cli --rdb` in {} exited with {:?} and no RDB: {}",
                container.name,
                ran.exit_code,
                ran.stderr.lines().last().unwrap_or("no output")
            );
        }
        let plain_bytes = ends.bytes;
        let (bytes, sha256) = ends.inner.inner.finish()?.finish()?;
        parts.push(Part {
            name: "redis".to_owned(),
            file,
            bytes,
            sha256,
            plain_bytes,
            engine: version.map(|version| format!("Redis {}", version.trim())),
            snapshot_at: None,
            schema: None,
            items: BTreeMap::from([("keys".to_owned(), keys)]),
            started_at,
            finished_at: context.clock.now_unix_seconds(),
        });
    }
    Ok(parts)
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
