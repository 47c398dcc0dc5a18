//! The Docker Engine, through its API (bollard): the only code that imports bollard. Calls block on a small
//! runtime of their own, so the commands stay synchronous. `DOCKER_HOST` picks the engine (the local socket
//! by default); the API version is negotiated, so older engines (20.10, API 1.41) work.

use bollard::Docker;
use std::collections::HashMap;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ImportImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt as _;

/// Why the Engine could not do what was asked; the text says what was being done and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(String);

/// A local image, as the Engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    pub id: String,
    pub size: i64,
}

/// The label every object of a deployment carries, with the deployment's name.
pub const DEPLOYMENT_LABEL: &str = "io.comet.deployment";
/// The label naming the service (spec key or store member) an object belongs to.
pub const SERVICE_LABEL: &str = "io.comet.service";

/// Health as the Engine reports it for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    /// The container has no health check.
    None,
}

/// One container of a deployment, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub name: String,
    pub service: String,
    pub image: String,
    pub running: bool,
    pub health: Health,
    /// When it was created, seconds since the epoch.
    pub created: i64,
    /// Published ports as `host:container`.
    pub ports: Vec<String>,
    /// The image the container runs, by id (`sha256:…`).
    pub image_id: String,
    /// The exit code of a stopped container (from the Engine's status line), if it has exited.
    pub exit_code: Option<i64>,
    pub labels: HashMap<String, String>,
}

/// A container's state in detail (`GET /containers/{id}/json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDetail {
    pub running: bool,
    /// `created`, `running`, `exited`, `restarting`, …
    pub status: String,
    pub exit_code: Option<i64>,
    pub health: Health,
    /// The output of the last health probes, oldest first.
    pub health_log: Vec<String>,
    pub restart_count: i64,
}

/// What the Engine's host offers containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCapacity {
    pub cpus: i64,
    pub memory_bytes: i64,
}

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

/// A connection to one Docker Engine.
pub struct Engine {
    docker: Docker,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Connects and checks that the Engine answers.
    pub fn connect() -> Result<Engine, EngineError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| EngineError(format!("starting the Engine client: {error}")))?;
        let unreachable = |error: bollard::errors::Error| {
            EngineError(format!(
                "the Docker Engine does not answer ({error}); is dockerd running, and does DOCKER_HOST (unset: \
                 /var/run/docker.sock) point at it?"
            ))
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = runtime.block_on(docker.negotiate_version()).map_err(unreachable)?;
        runtime.block_on(docker.ping()).map_err(unreachable)?;
        Ok(Engine { docker, runtime })
    }

    /// Loads a `docker save` archive (`POST /images/load`).
    pub fn load_image(&self, archive: Vec<u8>) -> Result<(), EngineError> {
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        self.runtime.block_on(async {
            let mut progress = self.docker.import_image(options, bollard::body_full(archive.into()), None);
            while let Some(step) = progress.next().await {
                let step = step.map_err(|error| EngineError(format!("loading the image: {error}")))?;
                if let Some(error) = step.error {
                    return Err(EngineError(format!("the Engine refused the image: {error}")));
                }
            }
            Ok(())
        })
    }

    /// Streams `docker save` of `references` (one bundle) into `sink`; returns the bytes written.
    pub fn save_images(&self, references: &[&str], sink: &mut dyn std::io::Write) -> Result<u64, EngineError> {
        self.runtime.block_on(async {
            let mut chunks = self.docker.export_images(references);
            let mut written = 0u64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|error| EngineError(format!("saving {}: {error}", references.join(", "))))?;
                sink.write_all(&chunk).map_err(|error| EngineError(format!("writing the bundle: {error}")))?;
                written += chunk.len() as u64;
            }
            Ok(written)
        })
    }

    /// Loads a bundle of images (`docker save` format) read from `source` in 1 MiB chunks; returns the
    /// references the Engine reports as loaded.
    pub fn load_images(&self, source: impl std::io::Read + Send + 'static) -> Result<Vec<String>, EngineError> {
        let chunks = futures::stream::iter(Chunks { source, failed: false });
        let options = ImportImageOptionsBuilder::default().quiet(false).build();
        self.runtime.block_on(async {
            let mut progress = self.docker.import_image_stream(options, chunks, None);
            let mut loaded = Vec::new();
            while let Some(step) = progress.next().await {
                let step = step.map_err(|error| EngineError(format!("loading the bundle: {error}")))?;
                if let Some(line) = step.stream {
                    loaded.extend(
                        line.lines()
                            .filter_map(|line| line.strip_prefix("Loaded image: "))
                            .map(|r| r.trim().to_owned()),
                    );
                }
            }
            Ok(loaded)
        })
    }

    /// Every container (running or not) labelled as part of `deployment`, sorted by service then name.
    pub fn containers(&self, deployment: &str) -> Result<Vec<ObservedContainer>, EngineError> {
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

    fn label_filter(deployment: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_owned(), vec![format!("{DEPLOYMENT_LABEL}={deployment}")])])
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

    /// The networks labelled as part of `deployment`, by name.
    pub fn networks(&self, deployment: &str) -> Result<Vec<String>, EngineError> {
        let options = ListNetworksOptionsBuilder::default().filters(&Engine::label_filter(deployment)).build();
        let found = self
            .runtime
            .block_on(self.docker.list_networks(Some(options)))
            .map_err(|error| EngineError(format!("listing the networks of {deployment}: {error}")))?;
        let mut names: Vec<String> = found.into_iter().filter_map(|network| network.name).collect();
        names.sort();
        Ok(names)
    }

    pub fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        self.runtime
            .block_on(self.docker.remove_network(name))
            .map_err(|error| EngineError(format!("removing network {name}: {error}")))
    }

    /// The volumes labelled as part of `deployment`, by name.
    pub fn volumes(&self, deployment: &str) -> Result<Vec<String>, EngineError> {
        let options = ListVolumesOptionsBuilder::default().filters(&Engine::label_filter(deployment)).build();
        let found = self
            .runtime
            .block_on(self.docker.list_volumes(Some(options)))
            .map_err(|error| EngineError(format!("listing the volumes of {deployment}: {error}")))?;
        let mut names: Vec<String> = found.volumes.unwrap_or_default().into_iter().map(|volume| volume.name).collect();
        names.sort();
        Ok(names)
    }

    pub fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.runtime
            .block_on(self.docker.remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>))
            .map_err(|error| EngineError(format!("removing volume {name}: {error}")))
    }

    /// Pulls an image from its registry (credentials from the Engine's own configuration are not used: a
    /// private registry must allow this host, or the image is loaded with `cometctl images load`).
    pub fn pull_image(&self, reference: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::CreateImageOptionsBuilder::default().from_image(reference).build();
        self.runtime.block_on(async {
            let mut progress = self.docker.create_image(Some(options), None, None);
            while let Some(step) = progress.next().await {
                step.map_err(|error| EngineError(format!("pulling {reference}: {error}")))?;
            }
            Ok(())
        })
    }

    /// The local image with this reference, if the Engine has it.
    pub fn image(&self, reference: &str) -> Result<Option<LocalImage>, EngineError> {
        match self.runtime.block_on(self.docker.inspect_image(reference)) {
            Ok(found) => Ok(Some(LocalImage { id: found.id.unwrap_or_default(), size: found.size.unwrap_or(0) })),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(EngineError(format!("inspecting image {reference}: {error}"))),
        }
    }
}

/// Containers, networks and volumes: what `deploy` applies. Bodies are the Engine API's own JSON (see
/// `deploy::containers`), checked against bollard's model before they are sent.
impl Engine {
    pub fn host_capacity(&self) -> Result<HostCapacity, EngineError> {
        let info = self
            .runtime
            .block_on(self.docker.info())
            .map_err(|error| EngineError(format!("reading the Engine's host information: {error}")))?;
        Ok(HostCapacity { cpus: info.ncpu.unwrap_or(0), memory_bytes: info.mem_total.unwrap_or(0) })
    }

    /// Creates a network (bridge on one host, encrypted overlay in a swarm) unless it exists.
    pub fn ensure_network(&self, name: &str, body: serde_json::Value) -> Result<bool, EngineError> {
        if self
            .runtime
            .block_on(self.docker.inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>))
            .is_ok()
        {
            return Ok(false);
        }
        let request: bollard::models::NetworkCreateRequest = serde_json::from_value(body)
            .map_err(|error| EngineError(format!("network {name}: invalid request: {error}")))?;
        self.runtime
            .block_on(self.docker.create_network(request))
            .map_err(|error| EngineError(format!("creating network {name}: {error}")))?;
        Ok(true)
    }

    /// Creates a named volume unless it exists.
    pub fn ensure_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<bool, EngineError> {
        if self.runtime.block_on(self.docker.inspect_volume(name)).is_ok() {
            return Ok(false);
        }
        let options = bollard::models::VolumeCreateOptions {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..Default::default()
        };
        self.runtime
            .block_on(self.docker.create_volume(options))
            .map_err(|error| EngineError(format!("creating volume {name}: {error}")))?;
        Ok(true)
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

    /// A container's state, or `None` when there is no such container.
    pub fn container_detail(&self, name: &str) -> Result<Option<ContainerDetail>, EngineError> {
        let found = match self
            .runtime
            .block_on(self.docker.inspect_container(name, None::<bollard::query_parameters::InspectContainerOptions>))
        {
            Ok(found) => found,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(error) => return Err(EngineError(format!("inspecting container {name}: {error}"))),
        };
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

/// A reader as a stream of 1 MiB chunks; a read error ends the stream (the Engine then refuses the truncated
/// archive, and the error names the load).
struct Chunks<R> {
    source: R,
    failed: bool,
}

impl<R: std::io::Read> Iterator for Chunks<R> {
    type Item = bytes::Bytes;

    fn next(&mut self) -> Option<bytes::Bytes> {
        if self.failed {
            return None;
        }
        let mut buffer = vec![0u8; 1 << 20];
        match self.source.read(&mut buffer) {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some(buffer.into())
            }
            Err(_) => {
                self.failed = true;
                None
            }
        }
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
