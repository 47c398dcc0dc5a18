//! `backup verify`: a set checked without trusting it — the manifest's MAC, every part's size and SHA-256,
//! every chunk opened, and the database copy's own counts against the manifest's.

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

use super::copies::{CopyKind, DATABASE};
use super::crypt::{self, BackupKey};
use super::manifest::Part;
use super::take::Ends;
use super::target::{self, Target};

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
pub fn verify(target: &Target, id: &str, key: &BackupKey) -> Result<Verification> {
    let manifest = target.manifest(id)?;
    let mut checks = Vec::new();
    let authentic = manifest.is_authentic(key) && manifest.id == id;
    checks.push(PartCheck {
        part: "manifest".to_owned(),
        ok: authentic,
        detail: if manifest.id != id {
            format!("the manifest is set {}'s, not {id}'s: it was copied or renamed", manifest.id)
        } else if authentic {
            format!("authentic (key {})", key.id())
        } else if manifest.encryption.key_id != key.id() {
            format!("made with key {}, not this deployment's key {}", manifest.encryption.key_id, key.id())
        } else {
            "changed since it was written: its MAC does not match".to_owned()
        },
    });
    for part in &manifest.parts {
        checks.push(verify_part(target, id, part, key));
    }
    let ok = checks.iter().all(|check| check.ok);
    Ok(Verification { id: id.to_owned(), ok, checks })
}

fn verify_part(target: &Target, id: &str, part: &Part, key: &BackupKey) -> PartCheck {
    let check = |ok: bool, detail: String| PartCheck { part: part.name.clone(), ok, detail };
    let mut hashed = target::Hashed::new(std::io::sink());
    let stored = target.open_part(id, &part.file).and_then(|mut file| {
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
        .open_part(id, &part.file)
        .map_err(|error| format!("{error:#}"))
        .and_then(|mut file| crypt::decrypt(&mut file, key, &mut plain).map_err(|error| error.to_string()));
    match opened {
        Err(error) => check(false, format!("{}: {error}", part.file)),
        Ok(plain_bytes) if plain_bytes != part.plain_bytes => {
            check(false, format!("decrypts to {plain_bytes} bytes, the manifest says {}", part.plain_bytes))
        }
        Ok(_) if part.name == "redis" && !plain.head().starts_with(b"REDIS") => {
            check(false, format!("{} decrypts to something that is not an RDB", part.file))
        }
        Ok(_) if part.name == "redis" => check(
            true,
            format!("RDB of {} keys, hash and every chunk good", part.items.get("keys").copied().unwrap_or_default()),
        ),
        Ok(_) if CopyKind::of_part(&part.name).is_some() => {
            let kind = CopyKind::of_part(&part.name).unwrap_or(DATABASE);
            let counts = serde_json::from_slice::<serde_json::Value>(&plain.last)
                .ok()
                .and_then(|trailer| serde_json::from_value::<BTreeMap<String, u64>>(trailer[kind.counts].clone()).ok());
            match counts {
                Some(counts) if counts == part.items => check(
                    true,
                    format!(
                        "{} {} in {} {}, hash and every chunk good",
                        counts.values().sum::<u64>(),
                        kind.items,
                        counts.len(),
                        kind.counts
                    ),
                ),
                _ => check(false, "the copy's own counts differ from the manifest's".to_owned()),
            }
        }
        Ok(plain_bytes) => check(true, format!("{} ({plain_bytes} bytes plain), hash and every chunk good", part.file)),
    }
}
