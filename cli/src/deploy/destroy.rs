//! Removing what the Docker Engine runs for a deployment, found by its label, whatever target made it:
//! containers, Swarm services (and the containers their tasks leave), networks, and — unless kept — its
//! volumes and Swarm secrets and configs. `destroy` asks first; the restore drill removes its scratch
//! deployment with it.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::wait::POLL;
use crate::engine::{Engine, EngineError};
use crate::plan::observed::{ObjectKind, SwarmObject};
use crate::printer::views::{Change, FileChange};

/// How long removed services may take to stop their containers (their stop grace periods are at most 60 s).
const STOP_DEADLINE: Duration = Duration::from_secs(120);

/// What a removal leaves in place.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub volumes: bool,
    pub secrets: bool,
}

/// Removes the deployment's containers, services and networks, and `volumes` and `objects` unless `keep`
/// says otherwise; one line per object, removed or kept.
pub fn remove(
    engine: &Engine,
    deployment: &str,
    volumes: &[String],
    objects: &[(ObjectKind, SwarmObject)],
    keep: Keep,
) -> Result<Vec<FileChange>> {
    let manager = engine.manages_swarm()?;
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
    for name in volumes {
        if !keep.volumes {
            engine.remove_volume(name)?;
            removed("volume", name, Change::Removed);
        } else {
            removed("volume", name, Change::Kept);
        }
    }
    for (kind, object) in objects {
        if !keep.secrets {
            engine.remove_swarm_object(*kind, &object.id)?;
            removed(kind.as_str(), &object.name, Change::Removed);
        } else {
            removed(kind.as_str(), &object.name, Change::Kept);
        }
    }
    Ok(changes)
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
