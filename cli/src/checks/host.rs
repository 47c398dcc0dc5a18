//! Checks of the Docker Engine's host that every deploy runs: the images present, the CPU limits within the
//! host, and the deployment not already running with the other target.

use anyhow::Result;

use super::Check;
use crate::domain::Target;
use crate::engine::Engine;
use crate::plan::compose::Desired;
use crate::printer::Printer;

/// Every image must be on the Engine before anything changes; missing ones are pulled (a private registry
/// in the spec's images) or named with the fix.
pub fn images_present(engine: &Engine, images: &[String], printer: &Printer) -> Result<Check> {
    for reference in images {
        if engine.image(reference)?.is_some() {
            continue;
        }
        printer.note(&format!("pulling {reference}"));
        if let Err(error) = engine.pull_image(reference) {
            return Ok(Check::fail(
                "images.present",
                format!("image {reference} is not on this Docker Engine and could not be pulled ({error})"),
                "build it (`cometctl images build`), load a bundle (`cometctl images load`) or point the spec's \
                 images at a registry this host can reach",
            ));
        }
    }
    Ok(Check::pass("images.present", format!("{} images on this Docker Engine", images.len())))
}

/// A plan whose containers ask for more CPUs than the host has fails here (the Engine would refuse them one
/// by one, half-way through the deploy).
pub fn cpus_within_host(engine: &Engine, desired: &Desired) -> Result<Check> {
    let capacity = engine.host_capacity()?;
    for container in desired.containers.values().filter_map(|containers| containers.first()) {
        let nanos = container.body["HostConfig"]["NanoCpus"].as_i64().unwrap_or(0);
        if capacity.cpus > 0 && nanos > capacity.cpus * 1_000_000_000 {
            return Ok(Check::fail(
                "host.cpus",
                format!(
                    "service `{}` is limited to {} CPUs but this Docker host has {}",
                    container.service,
                    nanos as f64 / 1e9,
                    capacity.cpus
                ),
                format!(
                    "lower its cpu_millis.limit under plan.services in cometctl.yaml (at most {})",
                    capacity.cpus * 1000
                ),
            ));
        }
    }
    Ok(Check::pass("host.cpus", format!("every CPU limit within the host's {}", capacity.cpus)))
}

/// A deployment runs with one target at a time: Compose containers and Swarm services would share names,
/// networks and published ports. `running_elsewhere`: it runs with the other target on this Engine.
pub fn one_target(deployment: &str, target: Target, running_elsewhere: bool) -> Check {
    if !running_elsewhere {
        return Check::pass("deployment.target", format!("`{deployment}` runs with no other target here"));
    }
    let other = if target == Target::Compose { "a Swarm stack" } else { "Compose containers" };
    Check::fail(
        "deployment.target",
        format!("deployment `{deployment}` runs as {other} on this Docker Engine"),
        format!("remove it with `cometctl destroy` (volumes stay) before deploying it with {target}"),
    )
}
