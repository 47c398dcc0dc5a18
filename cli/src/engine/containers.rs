//! Containers: list a deployment's, create, start, stop, rename, remove, inspect, read their logs; and what
//! the host offers them.

use std::collections::HashMap;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt as _;

use super::{Engine, EngineError};
use crate::plan::labels::{SERVICE_LABEL, SWARM_TASK_LABEL};
use crate::plan::observed::{ContainerConfig, ContainerDetail, Health, HostCapacity, ObservedContainer};

/// `Exited (3) 2 minutes ago` → 3.
fn exit_code_from_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split_once(')')?.0.parse().ok()
}

/// Health from the Engine's status line (`Up 5 minutes (healthy)`): the list call carries no other field.
fn health_from_status(status: &str) -> Health {
    if status.contains("(healthy)") {
        Health::Healthy
    } else if status.contains("(unhealthy)") {
        Health::Unhealthy
    } else if status.contains("(health: starting)") {
        Health::Starting
    } else {
        Health::None
    }
}

impl Engine {
    /// Every container (running or not) labelled as part of `deployment` that `deploy compose` made (Swarm's
    /// task containers carry the label too, and are left to `task_containers`), sorted by service then name.
    pub fn containers(&self, deployment: &str) -> Result<Vec<ObservedContainer>, EngineError> {
        let mut containers = self.labelled_containers(deployment)?;
        containers.retain(|container| !container.labels.contains_key(SWARM_TASK_LABEL));
        Ok(containers)
    }

    /// The containers of the deployment's Swarm tasks on this node (running or not).
    pub fn task_containers(&self, deployment: &str) -> Result<Vec<ObservedContainer>, EngineError> {
        let mut containers = self.labelled_containers(deployment)?;
        containers.retain(|container| container.labels.contains_key(SWARM_TASK_LABEL));
        Ok(containers)
    }

    fn labelled_containers(&self, deployment: &str) -> Result<Vec<ObservedContainer>, EngineError> {
        let options =
            ListContainersOptionsBuilder::default().all(true).filters(&Engine::label_filter(deployment)).build();
        let found = self
            .runtime
            .block_on(self.docker.list_containers(Some(options)))
            .map_err(|error| EngineError(format!("listing the containers of {deployment}: {error}")))?;
        let mut containers: Vec<ObservedContainer> = found
            .into_iter()
            .map(|summary| {
                let labels: HashMap<String, String> = summary.labels.unwrap_or_default().into_iter().collect();
                let mut ports: Vec<String> = summary
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|port| port.public_port.map(|public| format!("{public}:{}", port.private_port)))
                    .collect();
                ports.sort();
                ports.dedup();
                ObservedContainer {
                    id: summary.id.unwrap_or_default(),
                    name: summary
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|name| name.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                    image: summary.image.unwrap_or_default(),
                    running: summary.state.is_some_and(|state| state.to_string() == "running"),
                    health: health_from_status(summary.status.as_deref().unwrap_or("")),
                    created: summary.created.unwrap_or(0),
                    ports,
                    image_id: summary.image_id.unwrap_or_default(),
                    exit_code: exit_code_from_status(summary.status.as_deref().unwrap_or("")),
                    labels,
                }
            })
            .collect();
        containers.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        Ok(containers)
    }

    /// Stops and removes every container of `deployment` (volumes stay); returns their names.
    pub fn remove_containers(&self, deployment: &str) -> Result<Vec<String>, EngineError> {
        let mut removed = Vec::new();
        for container in self.containers(deployment)? {
            let options = RemoveContainerOptionsBuilder::default().force(true).v(false).build();
            self.runtime
                .block_on(self.docker.remove_container(&container.name, Some(options)))
                .map_err(|error| EngineError(format!("removing container {}: {error}", container.name)))?;
            removed.push(container.name);
        }
        Ok(removed)
    }

    pub fn host_capacity(&self) -> Result<HostCapacity, EngineError> {
        let info = self
            .runtime
            .block_on(self.docker.info())
            .map_err(|error| EngineError(format!("reading the Engine's host information: {error}")))?;
        Ok(HostCapacity { cpus: info.ncpu.unwrap_or(0), memory_bytes: info.mem_total.unwrap_or(0) })
    }

    /// Creates (does not start) a container from an Engine API body; `extra_networks` are connected after
    /// creation (the API attaches only one network at create time), each with its aliases.
    pub fn create_container(
        &self,
        name: &str,
        body: serde_json::Value,
        extra_networks: &[(String, Vec<String>)],
    ) -> Result<(), EngineError> {
        let body: bollard::models::ContainerCreateBody = serde_json::from_value(body)
            .map_err(|error| EngineError(format!("container {name}: invalid request: {error}")))?;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        self.runtime
            .block_on(self.docker.create_container(Some(options), body))
            .map_err(|error| EngineError(format!("creating container {name}: {error}")))?;
        for (network, aliases) in extra_networks {
            let request = bollard::models::NetworkConnectRequest {
                container: Some(name.to_owned()),
                endpoint_config: Some(bollard::models::EndpointSettings {
                    aliases: Some(aliases.clone()),
                    ..Default::default()
                }),
            };
            self.runtime
                .block_on(self.docker.connect_network(network, request))
                .map_err(|error| EngineError(format!("connecting {name} to network {network}: {error}")))?;
        }
        Ok(())
    }

    pub fn start_container(&self, name: &str) -> Result<(), EngineError> {
        self.runtime
            .block_on(self.docker.start_container(name, None::<bollard::query_parameters::StartContainerOptions>))
            .map_err(|error| EngineError(format!("starting container {name}: {error}")))
    }

    /// Stops a container: SIGTERM, then SIGKILL after `grace_seconds`.
    pub fn stop_container(&self, name: &str, grace_seconds: i32) -> Result<(), EngineError> {
        let options = StopContainerOptionsBuilder::default().t(grace_seconds).build();
        match self.runtime.block_on(self.docker.stop_container(name, Some(options))) {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(error) => Err(EngineError(format!("stopping container {name}: {error}"))),
        }
    }

    /// Removes a container, stopping it first if it runs.
    pub fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(false).build();
        self.runtime
            .block_on(self.docker.remove_container(name, Some(options)))
            .map_err(|error| EngineError(format!("removing container {name}: {error}")))
    }

    pub fn rename_container(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        let options = RenameContainerOptionsBuilder::default().name(new_name).build();
        self.runtime
            .block_on(self.docker.rename_container(name, options))
            .map_err(|error| EngineError(format!("renaming container {name} to {new_name}: {error}")))
    }

    /// Sends a signal (`HUP`: NGINX reloads its configuration and resolves its upstreams again).
    pub fn signal_container(&self, name: &str, signal: &str) -> Result<(), EngineError> {
        let options = KillContainerOptionsBuilder::default().signal(signal).build();
        self.runtime
            .block_on(self.docker.kill_container(name, Some(options)))
            .map_err(|error| EngineError(format!("sending SIG{signal} to container {name}: {error}")))
    }

    fn inspect(&self, name: &str) -> Result<Option<bollard::models::ContainerInspectResponse>, EngineError> {
        match self
            .runtime
            .block_on(self.docker.inspect_container(name, None::<bollard::query_parameters::InspectContainerOptions>))
        {
            Ok(found) => Ok(Some(found)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(EngineError(format!("inspecting container {name}: {error}"))),
        }
    }

    /// A container's state, or `None` when there is no such container.
    pub fn container_detail(&self, name: &str) -> Result<Option<ContainerDetail>, EngineError> {
        let Some(found) = self.inspect(name)? else { return Ok(None) };
        let state = found.state.unwrap_or_default();
        let health = state.health.clone().unwrap_or_default();
        let health_status = health.status.map(|status| status.to_string()).unwrap_or_default();
        Ok(Some(ContainerDetail {
            running: state.running.unwrap_or(false),
            status: state.status.map(|status| status.to_string()).unwrap_or_default(),
            exit_code: if state.running.unwrap_or(false) { None } else { state.exit_code },
            health: match health_status.as_str() {
                "healthy" => Health::Healthy,
                "unhealthy" => Health::Unhealthy,
                "starting" => Health::Starting,
                _ => Health::None,
            },
            health_log: health
                .log
                .unwrap_or_default()
                .into_iter()
                .map(|probe| {
                    format!("exit {}: {}", probe.exit_code.unwrap_or(-1), probe.output.unwrap_or_default().trim())
                })
                .collect(),
            restart_count: found.restart_count.unwrap_or(0),
        }))
    }

    /// How a container is configured and has fared; `None` when there is no such container.
    pub fn container_config(&self, name: &str) -> Result<Option<ContainerConfig>, EngineError> {
        let Some(found) = self.inspect(name)? else { return Ok(None) };
        let config = found.config.unwrap_or_default();
        let host = found.host_config.unwrap_or_default();
        let state = found.state.unwrap_or_default();
        Ok(Some(ContainerConfig {
            name: name.to_owned(),
            user: config.user.unwrap_or_default(),
            read_only: host.readonly_rootfs.unwrap_or(false),
            cap_drop: host.cap_drop.unwrap_or_default(),
            env: config
                .env
                .unwrap_or_default()
                .into_iter()
                .map(|entry| match entry.split_once('=') {
                    Some((key, value)) => (key.to_owned(), value.to_owned()),
                    None => (entry, String::new()),
                })
                .collect(),
            restart_count: found.restart_count.unwrap_or(0),
            oom_killed: state.oom_killed.unwrap_or(false),
            running: state.running.unwrap_or(false),
            image: config.image.unwrap_or_default(),
        }))
    }

    /// The last `lines` lines of a container's output (stdout and stderr interleaved).
    pub fn log_tail(&self, name: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        let tail = lines.to_string();
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&tail).build();
        self.runtime.block_on(async {
            let mut stream = self.docker.logs(name, Some(options));
            let mut text = String::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|error| EngineError(format!("reading the logs of {name}: {error}")))?;
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
            Ok(text.lines().map(str::to_owned).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_comes_from_the_status_line() {
        assert_eq!(health_from_status("Up 5 minutes (healthy)"), Health::Healthy);
        assert_eq!(health_from_status("Up 1 second (health: starting)"), Health::Starting);
        assert_eq!(health_from_status("Up 2 hours (unhealthy)"), Health::Unhealthy);
        assert_eq!(health_from_status("Exited (1) 3 seconds ago"), Health::None);
    }
}
