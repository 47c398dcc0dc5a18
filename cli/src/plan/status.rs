//! `cometctl status` as data: one row per service of what the Engine runs, from the observed containers
//! (compose) or services and tasks (swarm). Pure: the time is passed in.

use std::collections::HashMap;

use serde::Serialize;

use super::labels::SERVICE_LABEL;
use super::observed::{Health, ObservedContainer, ObservedService, ObservedTask, ServiceMode};

/// One service of `cometctl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub service: String,
    /// Tasks Swarm is asked to run (replicas; completions of a job; one per node when global). Compose has no
    /// separate wish: there it is the containers found.
    pub desired: u32,
    /// Containers (compose) or current tasks (swarm) found.
    pub containers: u32,
    pub running: u32,
    /// Containers or tasks that ran to completion (exit 0): one-shot jobs such as `migrate`.
    pub completed: u32,
    pub healthy: u32,
    pub unhealthy: u32,
    pub images: Vec<String>,
    pub ports: Vec<String>,
    /// The youngest running container's age.
    pub uptime_seconds: Option<i64>,
}

/// The deployment's status, as `--output json` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub deployment: String,
    pub target: String,
    pub services: Vec<ServiceStatus>,
}

/// One row per service label, in label order.
pub fn summarise(containers: &[ObservedContainer], now: i64) -> Vec<ServiceStatus> {
    let mut rows: Vec<ServiceStatus> = Vec::new();
    for container in containers {
        let fresh = rows.last().is_none_or(|row| row.service != container.service);
        if fresh {
            rows.push(ServiceStatus { service: container.service.clone(), ..ServiceStatus::default() });
        }
        let Some(row) = rows.last_mut() else { continue };
        row.containers += 1;
        row.desired += 1;
        count_container(row, container, now);
        if !row.images.contains(&container.image) {
            row.images.push(container.image.clone());
        }
        for port in &container.ports {
            if !row.ports.contains(port) {
                row.ports.push(port.clone());
            }
        }
    }
    rows
}

/// Adds a running container's health and age to its row.
fn count_container(row: &mut ServiceStatus, container: &ObservedContainer, now: i64) {
    if !container.running {
        if container.exit_code == Some(0) {
            row.completed += 1;
        }
        return;
    }
    row.running += 1;
    let uptime = (now - container.created).max(0);
    row.uptime_seconds = Some(row.uptime_seconds.map_or(uptime, |known| known.min(uptime)));
    match container.health {
        Health::Healthy => row.healthy += 1,
        Health::Unhealthy => row.unhealthy += 1,
        Health::Starting | Health::None => {}
    }
}

/// One row per Swarm service: tasks wanted and current, running ones counted with the health and age of their
/// containers (those on this node; a task elsewhere counts as running without health).
pub fn summarise_swarm(
    deployment: &str,
    services: &[(ObservedService, Vec<ObservedTask>)],
    containers: &[ObservedContainer],
    now: i64,
) -> Vec<ServiceStatus> {
    let by_id: HashMap<&str, &ObservedContainer> =
        containers.iter().map(|container| (container.id.as_str(), container)).collect();
    let mut rows: Vec<ServiceStatus> = services
        .iter()
        .map(|(service, tasks)| {
            let is_job = matches!(service.mode, ServiceMode::ReplicatedJob(_) | ServiceMode::GlobalJob);
            let current: Vec<&ObservedTask> = tasks
                .iter()
                .filter(|task| matches!(task.desired_state.as_str(), "running" | "ready" | "accepted" | "complete"))
                .filter(|task| !is_job || task.job_iteration == service.job_iteration)
                .collect();
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            let desired = match service.mode {
                ServiceMode::Replicated(n) | ServiceMode::ReplicatedJob(n) => u32::try_from(n).unwrap_or(u32::MAX),
                ServiceMode::Global | ServiceMode::GlobalJob => count(current.len()),
            };
            let name = service.labels.get(SERVICE_LABEL).cloned().unwrap_or_else(|| {
                service.name.strip_prefix(&format!("{deployment}_")).unwrap_or(&service.name).to_owned()
            });
            let image = service.image.split('@').next().unwrap_or(&service.image).to_owned();
            let mut row = ServiceStatus {
                service: name,
                desired,
                containers: count(current.len()),
                images: vec![image],
                ports: service.ports.clone(),
                ..ServiceStatus::default()
            };
            row.completed = count(current.iter().filter(|task| task.state == "complete").count());
            for task in current.iter().filter(|task| task.state == "running") {
                match task.container_id.as_deref().and_then(|id| by_id.get(id)) {
                    Some(container) => count_container(&mut row, container, now),
                    None => row.running += 1,
                }
            }
            row
        })
        .collect();
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, running: bool, health: Health, created: i64) -> ObservedContainer {
        ObservedContainer {
            id: format!("{service}{created}"),
            name: format!("{service}-{created}"),
            service: service.into(),
            image: "comet-server:1".into(),
            running,
            health,
            created,
            ports: if service == "nginx" { vec!["443:443".into()] } else { Vec::new() },
            image_id: "sha256:1".into(),
            exit_code: None,
            labels: std::collections::HashMap::new(),
        }
    }

    #[test]
    fn rows_count_running_and_healthy_per_service() {
        let rows = summarise(
            &[
                container("api", true, Health::Healthy, 100),
                container("api", false, Health::None, 50),
                container("nginx", true, Health::Unhealthy, 160),
            ],
            200,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].containers, rows[0].running, rows[0].healthy, rows[0].uptime_seconds),
            (2, 1, 1, Some(100))
        );
        assert_eq!((rows[1].unhealthy, rows[1].ports.clone()), (1, vec!["443:443".to_owned()]));
        assert_eq!(rows[0].desired, 2, "compose wants the containers it has");
    }

    fn task(id: &str, desired: &str, state: &str, container: Option<&str>) -> ObservedTask {
        ObservedTask {
            id: id.into(),
            node_id: "n".into(),
            desired_state: desired.into(),
            state: state.into(),
            message: String::new(),
            error: String::new(),
            container_id: container.map(str::to_owned),
            exit_code: None,
            labels: std::collections::HashMap::new(),
            job_iteration: None,
            timestamp: String::new(),
        }
    }

    fn service(name: &str, mode: ServiceMode) -> ObservedService {
        ObservedService {
            id: name.into(),
            name: format!("t_{name}"),
            version: 1,
            labels: std::collections::HashMap::new(),
            image: "comet:1@sha256:abc".into(),
            mode,
            force_update: 0,
            update: None,
            job_iteration: None,
            ports: if name == "nginx" { vec!["443:443/host".into()] } else { Vec::new() },
        }
    }

    #[test]
    fn swarm_rows_count_tasks_wanted_running_and_healthy() {
        let mut healthy = container("api", true, Health::Healthy, 100);
        healthy.id = "c1".into();
        let services = vec![
            (
                service("api", ServiceMode::Replicated(3)),
                vec![
                    task("1", "running", "running", Some("c1")),
                    task("2", "running", "starting", Some("c2")),
                    task("3", "shutdown", "failed", Some("c3")),
                ],
            ),
            (service("migrate", ServiceMode::ReplicatedJob(1)), vec![task("4", "complete", "complete", None)]),
        ];
        let rows = summarise_swarm("t", &services, &[healthy], 200);
        assert_eq!(rows[0].service, "api");
        assert_eq!((rows[0].desired, rows[0].containers, rows[0].running, rows[0].healthy), (3, 2, 1, 1));
        assert_eq!((rows[0].images.clone(), rows[0].uptime_seconds), (vec!["comet:1".to_owned()], Some(100)));
        assert_eq!(
            (rows[1].service.as_str(), rows[1].desired, rows[1].running, rows[1].completed),
            ("migrate", 1, 0, 1)
        );
    }
}
