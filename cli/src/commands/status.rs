//! `cometctl status`: what the Docker Engine runs for this deployment, found by its labels, one row per
//! service: containers running of those found, health, image, published ports, uptime.

use anyhow::Result;
use serde::Serialize;

use crate::args::StatusArgs;
use crate::engine::{Engine, Health, ObservedContainer};
use crate::folder::DeploymentFolder;
use crate::printer::{Printer, ServiceStatus};

/// Seconds since the epoch, for uptimes.
fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// The deployment's status, as `--output json` prints it.
#[derive(Debug, Serialize)]
struct Status {
    deployment: String,
    target: String,
    services: Vec<ServiceStatus>,
}

/// One row per service label, in label order.
fn summarise(containers: &[ObservedContainer], now: i64) -> Vec<ServiceStatus> {
    let mut rows: Vec<ServiceStatus> = Vec::new();
    for container in containers {
        let fresh = rows.last().is_none_or(|row| row.service != container.service);
        if fresh {
            rows.push(ServiceStatus { service: container.service.clone(), ..ServiceStatus::default() });
        }
        let Some(row) = rows.last_mut() else { continue };
        row.containers += 1;
        if container.running {
            row.running += 1;
            let uptime = (now - container.created).max(0);
            row.uptime_seconds = Some(row.uptime_seconds.map_or(uptime, |known| known.min(uptime)));
        }
        match container.health {
            Health::Healthy => row.healthy += 1,
            Health::Unhealthy => row.unhealthy += 1,
            Health::Starting | Health::None => {}
        }
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

pub fn run(args: &StatusArgs, printer: &Printer) -> Result<()> {
    let spec = DeploymentFolder::new(&args.dir).read_spec()?;
    let engine = Engine::connect()?;
    let containers = engine.containers(spec.name.as_str())?;
    let status = Status {
        deployment: spec.name.to_string(),
        target: spec.target.as_str().to_owned(),
        services: summarise(&containers, now_seconds()),
    };
    if printer.is_json() {
        printer.json(&status)?;
    } else if status.services.is_empty() {
        printer.note(&format!("nothing of deployment `{}` runs on this Docker Engine", status.deployment));
    } else {
        printer.service_status(&status.services)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, running: bool, health: Health, created: i64) -> ObservedContainer {
        ObservedContainer {
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
    }
}
