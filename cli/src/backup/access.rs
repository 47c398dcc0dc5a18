//! What the backup commands need from the deployment: where its sets go, its backup key, a running role
//! container to run `comet-server dump` / `load` in.

use anyhow::{Context as _, Result};

use super::crypt::BackupKey;
use super::target::Location;
use crate::context::Context;
use crate::domain::{ServiceKey, Target};
use crate::error::Refusal;
use crate::plan::observed::ObservedContainer;

/// Where backup sets are: `given` (`--to`, `--from`), else the spec's `backup.destination` (a folder relative
/// to the deployment folder, or `s3://bucket/prefix`), else `<dir>/backups` when the folder has no spec yet (a
/// new host before its config is restored). A spec that exists but does not parse is an error, never a silent
/// fallback.
pub fn location(context: &Context<'_>, given: Option<&str>) -> Result<Location> {
    let root = context.folder.root();
    let text = match given {
        Some(text) => text.to_owned(),
        None if !context.folder.has_spec() => "backups".to_owned(),
        None => context.spec()?.backup.destination.clone(),
    };
    Location::parse(&text, root).map_err(|error| Refusal(error).into())
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

/// The running containers of the deployment (Compose containers or Swarm task containers, as the Engine says).
fn running(context: &Context<'_>, spec: &crate::spec::Spec) -> Result<Vec<ObservedContainer>> {
    let engine = context.engine()?;
    let deployment = spec.name.as_str();
    // Where the deployment runs, as the Engine says (the one place that decides it).
    let target = crate::deploy::backend_for(context, crate::deploy::Choice::Observed)?.target();
    let observed =
        if target == Target::Swarm { engine.task_containers(deployment)? } else { engine.containers(deployment)? };
    Ok(observed.into_iter().filter(|container| container.running).collect())
}

/// A running container of a comet-server role (they all reach the database with its credentials).
pub(super) fn role_container(context: &Context<'_>, spec: &crate::spec::Spec) -> Result<ObservedContainer> {
    let deployment = spec.name.as_str();
    let roles = [ServiceKey::Api, ServiceKey::Relay, ServiceKey::Gateway, ServiceKey::Webhooks];
    running(context, spec)?
        .into_iter()
        .find(|container| roles.iter().any(|role| role.key() == container.service))
        .ok_or_else(|| {
            Refusal(format!(
                "no running comet-server container of deployment `{deployment}` to take the database copy in: \
                 `cometctl status` shows what runs; deploy first, or back up only the config (--only config)"
            ))
            .into()
        })
}

/// The running containers of a store's nodes (`redis-1`, `redis-2`, … or `redis`), in name order.
pub(super) fn store_containers(
    context: &Context<'_>,
    spec: &crate::spec::Spec,
    store: ServiceKey,
) -> Result<Vec<ObservedContainer>> {
    let mut nodes: Vec<ObservedContainer> =
        running(context, spec)?.into_iter().filter(|container| store.has_node(&container.service)).collect();
    nodes.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
    Ok(nodes)
}
