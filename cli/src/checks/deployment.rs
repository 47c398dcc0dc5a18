//! Checks of a running deployment, from what the Engine reports (pure): every service at its desired count
//! and healthy, restarts and OOM kills, the images the spec names, and no drift from the spec (the change
//! lines `cometctl diff` would print).

use super::Check;
use crate::domain::Target;
use crate::domain::thresholds::THRESHOLDS;
use crate::plan::lines::ChangeLine;
use crate::plan::observed::ContainerConfig;
use crate::plan::status::ServiceStatus;

/// What the Engine reported about the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFacts {
    pub deployment: String,
    pub target: Target,
    /// One row per service, as `cometctl status` shows them.
    pub services: Vec<ServiceStatus>,
    /// The one-shot services (migrate, a cluster's init): they complete, and are not counted as running.
    pub jobs: Vec<String>,
    /// The long-running containers (jobs left out).
    pub containers: Vec<ContainerConfig>,
    /// Containers the kernel killed for memory in the last hour (one name per kill).
    pub oom_kills: Vec<String>,
    /// The image references the spec deploys.
    pub images: Vec<String>,
    /// What `cometctl diff` would change.
    pub drift: Vec<ChangeLine>,
}

pub const IDS: &[&str] = &[
    "deployment.running",
    "deployment.healthy",
    "deployment.restarts",
    "deployment.oom",
    "deployment.images",
    "deployment.drift",
];

pub fn evaluate(facts: &DeploymentFacts) -> Vec<Check> {
    let target = facts.target;
    let deploy = format!("cometctl deploy {target}");
    if facts.services.is_empty() {
        let why = format!("nothing of deployment `{}` runs on this Docker Engine", facts.deployment);
        let mut checks = vec![Check::fail("deployment.running", why.clone(), format!("deploy it: `{deploy}`"))];
        checks.extend(IDS[1..].iter().map(|id| Check::skip(id, why.clone())));
        return checks;
    }
    let long_running: Vec<&ServiceStatus> =
        facts.services.iter().filter(|service| !facts.jobs.contains(&service.service)).collect();
    let short: Vec<String> = long_running
        .iter()
        .filter(|service| service.running < service.desired.max(service.containers))
        .map(|service| format!("{} {}/{}", service.service, service.running, service.desired.max(service.containers)))
        .collect();
    let running = if short.is_empty() {
        Check::pass("deployment.running", format!("{} services at their desired count", long_running.len()))
    } else {
        Check::fail(
            "deployment.running",
            format!("running below desired: {}", short.join(", ")),
            format!("see why with `cometctl status` and `docker logs <container>`; `{deploy}` starts what is missing"),
        )
    };
    let sick: Vec<String> = long_running
        .iter()
        .filter(|service| service.unhealthy > 0)
        .map(|service| format!("{} ({} unhealthy)", service.service, service.unhealthy))
        .collect();
    let healthy = if sick.is_empty() {
        let checked: u32 = long_running.iter().map(|service| service.healthy).sum();
        Check::pass("deployment.healthy", format!("{checked} containers pass their health checks"))
    } else {
        Check::fail(
            "deployment.healthy",
            format!("failing their health checks: {}", sick.join(", ")),
            "read the last probes with `docker inspect --format '{{json .State.Health}}' <container>` and its logs",
        )
    };
    let worst = facts.containers.iter().max_by_key(|container| container.restart_count);
    let restarts = match worst {
        None => Check::skip("deployment.restarts", "no long-running container to inspect"),
        Some(container) => Check::against(
            "deployment.restarts",
            &THRESHOLDS.container_restarts,
            u64::try_from(container.restart_count).unwrap_or(0),
            if container.restart_count == 0 {
                "no long-running container has restarted".to_owned()
            } else {
                format!("{} restarted {} times", container.name, container.restart_count)
            },
            &format!("read why with `docker logs --tail 50 {}` (exit codes: `docker inspect`)", container.name),
        ),
    };
    let mut killed: Vec<String> = facts.oom_kills.clone();
    killed.extend(facts.containers.iter().filter(|container| container.oom_killed).map(|c| c.name.clone()));
    killed.sort();
    killed.dedup();
    let oom = if killed.is_empty() {
        Check::pass("deployment.oom", "no container was killed for memory in the last hour")
    } else {
        Check::fail(
            "deployment.oom",
            format!("killed for memory: {}", killed.join(", ")),
            "raise their memory_mib.limit under plan.services in cometctl.yaml, then `cometctl deploy`",
        )
    };
    let foreign: Vec<String> = facts
        .containers
        .iter()
        .filter(|container| {
            let image = container.image.split('@').next().unwrap_or_default();
            !facts.images.iter().any(|expected| expected == image)
        })
        .map(|container| format!("{} runs {}", container.name, container.image))
        .collect();
    let images = if foreign.is_empty() {
        Check::pass("deployment.images", format!("every container runs an image of the spec ({})", facts.images.len()))
    } else {
        Check::fail(
            "deployment.images",
            format!("not the spec's images: {}", foreign.join(", ")),
            format!("`{deploy}` puts the spec's images back (or `cometctl upgrade` to move on)"),
        )
    };
    let drift = if facts.drift.is_empty() {
        Check::pass("deployment.drift", "what runs equals the spec (`cometctl diff` has no changes)")
    } else {
        let lines: Vec<String> = facts
            .drift
            .iter()
            .take(5)
            .map(|line| format!("{} {} {} ({})", line.action, line.kind, line.name, line.reason))
            .collect();
        let more = facts.drift.len().saturating_sub(lines.len());
        Check::warn(
            "deployment.drift",
            format!(
                "{} changes from the spec: {}{}",
                facts.drift.len(),
                lines.join("; "),
                if more > 0 { format!("; and {more} more") } else { String::new() }
            ),
            format!("review `cometctl diff {target}`, then `{deploy}` (or put the change into cometctl.yaml)"),
        )
    };
    vec![running, healthy, restarts, oom, images, drift]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;

    fn row(service: &str, desired: u32, running: u32, healthy: u32, unhealthy: u32) -> ServiceStatus {
        ServiceStatus {
            service: service.into(),
            desired,
            containers: desired,
            running,
            healthy,
            unhealthy,
            ..Default::default()
        }
    }

    fn container(name: &str, image: &str) -> ContainerConfig {
        ContainerConfig { name: name.into(), image: image.into(), running: true, ..Default::default() }
    }

    fn healthy() -> DeploymentFacts {
        let mut migrate = row("migrate", 1, 0, 0, 0);
        migrate.completed = 1;
        DeploymentFacts {
            deployment: "t".into(),
            target: Target::Compose,
            services: vec![row("api", 1, 1, 1, 0), row("redis-1", 1, 1, 1, 0), migrate],
            jobs: vec!["migrate".into()],
            containers: vec![container("t-api-1", "comet:1"), container("t-redis-1", "redis:7")],
            oom_kills: vec![],
            images: vec!["comet:1".into(), "redis:7".into()],
            drift: vec![],
        }
    }

    #[test]
    fn each_fact_moves_exactly_its_check() {
        assert!(evaluate(&healthy()).iter().all(|check| check.outcome == Outcome::Pass));
        type Change = fn(&mut DeploymentFacts);
        let cases: &[(Change, &str, Outcome)] = &[
            (|f| f.services[0].running = 0, "deployment.running", Outcome::Fail),
            // A role stopped cleanly exits 0 like a finished job; it is still below its count.
            (
                |f| {
                    f.services[0].running = 0;
                    f.services[0].completed = 1;
                },
                "deployment.running",
                Outcome::Fail,
            ),
            (|f| f.services[1].unhealthy = 1, "deployment.healthy", Outcome::Fail),
            (|f| f.containers[0].restart_count = 1, "deployment.restarts", Outcome::Warn),
            (|f| f.containers[0].restart_count = 5, "deployment.restarts", Outcome::Fail),
            (|f| f.oom_kills.push("t-redis-1".into()), "deployment.oom", Outcome::Fail),
            (|f| f.containers[1].oom_killed = true, "deployment.oom", Outcome::Fail),
            (|f| f.containers[1].image = "redis:6".into(), "deployment.images", Outcome::Fail),
            (
                |f| {
                    f.drift.push(ChangeLine {
                        action: "replace",
                        kind: "container",
                        name: "t-nginx-1".into(),
                        reason: "configuration changed".into(),
                    })
                },
                "deployment.drift",
                Outcome::Warn,
            ),
        ];
        for (change, id, expected) in cases {
            let mut facts = healthy();
            change(&mut facts);
            let moved: Vec<(&str, Outcome)> = evaluate(&facts)
                .iter()
                .filter(|check| check.outcome != Outcome::Pass)
                .map(|check| (check.id, check.outcome))
                .collect();
            assert_eq!(moved, vec![(*id, *expected)]);
        }
        let mut empty = healthy();
        empty.services.clear();
        let checks = evaluate(&empty);
        assert_eq!(checks[0].outcome, Outcome::Fail);
        assert!(checks[1..].iter().all(|check| check.outcome == Outcome::Skip));
    }
}
