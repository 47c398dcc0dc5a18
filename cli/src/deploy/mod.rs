//! Deploying a spec to the Docker Engine, with Compose or Swarm behind one `Backend` trait:
//! render → read the manifest back → preflight checks → changes → apply in start order, waiting for each
//! group (`wait`) → history. `backend_for` is the one place that decides which backend a deployment has.
//! `upgrade` is one flow over `dyn Backend`: its refusals, the new spec, and the previous one again on
//! failure.

mod compose;
mod swarm;
mod upgrade;
pub mod wait;

use std::time::Instant;

use anyhow::Result;

pub use compose::deployed_images;
pub use upgrade::upgrade;

use crate::context::Context;
use crate::domain::Target;
use crate::plan::history::{Attempt, HistoryRecord};
use crate::plan::lines::ChangeLine;
use crate::plan::observed::SwarmRole;
use crate::plan::status::Status;
use crate::spec::Spec;

/// Why a backend stages a spec: which preflight checks run, and what the changes are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `diff`: the changes only.
    Diff,
    /// `deploy`: every preflight check; `init_swarm` makes an Engine in no swarm a single-node one.
    Deploy { init_swarm: bool },
    /// Before an upgrade: how the deployment differs from its own spec (what is not drift left out).
    Drift,
    /// The upgrade's new spec: the checks a changed spec needs.
    Upgrade,
    /// The previous spec again after a failed upgrade.
    Rollback,
}

/// Whether one-shot jobs whose configuration changed run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    Run,
    /// A rollback: the newer migration already ran, and an older one must not run over its schema.
    Keep,
}

/// A spec rendered, read back and checked, with its changes from what runs: ready to apply.
pub trait Staged {
    fn is_empty(&self) -> bool;
    fn lines(&self) -> Vec<ChangeLine>;
    /// Applies the changes in start order, waiting for each group to be ready.
    fn apply(&self, jobs: Jobs) -> Result<()>;
    /// The long-running services of the deployment that do not run all their containers or tasks healthy,
    /// each with why.
    fn unhealthy(&self) -> Result<Vec<String>>;
}

/// A way of running a deployment on the Docker Engine.
pub trait Backend {
    fn target(&self) -> Target;
    /// Renders `spec` into rendered/, reads the manifest back, runs the checks `purpose` needs, and compares
    /// the result with what runs.
    fn stage<'s>(&'s self, spec: &Spec, purpose: Purpose) -> Result<Box<dyn Staged + 's>>;
    /// What runs, one row per service.
    fn status(&self, spec: &Spec) -> Result<Status>;
    /// Whether a rollback shows its change lines. A compose rollback puts back, container by container, what
    /// the failed upgrade's lines just listed; a Swarm rollback is a deploy of the previous spec and says so.
    fn shows_rollback(&self) -> bool;
}

/// Which backend a command wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The target the operator named (`deploy compose`, `diff swarm`).
    Named(Target),
    /// The one the deployment runs with on this Engine: Swarm when this Engine manages a swarm with services
    /// of the deployment, Compose otherwise.
    Observed,
}

/// The one place that decides whether a deployment is handled as Compose containers or a Swarm stack.
pub fn backend_for<'c>(context: &'c Context<'_>, choice: Choice) -> Result<Box<dyn Backend + 'c>> {
    let target = match choice {
        Choice::Named(target) => target,
        Choice::Observed => {
            let engine = context.engine()?;
            let deployment = context.spec()?.name.as_str();
            let on_swarm =
                matches!(engine.swarm_role()?, SwarmRole::Manager { .. }) && !engine.services(deployment)?.is_empty();
            if on_swarm { Target::Swarm } else { Target::Compose }
        }
    };
    Ok(match target {
        Target::Swarm => Box::new(swarm::SwarmBackend { context }),
        _ => Box::new(compose::ComposeBackend { context }),
    })
}

/// `diff`: what `deploy` would change, as lines under `diff <target> <name>`.
pub fn diff(context: &Context<'_>, backend: &dyn Backend) -> Result<()> {
    let spec = context.spec()?;
    let staged = backend.stage(spec, Purpose::Diff)?;
    let title = format!("diff {} {}", backend.target(), spec.name);
    context.printer.change_lines(&title, &staged.lines())?;
    Ok(())
}

/// `deploy`: every check, then the changes in start order (or "no changes"), recorded in history.jsonl.
pub fn deploy(context: &Context<'_>, backend: &dyn Backend, init_swarm: bool) -> Result<()> {
    let spec = context.spec()?;
    let target = backend.target();
    let staged = backend.stage(spec, Purpose::Deploy { init_swarm })?;
    let started = Instant::now();
    let title = format!("deploy {target} {}", spec.name);
    if staged.is_empty() {
        context.printer.result(&format!("{title}: no changes"))?;
        return Ok(());
    }
    context.printer.change_lines(&title, &staged.lines())?;
    let outcome = staged.apply(Jobs::Run);
    let seconds = started.elapsed().as_secs_f64();
    let attempt = Attempt { action: "deploy", target, from: spec, to: spec };
    match &outcome {
        Ok(()) => record(context, attempt, "ok", seconds, "")?,
        Err(error) => record(context, attempt, "failed", seconds, &first_line(error))?,
    }
    outcome?;
    context.printer.result(&format!("{title}: every service ready in {seconds:.1}s"))?;
    Ok(())
}

/// Appends an attempt's outcome to history.jsonl, stamped with the clock's time.
fn record(context: &Context<'_>, attempt: Attempt<'_>, result: &str, seconds: f64, detail: &str) -> Result<()> {
    let now = context.clock.now_unix_seconds();
    context.folder.append_history(&HistoryRecord::new(attempt, now, result, seconds, detail))
}

/// The first line of an error with its causes.
fn first_line(error: &anyhow::Error) -> String {
    format!("{error:#}").lines().next().unwrap_or_default().to_owned()
}
