//! Deploying a spec to the Docker Engine, with Compose or Swarm behind one `Backend` trait:
//! render → read the manifest back → preflight checks → changes → apply in start order, waiting for each
//! group (`wait`) → history. `backend_for` is the one place that decides which backend a deployment has.
//! `change` is one flow over `dyn Backend` for `upgrade` and `scale`: its refusals, the new spec, and the
//! previous one again on failure.

mod backend;
mod change;
mod compose;
mod destroy;
mod swarm;
pub mod wait;

use std::time::{Duration, Instant};

use anyhow::Result;

pub use backend::{Backend, Jobs, Purpose, Staged};
pub use change::{Move, change, upgrade};
pub use compose::deployed_images;
pub use destroy::{Keep, remove};

use change::{first_line, record};

use crate::checks;
use crate::context::Context;
use crate::domain::{ServiceKey, Target};
use crate::error::{DeployFailed, Refusal};
use crate::plan::history::Attempt;

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
        Choice::Observed if runs_on_swarm(context)? => Target::Swarm,
        Choice::Observed => Target::Compose,
    };
    Ok(match target {
        Target::Swarm => Box::new(swarm::SwarmBackend { context }),
        _ => Box::new(compose::ComposeBackend { context, runs_on_swarm }),
    })
}

/// The host ports the deployment's own containers publish (its NGINX, a Compose container or a Swarm task's
/// host-mode ports): held by it, not busy.
pub fn edge_ports(engine: &crate::engine::Engine, spec: &crate::spec::Spec) -> Result<Vec<u16>> {
    let deployment = spec.name.as_str();
    let mut containers = engine.containers(deployment)?;
    containers.extend(engine.task_containers(deployment)?);
    let ports: Vec<String> = containers.into_iter().flat_map(|container| container.ports).collect();
    Ok(checks::preflight::host_ports(&ports))
}

/// Whether the deployment runs as Swarm services on this Engine: it manages a swarm, and services labelled
/// with the deployment exist there.
fn runs_on_swarm(context: &Context<'_>) -> Result<bool> {
    let engine = context.engine()?;
    let deployment = context.spec()?.name.as_str();
    Ok(engine.manages_swarm()? && !engine.services(deployment)?.is_empty())
}

/// Waits until every long-running service of the deployment runs all its containers or tasks healthy, at
/// most `timeout`; how long it took. What is still not healthy then is the error.
pub fn wait_healthy(context: &Context<'_>, timeout: Duration) -> Result<Duration> {
    let spec = context.spec()?;
    let backend = backend_for(context, Choice::Observed)?;
    if backend.status(spec)?.services.is_empty() {
        return Err(Refusal(format!("nothing of `{}` runs on this Docker Engine: deploy it first", spec.name)).into());
    }
    let staged = backend.stage(spec, Purpose::Drift)?;
    let started = Instant::now();
    let line = context.printer.progress().line("wait until every service is healthy");
    loop {
        let sick = staged.unhealthy()?;
        if sick.is_empty() {
            line.finish("every service healthy");
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            line.finish("timed out");
            return Err(DeployFailed(format!("not healthy after {}s: {}", timeout.as_secs(), sick.join(", "))).into());
        }
        line.set(&format!("waiting for {}", sick.join(", ")));
        std::thread::sleep(wait::POLL.max(Duration::from_secs(2)).min(timeout.saturating_sub(started.elapsed())));
    }
}

/// Restarts `service`'s containers or tasks one at a time, each ready before the next; how many.
pub fn rolling_restart(context: &Context<'_>, service: ServiceKey) -> Result<usize> {
    let spec = context.spec()?;
    if !spec.plan.deploys(service) {
        return Err(Refusal(format!("{service} has 0 replicas in cometctl.yaml: nothing to restart")).into());
    }
    let backend = backend_for(context, Choice::Observed)?;
    if backend.status(spec)?.services.is_empty() {
        return Err(Refusal(format!("nothing of `{}` runs on this Docker Engine: deploy it first", spec.name)).into());
    }
    backend.stage(spec, Purpose::Drift)?.restart(service.dns_name())
}

/// `diff`: what `deploy` would change, as lines under `diff <target> <name>`.
pub fn diff(context: &Context<'_>, backend: &dyn Backend) -> Result<()> {
    let spec = context.spec()?;
    let staged = backend.stage(spec, Purpose::Diff)?;
    let title = format!("diff {} {}", backend.target(), spec.name);
    context.printer.change_lines(&title, &staged.lines())?;
    Ok(())
}

/// `deploy`: the host preflight (`checks::preflight`), every check of the backend, then the changes in start order (or "no changes"), recorded in history.jsonl.
pub fn deploy(context: &Context<'_>, backend: &dyn Backend, init_swarm: bool) -> Result<()> {
    let spec = context.spec()?;
    let target = backend.target();
    let engine = context.engine()?;
    checks::preflight::run(engine, spec, &edge_ports(engine, spec)?, context.printer)?;
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
