//! `cometctl restore ID --verify`, the restore drill: the set restored into a scratch deployment beside the
//! live one (another name, free edge ports, its own volumes), checked, smoke-tested through its NGINX, and
//! removed. Every step is timed; the drill passes only when every step does and the whole took no longer than
//! the stated recovery time objective. The result is recorded in the live folder's history.jsonl, where
//! `doctor` finds the last drill.
//!
//! Steps: the config part restored into `<dir>/drill/<id>/` (after the whole set verified) → the scratch spec
//! (name `<name>-drill`, free ports) → deploy (Compose on this Engine) → the database part loaded, every count
//! checked against the manifest → a bench through the scratch NGINX (two users with new tokens, sockets, sends,
//! each delivered once) → the scratch deployment and folder removed (always, unless `--keep-scratch`).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::access::existing_key;
use super::restore::{RestoreRequest, restore};
use super::target::{Location, Target};
use crate::context::Context;
use crate::deploy::{self, Choice, Keep};
use crate::domain::Target as DeployTarget;
use crate::error::Refusal;
use crate::sizing::Profile;
use crate::spec::{DeploymentName, MAX_NAME_LENGTH, Port};

/// What the drill was asked for.
#[derive(Debug, Clone)]
pub struct DrillRequest {
    pub id: String,
    pub from: Location,
    /// The recovery time objective the drill's wall time is held to.
    pub rto: Duration,
    /// Leave the scratch deployment running (to look at it); remove it with `cometctl destroy --volumes
    /// --dir <dir>/drill/<id>`.
    pub keep_scratch: bool,
}

/// One step of the drill.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillStep {
    pub step: &'static str,
    pub ok: bool,
    pub seconds: f64,
    pub detail: String,
}

/// The drill's verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drill {
    pub id: String,
    pub scratch: String,
    pub pass: bool,
    pub seconds: f64,
    pub rto_seconds: f64,
    pub steps: Vec<DrillStep>,
}

/// Runs the drill of set `request.id` for the deployment of `context`.
pub fn drill(context: &Context<'_>, profile: &Profile, request: &DrillRequest) -> Result<Drill> {
    let spec = context.spec()?;
    if spec.target != DeployTarget::Compose {
        return Err(Refusal(format!(
            "the restore drill runs Compose deployments in this version; `{}` is a {} deployment (restore into a \
             fresh deployment by hand: docs/operations/backup.md)",
            spec.name,
            spec.target.as_str()
        ))
        .into());
    }
    let key = existing_key(context)?;
    let scratch_name = scratch_name(spec.name.as_str())?;
    let scratch_dir = context.folder.root().join("drill").join(&request.id);
    let printer = context.printer;
    let engine = context.engine()?;
    // A drill that was interrupted leaves its scratch deployment: it goes first.
    leave(engine, scratch_name.as_str())?;
    if scratch_dir.exists() {
        fs_err::remove_dir_all(&scratch_dir)?;
    }
    // The scratch deployment's own output (deploy lines, the smoke test) goes to stderr: stdout is the drill's.
    let nested = printer.nested();
    let scratch = || Context::new(&scratch_dir, &nested);
    let started = Instant::now();
    let mut steps = Vec::new();
    let mut step = |name: &'static str, work: &mut dyn FnMut() -> Result<String>| -> bool {
        printer.note(&format!("drill: {name}"));
        let at = Instant::now();
        let outcome = work();
        let (ok, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(error) => (false, format!("{error:#}")),
        };
        steps.push(DrillStep { step: name, ok, seconds: at.elapsed().as_secs_f64(), detail });
        ok
    };
    let restore_request = |only: &[&str]| RestoreRequest {
        id: request.id.clone(),
        from: request.from.clone(),
        only: only.iter().map(|name| (*name).to_owned()).collect(),
        yes: true,
    };
    // The stores the set holds a copy of: the database (which a drill needs: restoring without it is refused),
    // and MongoDB's when it was deployed.
    let manifest = Target::open(&request.from).and_then(|target| target.manifest(&request.id)).ok();
    let has =
        |name: &str| manifest.as_ref().is_some_and(|manifest| manifest.parts.iter().any(|part| part.name == name));
    let copies: Vec<&str> = ["tidb"].into_iter().chain(has("mongodb").then_some("mongodb")).collect();
    let restored = step("verify and restore the folder", &mut || {
        let folder = scratch();
        folder.folder.create_root()?;
        folder.folder.private_dir(crate::folder::SECRETS_DIR)?;
        folder.folder.create_once("secrets/backup.key", 0o600, || Ok(key.to_hex().into_bytes()))?;
        let restored = restore(&folder, &restore_request(&["config"]))?;
        Ok(restored.parts.iter().map(|part| part.detail.clone()).collect::<Vec<_>>().join("; "))
    }) && step("make the scratch spec", &mut || {
        let folder = scratch();
        let mut scratch_spec = folder.spec()?.clone();
        scratch_spec.name = scratch_name.clone();
        let (http, https) = (free_port()?, free_port()?);
        scratch_spec.edge.http_port = Port::new(http).ok_or_else(|| anyhow::anyhow!("no free port"))?;
        scratch_spec.edge.https_port = Port::new(https).ok_or_else(|| anyhow::anyhow!("no free port"))?;
        folder.folder.write_spec(&scratch_spec)?;
        Ok(format!("`{}` on ports {http} and {https}", scratch_spec.name))
    }) && step("deploy the scratch deployment", &mut || {
        let folder = scratch();
        let backend = deploy::backend_for(&folder, Choice::Named(DeployTarget::Compose))?;
        deploy::deploy(&folder, backend.as_ref(), false)?;
        Ok("every service ready".to_owned())
    }) && step("restore the database", &mut || {
        let restored = restore(&scratch(), &restore_request(&copies))?;
        Ok(restored.parts.iter().map(|part| part.detail.clone()).collect::<Vec<_>>().join("; "))
    }) && step("smoke test through its NGINX", &mut || {
        let request =
            crate::bench::Request { sockets: Some(2), rate: Some(1.0), duration: Some(Duration::from_secs(3)) };
        let report = crate::bench::run(&scratch(), profile, &request)?;
        if !report.pass {
            anyhow::bail!("the smoke test failed: {}", report.notes.join("; "));
        }
        Ok(format!(
            "{} sends acknowledged and delivered, p99 {:.0} ms",
            report.sends.acknowledged, report.latency_ms.p99
        ))
    });
    if request.keep_scratch {
        printer.note(&format!(
            "--keep-scratch: `{}` stays; remove it with `cometctl destroy --volumes --yes --dir {}`",
            scratch_name.as_str(),
            scratch_dir.display()
        ));
    } else {
        step("remove the scratch deployment", &mut || {
            let removed = leave(engine, scratch_name.as_str())?;
            fs_err::remove_dir_all(&scratch_dir)?;
            Ok(format!("{removed} objects removed"))
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let rto_seconds = request.rto.as_secs_f64();
    // Every step ran (the chain stops at the first that fails) and passed, within the RTO.
    let pass = restored && steps.iter().all(|step| step.ok) && seconds <= rto_seconds;
    let drill =
        Drill { id: request.id.clone(), scratch: scratch_name.as_str().to_owned(), pass, seconds, rto_seconds, steps };
    let now = context.clock.now_unix_seconds();
    context.folder.append_history(&serde_json::json!({
        "time": crate::plan::history::rfc3339(now),
        "at": now,
        "action": "restore-drill",
        "backup": drill.id,
        "result": if pass { "ok" } else { "failed" },
        "seconds": seconds,
    }))?;
    Ok(drill)
}

/// Removes everything of the scratch deployment `name` (containers, networks, volumes); how many objects.
fn leave(engine: &crate::engine::Engine, name: &str) -> Result<usize> {
    let volumes = engine.volumes(name)?;
    let removed = deploy::remove(engine, name, &volumes, &[], Keep { volumes: false, secrets: false })?;
    Ok(removed.len())
}

/// `<name>-drill`, shortened to fit a deployment name.
fn scratch_name(live: &str) -> Result<DeploymentName> {
    let suffix = "-drill";
    let head: String = live.chars().take(MAX_NAME_LENGTH - suffix.len()).collect();
    DeploymentName::parse(&format!("{}{suffix}", head.trim_end_matches('-'))).map_err(|error| Refusal(error).into())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
