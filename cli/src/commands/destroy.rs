//! `cometctl destroy`: removes what the Docker Engine runs for a deployment (found by its label): containers,
//! Swarm services and networks. Volumes hold the data and stay unless `--volumes` is given; Swarm secrets and
//! configs stay unless `--secrets` is given; each is confirmed (`--yes`, or the deployment's name typed at the
//! prompt). Whatever target made them, everything labelled with the deployment goes, so destroy asks no
//! backend which one the deployment has.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::args::DestroyArgs;
use crate::context::Context;
use crate::deploy::wait::POLL;
use crate::engine::EngineError;
use crate::error::Refusal;
use crate::plan::observed::ObjectKind;
use crate::printer::views::{Change, FileChange};
use crate::printer::{Confirmation, Printer};

/// How long removed services may take to stop their containers (their stop grace periods are at most 60 s).
const STOP_DEADLINE: Duration = Duration::from_secs(120);

/// Whether the operator confirmed deleting `names` (`what`: "the data", "the secrets and configs") for good.
fn confirmed(
    args: &DestroyArgs,
    flag: &str,
    what: &str,
    deployment: &str,
    names: &[String],
    printer: &Printer,
) -> Result<bool> {
    if args.yes {
        return Ok(true);
    }
    let question = format!("{flag} deletes {} for good", names.join(", "));
    match printer.confirm(&question, deployment)? {
        Confirmation::Confirmed => Ok(true),
        Confirmation::Declined => Ok(false),
        Confirmation::NoTerminal => Err(Refusal(format!(
            "{flag} deletes {what} of `{deployment}` ({} objects) for good: add --yes to confirm when not at a \
             terminal",
            names.len()
        ))
        .into()),
    }
}

/// Retries `attempt` until it succeeds or the deadline passes (a network stays busy for a moment after the
/// containers on it are gone).
fn retry(deadline: Instant, mut attempt: impl FnMut() -> Result<(), EngineError>) -> Result<(), EngineError> {
    loop {
        match attempt() {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

pub fn run(context: &Context<'_>, args: &DestroyArgs) -> Result<()> {
    let (spec, printer) = (context.spec()?, context.printer);
    let deployment = spec.name.as_str();
    let engine = context.engine()?;
    // Whatever either target left (a destroy without --secrets leaves a Swarm stack's secrets and configs):
    // the Swarm side is read wherever the Engine manages a swarm.
    let manager = engine.manages_swarm()?;
    let volumes = engine.volumes(deployment)?;
    let mut objects = Vec::new();
    if manager {
        for kind in [ObjectKind::Secret, ObjectKind::Config] {
            objects.extend(engine.swarm_objects(kind, deployment)?.into_iter().map(|object| (kind, object)));
        }
    }
    // Ask before changing anything: a refused confirmation leaves the deployment running.
    for (wanted, flag, what, names) in [
        (args.volumes, "--volumes", "the data", volumes.clone()),
        (args.secrets, "--secrets", "the secrets and configs", objects.iter().map(|(_, o)| o.name.clone()).collect()),
    ] {
        if wanted && !names.is_empty() && !confirmed(args, flag, what, deployment, &names, printer)? {
            return Err(Refusal("not confirmed: nothing was removed".to_owned()).into());
        }
    }
    let mut changes = Vec::new();
    let mut removed = |what: &str, name: &str, change: Change| {
        changes.push(FileChange { path: format!("{what} {name}"), change });
    };
    for name in engine.remove_containers(deployment)? {
        removed("container", &name, Change::Removed);
    }
    if manager {
        for service in engine.services(deployment)? {
            engine.remove_service(&service.id)?;
            removed("service", &service.name, Change::Removed);
        }
        // Swarm stops the tasks after the services are gone; networks and volumes are free once they stopped.
        // Containers of finished tasks (a completed job) may stay behind: they go with the deployment.
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            let left = engine.task_containers(deployment)?;
            if left.is_empty() {
                break;
            }
            if left.iter().all(|container| !container.running) {
                // Swarm may be removing them too: what fails here is looked at again on the next round.
                for container in left {
                    engine.remove_container(&container.id).ok();
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(anyhow::anyhow!(
                    "the services of {deployment} are removed but their containers still exist after {}s: see \
                     `docker ps -a --filter label=io.comet.deployment={deployment}`",
                    STOP_DEADLINE.as_secs()
                ));
            }
            std::thread::sleep(POLL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in engine.networks(deployment)? {
        retry(deadline, || engine.remove_network(&name))?;
        removed("network", &name, Change::Removed);
    }
    for name in &volumes {
        if args.volumes {
            engine.remove_volume(name)?;
            removed("volume", name, Change::Removed);
        } else {
            removed("volume", name, Change::Kept);
        }
    }
    for (kind, object) in &objects {
        if args.secrets {
            engine.remove_swarm_object(*kind, &object.id)?;
            removed(kind.as_str(), &object.name, Change::Removed);
        } else {
            removed(kind.as_str(), &object.name, Change::Kept);
        }
    }
    printer.changes(&format!("destroy {deployment}"), &changes)?;
    Ok(())
}
