//! `cometctl restore ID`: a backup set put back, after the whole set was verified (docs/operations/backup.md,
//! "Restoring"). `config` writes the deployment folder's files back (refusing to overwrite a different one
//! without `--yes`); `tidb` streams the decrypted copy into `comet-server load` inside a running role container
//! (the database must be empty: a fresh deployment) and checks every table's count against the manifest;
//! `mongodb` does the same with `comet-server load documents` into an empty MongoDB database.

use std::collections::BTreeMap;
use std::io::Read as _;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::access::{existing_key, role_container};
use super::copies::{CopyKind, DATABASE, DOCUMENTS};
use super::crypt::{self, BackupKey};
use super::manifest::{Manifest, Part};
use super::target::{Location, Target};
use super::verify::verify;
use crate::context::Context;
use crate::error::{CheckFailed, Refusal};

/// What `cometctl restore` was asked for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub id: String,
    /// The folder of backup sets (default `<dir>/backups`).
    pub from: Location,
    /// Parts to restore (empty: every part of the set).
    pub only: Vec<String>,
    /// Overwrite deployment-folder files that differ from the set's.
    pub yes: bool,
}

/// What was restored.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    pub id: String,
    pub parts: Vec<RestoredPart>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoredPart {
    pub part: String,
    pub detail: String,
}

pub fn restore(context: &Context<'_>, request: &RestoreRequest) -> Result<Restored> {
    let key = existing_key(context)?;
    let target = Target::open(&request.from)?;
    let verification = verify(&target, &request.id, &key)?;
    if !verification.ok {
        let failed: Vec<String> = verification
            .checks
            .iter()
            .filter(|check| !check.ok)
            .map(|check| format!("{}: {}", check.part, check.detail))
            .collect();
        return Err(Refusal(format!(
            "backup set {} does not verify, nothing restored: {}",
            request.id,
            failed.join("; ")
        ))
        .into());
    }
    let manifest = target.manifest(&request.id)?;
    for name in &request.only {
        if !manifest.parts.iter().any(|part| &part.name == name) {
            return Err(Refusal(format!("backup set {} has no `{name}` part", request.id)).into());
        }
    }
    let chosen = |part: &&Part| request.only.is_empty() || request.only.contains(&part.name);
    let mut restored = Vec::new();
    // The folder first (a fresh host needs its spec and secrets to deploy), then the database.
    for part in manifest.parts.iter().filter(chosen).filter(|part| part.name == "config") {
        restored.push(restore_config(context, &target, &manifest, part, &key, request.yes)?);
    }
    for kind in [DATABASE, DOCUMENTS] {
        for part in manifest.parts.iter().filter(chosen).filter(|part| part.name == kind.part) {
            restored.push(restore_copy(context, &target, &manifest, part, &key, &kind)?);
        }
    }
    if manifest.parts.iter().filter(chosen).any(|part| part.name == "redis") {
        restored.push(RestoredPart {
            part: "redis".to_owned(),
            detail: "not loaded: presence, typing and caches are rebuilt by the gateways and clients; to load the RDB \
                     anyway, see docs/operations/backup.md"
                .to_owned(),
        });
    }
    let record = serde_json::json!({
        "time": crate::plan::history::rfc3339(context.clock.now_unix_seconds()),
        "action": "restore",
        "backup": manifest.id,
        "parts": restored.iter().map(|part| part.part.clone()).collect::<Vec<_>>(),
        "result": "ok",
    });
    context.folder.append_history(&record)?;
    Ok(Restored { id: manifest.id, parts: restored })
}

fn plaintext(target: &Target, manifest: &Manifest, part: &Part, key: &BackupKey) -> Result<Vec<u8>> {
    let mut plain = Vec::new();
    crypt::decrypt(&mut target.open_part(&manifest.id, &part.file)?, key, &mut plain)
        .with_context(|| format!("decrypting {}", part.file))?;
    Ok(plain)
}

fn restore_config(
    context: &Context<'_>,
    target: &Target,
    manifest: &Manifest,
    part: &Part,
    key: &BackupKey,
    overwrite: bool,
) -> Result<RestoredPart> {
    // The folder's files are small (the spec, secrets, certificates, rendered configuration): read whole.
    let plain = plaintext(target, manifest, part, key)?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(plain.as_slice());
    for entry in archive.entries().context("reading the config part")? {
        let mut entry = entry.context("reading the config part")?;
        let name = entry.path().context("a name in the config part")?.to_string_lossy().into_owned();
        if name.starts_with('/') || name.split('/').any(|piece| piece == "..") {
            bail!("the config part names `{name}`, outside the deployment folder: refused");
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).context("reading the config part")?;
        files.insert(name, bytes);
    }
    let mut differing = Vec::new();
    for (name, bytes) in &files {
        if let Some(existing) = context.folder.read_existing(name)?
            && &existing != bytes
        {
            differing.push(name.clone());
        }
    }
    if !differing.is_empty() && !overwrite {
        return Err(Refusal(format!(
            "restoring would overwrite {} file(s) of {} that differ from the backup ({}): add --yes to overwrite \
             them, nothing was written",
            differing.len(),
            context.folder.root().display(),
            differing.join(", ")
        ))
        .into());
    }
    for (name, bytes) in &files {
        context.folder.restore_file(name, bytes)?;
    }
    Ok(RestoredPart {
        part: "config".to_owned(),
        detail: format!("{} files written ({} replaced)", files.len(), differing.len()),
    })
}

/// A copy streamed into `comet-server load` (the database, or MongoDB's with `load documents`) in a running
/// role's container, and its counts checked against the manifest.
fn restore_copy(
    context: &Context<'_>,
    target: &Target,
    manifest: &Manifest,
    part: &Part,
    key: &BackupKey,
    kind: &CopyKind,
) -> Result<RestoredPart> {
    let spec = context.spec()?;
    let container = role_container(context, spec)?;
    // The decrypted copy streams through a pipe: a thread decrypts into it, the Engine reads it into stdin.
    let (reader, mut writer) = std::io::pipe().context("a pipe")?;
    let mut stored = target.open_part(&manifest.id, &part.file)?;
    let key = key.clone();
    let decrypting = std::thread::spawn(move || crypt::decrypt(&mut stored, &key, &mut writer));
    let command = kind.command("load");
    let mut summary = Vec::new();
    let ran = context.engine()?.exec_streaming(&container.id, &command, Some(Box::new(reader)), &mut summary)?;
    let decrypted = decrypting.join().map_err(|_| anyhow::anyhow!("the decrypting thread panicked"))?;
    if ran.exit_code != Some(0) {
        let last = ran.stderr.lines().last().unwrap_or("no output").to_owned();
        if last.contains("not empty") || last.contains("schema version") || last.contains("already holds documents") {
            return Err(Refusal(format!(
                "the {} of deployment `{}` is not a fresh one, nothing was loaded ({last}): restore it into a fresh \
                 deployment (`cometctl destroy --volumes`, then `cometctl deploy`)",
                kind.part,
                spec.name.as_str()
            ))
            .into());
        }
        bail!("`{}` in {} exited with {:?}: {last}", command.join(" "), container.name, ran.exit_code);
    }
    decrypted.with_context(|| format!("decrypting {}", part.file))?;
    let summary: serde_json::Value = serde_json::from_slice(&summary).context("the load's summary")?;
    let loaded: BTreeMap<String, u64> =
        serde_json::from_value(summary[kind.counts].clone()).context("the load's counts")?;
    if loaded != part.items {
        return Err(CheckFailed(format!(
            "the {} holds other counts than backup set {} says: loaded {loaded:?}, the manifest {:?}",
            kind.part, manifest.id, part.items
        ))
        .into());
    }
    Ok(RestoredPart {
        part: kind.part.to_owned(),
        detail: format!(
            "{} {} in {} {}, every count as in the manifest",
            loaded.values().sum::<u64>(),
            kind.items,
            loaded.len(),
            kind.counts
        ),
    })
}
