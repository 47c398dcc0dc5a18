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

/// The label the Engine puts on a Swarm task's container, with the task's id.
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";

/// One container of a deployment, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
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

/// Where this Engine stands in a swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmRole {
    /// Not part of a swarm.
    Inactive,
    /// A manager: services can be created and inspected from here.
    Manager { node_id: String },
    /// A worker, or a node joining, leaving or in error (`state` says which).
    Other { state: String },
}

/// One node of the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmNode {
    pub id: String,
    pub hostname: String,
    pub labels: HashMap<String, String>,
    /// Ready and available for tasks (not paused or drained).
    pub schedulable: bool,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

/// How a service runs its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMode {
    Replicated(u64),
    Global,
    /// Runs to completion this many times.
    ReplicatedJob(u64),
    GlobalJob,
}

/// A rolling update of a service, as the Engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`, `rollback_completed`.
    pub state: String,
    pub message: String,
    pub started_at: String,
}

/// One Swarm service of a deployment, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedService {
    pub id: String,
    pub name: String,
    /// The version index an update must name.
    pub version: u64,
    /// The service's own labels (not its containers').
    pub labels: HashMap<String, String>,
    pub image: String,
    pub mode: ServiceMode,
    pub force_update: u64,
    pub update: Option<UpdateStatus>,
    /// The job's current run (jobs only).
    pub job_iteration: Option<u64>,
    /// Published ports as `published:target` (with `/host` for host-mode ports).
    pub ports: Vec<String>,
}

/// One task of a service, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTask {
    pub id: String,
    pub node_id: String,
    /// `running`, `shutdown`, `complete`, …: what the orchestrator wants.
    pub desired_state: String,
    /// What the task is: `new` … `starting`, `running`, `complete`, `failed`, `rejected`, `shutdown`, …
    pub state: String,
    pub message: String,
    pub error: String,
    pub container_id: Option<String>,
    pub exit_code: Option<i64>,
    /// The labels of its container (from the task's spec).
    pub labels: HashMap<String, String>,
    pub job_iteration: Option<u64>,
    /// When the task last changed state (RFC 3339).
    pub timestamp: String,
}

/// A Swarm secret or config: name, id and labels (never the content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmObject {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// Which kind of Swarm object holds a file for services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Secret,
    Config,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
        }
    }
}

/// The keys of `original` (recursively) that a typed model dropped: a misspelt or unsupported field would
/// otherwise vanish silently between our JSON and the request.
fn dropped_fields(original: &serde_json::Value, typed: &serde_json::Value, path: &str, dropped: &mut Vec<String>) {
    use serde_json::Value;
    match (original, typed) {
        (Value::Object(original), Value::Object(typed)) => {
            for (key, value) in original {
                let here = format!("{path}.{key}");
                match typed.get(key) {
                    None if !value.is_null() => dropped.push(here),
                    None => {}
                    Some(typed_value) => dropped_fields(value, typed_value, &here, dropped),
                }
            }
        }
        (Value::Array(original), Value::Array(typed)) => {
            for (index, (value, typed_value)) in original.iter().zip(typed).enumerate() {
                dropped_fields(value, typed_value, &format!("{path}[{index}]"), dropped);
            }
        }
        _ => {}
    }
}

/// `body` as bollard's model of it, refusing fields the model does not know.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    what: &str,
    body: serde_json::Value,
) -> Result<T, EngineError> {
    let typed: T = serde_json::from_value(body.clone())
        .map_err(|error| EngineError(format!("{what}: invalid request: {error}")))?;
    let back = serde_json::to_value(&typed).map_err(|error| EngineError(format!("{what}: {error}")))?;
    let mut dropped = Vec::new();
    dropped_fields(&body, &back, "", &mut dropped);
    if !dropped.is_empty() {
        return Err(EngineError(format!("{what}: the Engine client does not know the fields {}", dropped.join(", "))));
    }
    Ok(typed)
}

/// Checks that a `ServiceSpec` survives the Engine client's model whole (no unknown or misspelt field), before
/// anything is changed.
pub fn check_service_spec(spec: serde_json::Value) -> Result<(), EngineError> {
    let name = spec["Name"].as_str().unwrap_or("(unnamed)").to_owned();
    typed::<bollard::models::ServiceSpec>(&format!("service {name}"), spec).map(|_| ())
}

fn labels_of(labels: Option<HashMap<String, String>>) -> HashMap<String, String> {
    labels.unwrap_or_default()
}

/// Swarm: the node's role, nodes, services, tasks, secrets and configs.
impl Engine {
    pub fn swarm_role(&self) -> Result<SwarmRole, EngineError> {
        let info = self
            .runtime
            .block_on(self.docker.info())
            .map_err(|error| EngineError(format!("reading the Engine's swarm state: {error}")))?;
        let swarm = info.swarm.unwrap_or_default();
        let state = swarm.local_node_state.map(|state| state.to_string()).unwrap_or_default();
        Ok(match state.as_str() {
            "" | "inactive" => SwarmRole::Inactive,
            "active" if swarm.control_available.unwrap_or(false) => {
                SwarmRole::Manager { node_id: swarm.node_id.unwrap_or_default() }
            }
            "active" => SwarmRole::Other { state: "a worker".to_owned() },
            other => SwarmRole::Other {
                state: match swarm.error.filter(|error| !error.is_empty()) {
                    Some(error) => format!("{other}: {error}"),
                    None => other.to_owned(),
                },
            },
        })
    }

    /// Makes this Engine the single manager of a new swarm; returns the node id.
    pub fn init_swarm(&self, advertise_addr: &str, listen_addr: &str) -> Result<String, EngineError> {
        let request = bollard::models::SwarmInitRequest {
            advertise_addr: Some(advertise_addr.to_owned()),
            listen_addr: Some(listen_addr.to_owned()),
            ..Default::default()
        };
        self.runtime
            .block_on(self.docker.init_swarm(request))
            .map_err(|error| EngineError(format!("initialising a swarm on this Engine: {error}")))
    }

    pub fn nodes(&self) -> Result<Vec<SwarmNode>, EngineError> {
        let found = self
            .runtime
            .block_on(self.docker.list_nodes(None::<bollard::query_parameters::ListNodesOptions>))
            .map_err(|error| EngineError(format!("listing the swarm's nodes: {error}")))?;
        let mut nodes: Vec<SwarmNode> = found
            .into_iter()
            .map(|node| {
                let spec = node.spec.unwrap_or_default();
                let description = node.description.unwrap_or_default();
                let resources = description.resources.unwrap_or_default();
                let ready =
                    node.status.and_then(|status| status.state).is_some_and(|state| state.to_string() == "ready");
                let active = spec.availability.is_some_and(|availability| availability.to_string() == "active");
                SwarmNode {
                    id: node.id.unwrap_or_default(),
                    hostname: description.hostname.unwrap_or_default(),
                    labels: labels_of(spec.labels),
                    schedulable: ready && active,
                    nano_cpus: resources.nano_cpus.unwrap_or(0),
                    memory_bytes: resources.memory_bytes.unwrap_or(0),
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(nodes)
    }

    /// Adds labels to a node (the ones it has stay).
    pub fn add_node_labels(&self, node_id: &str, labels: &[(String, String)]) -> Result<(), EngineError> {
        let failed = |error: bollard::errors::Error| EngineError(format!("labelling node {node_id}: {error}"));
        let node = self.runtime.block_on(self.docker.inspect_node(node_id)).map_err(failed)?;
        let version = node.version.and_then(|version| version.index).unwrap_or(0);
        let mut spec = node.spec.unwrap_or_default();
        let mut all = labels_of(spec.labels.take());
        all.extend(labels.iter().cloned());
        spec.labels = Some(all);
        let options = bollard::query_parameters::UpdateNodeOptionsBuilder::default()
            .version(i64::try_from(version).unwrap_or(i64::MAX))
            .build();
        self.runtime.block_on(self.docker.update_node(node_id, spec, options)).map_err(failed)
    }

    /// The Swarm services labelled as part of `deployment`, by name.
    pub fn services(&self, deployment: &str) -> Result<Vec<ObservedService>, EngineError> {
        let options = bollard::query_parameters::ListServicesOptionsBuilder::default()
            .filters(&Engine::label_filter(deployment))
            .build();
        let found = self
            .runtime
            .block_on(self.docker.list_services(Some(options)))
            .map_err(|error| EngineError(format!("listing the services of {deployment}: {error}")))?;
        let mut services: Vec<ObservedService> = found.into_iter().map(observed_service).collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(services)
    }

    /// One service by name or id, or `None` when there is no such service.
    pub fn service(&self, name: &str) -> Result<Option<ObservedService>, EngineError> {
        let options = None::<bollard::query_parameters::InspectServiceOptions>;
        match self.runtime.block_on(self.docker.inspect_service(name, options)) {
            Ok(found) => Ok(Some(observed_service(found))),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(EngineError(format!("inspecting service {name}: {error}"))),
        }
    }

    /// Creates a service from an Engine API `ServiceSpec`; returns its id. The daemon does not ask a registry
    /// for the image's digest (since API 1.30 that is the client's job, and this client does not): a task
    /// runs the image its node has under the reference, pulling it only when the node has none.
    pub fn create_service(&self, spec: serde_json::Value) -> Result<String, EngineError> {
        let name = spec["Name"].as_str().unwrap_or("(unnamed)").to_owned();
        let spec: bollard::models::ServiceSpec = typed(&format!("service {name}"), spec)?;
        let created = self
            .runtime
            .block_on(self.docker.create_service(spec, None))
            .map_err(|error| EngineError(format!("creating service {name}: {error}")))?;
        Ok(created.id.unwrap_or_default())
    }

    /// Replaces a service's spec; `version` is the index it was read at (a concurrent change makes the
    /// Engine refuse, rather than one change silently undoing the other).
    pub fn update_service(&self, id: &str, version: u64, spec: serde_json::Value) -> Result<(), EngineError> {
        let name = spec["Name"].as_str().unwrap_or(id).to_owned();
        let spec: bollard::models::ServiceSpec = typed(&format!("service {name}"), spec)?;
        let version = i32::try_from(version)
            .map_err(|_| EngineError(format!("service {name}: version {version} does not fit the Engine client")))?;
        let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default().version(version).build();
        self.runtime
            .block_on(self.docker.update_service(id, spec, options, None))
            .map(|_| ())
            .map_err(|error| EngineError(format!("updating service {name}: {error}")))
    }

    pub fn remove_service(&self, name: &str) -> Result<(), EngineError> {
        match self.runtime.block_on(self.docker.delete_service(name)) {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(error) => Err(EngineError(format!("removing service {name}: {error}"))),
        }
    }

    /// The tasks of a service (current and recent history), newest first.
    pub fn tasks(&self, service: &str) -> Result<Vec<ObservedTask>, EngineError> {
        let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
        let options = bollard::query_parameters::ListTasksOptionsBuilder::default().filters(&filters).build();
        let found = self
            .runtime
            .block_on(self.docker.list_tasks(Some(options)))
            .map_err(|error| EngineError(format!("listing the tasks of {service}: {error}")))?;
        let mut tasks: Vec<ObservedTask> = found
            .into_iter()
            .map(|task| {
                let status = task.status.unwrap_or_default();
                let container = status.container_status.unwrap_or_default();
                ObservedTask {
                    id: task.id.unwrap_or_default(),
                    node_id: task.node_id.unwrap_or_default(),
                    desired_state: task.desired_state.map(|state| state.to_string()).unwrap_or_default(),
                    state: status.state.map(|state| state.to_string()).unwrap_or_default(),
                    message: status.message.unwrap_or_default(),
                    error: status.err.unwrap_or_default(),
                    container_id: container.container_id.filter(|id| !id.is_empty()),
                    exit_code: container.exit_code,
                    labels: labels_of(task.spec.and_then(|spec| spec.container_spec).and_then(|spec| spec.labels)),
                    job_iteration: task.job_iteration.and_then(|version| version.index),
                    timestamp: status.timestamp.unwrap_or_default(),
                }
            })
            .collect();
        tasks.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
        Ok(tasks)
    }

    /// The secrets or configs labelled as part of `deployment`, by name.
    pub fn swarm_objects(&self, kind: ObjectKind, deployment: &str) -> Result<Vec<SwarmObject>, EngineError> {
        let failed = |error: String| EngineError(format!("listing the {}s of {deployment}: {error}", kind.as_str()));
        let mut objects: Vec<SwarmObject> = match kind {
            ObjectKind::Secret => {
                let options = bollard::query_parameters::ListSecretsOptionsBuilder::default()
                    .filters(&Engine::label_filter(deployment))
                    .build();
                self.runtime
                    .block_on(self.docker.list_secrets(Some(options)))
                    .map_err(|error| failed(error.to_string()))?
                    .into_iter()
                    .map(|secret| {
                        let spec = secret.spec.unwrap_or_default();
                        SwarmObject {
                            id: secret.id.unwrap_or_default(),
                            name: spec.name.unwrap_or_default(),
                            labels: labels_of(spec.labels),
                        }
                    })
                    .collect()
            }
            ObjectKind::Config => {
                let filters = serde_json::to_string(&Engine::label_filter(deployment))
                    .map_err(|error| failed(error.to_string()))?;
                let path = format!("/configs?filters={}", percent_encode(&filters));
                let reply = self.raw("GET", &path, None).map_err(|error| failed(error.0))?;
                let listed: Vec<bollard::models::Config> =
                    serde_json::from_slice(&reply).map_err(|error| failed(error.to_string()))?;
                listed
                    .into_iter()
                    .map(|config| {
                        let spec = config.spec.unwrap_or_default();
                        SwarmObject {
                            id: config.id.unwrap_or_default(),
                            name: spec.name.unwrap_or_default(),
                            labels: labels_of(spec.labels),
                        }
                    })
                    .collect()
            }
        };
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    /// Creates a secret or config holding `content`; returns its id.
    pub fn create_swarm_object(
        &self,
        kind: ObjectKind,
        name: &str,
        content: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError> {
        use base64::Engine as _;
        let failed = |error: String| EngineError(format!("creating {} {name}: {error}", kind.as_str()));
        let data = base64::engine::general_purpose::STANDARD.encode(content);
        match kind {
            ObjectKind::Secret => {
                let spec = bollard::models::SecretSpec {
                    name: Some(name.to_owned()),
                    labels: Some(labels),
                    data: Some(data),
                    ..Default::default()
                };
                let created = self
                    .runtime
                    .block_on(self.docker.create_secret(spec))
                    .map_err(|error| failed(error.to_string()))?;
                Ok(created.id)
            }
            ObjectKind::Config => {
                let body = serde_json::json!({ "Name": name, "Labels": labels, "Data": data });
                let reply = self
                    .raw("POST", "/configs/create", Some(body.to_string().into_bytes()))
                    .map_err(|e| failed(e.0))?;
                let created: bollard::models::IdResponse =
                    serde_json::from_slice(&reply).map_err(|error| failed(error.to_string()))?;
                Ok(created.id)
            }
        }
    }

    pub fn remove_swarm_object(&self, kind: ObjectKind, id: &str) -> Result<(), EngineError> {
        let failed = |error: String| EngineError(format!("removing {} {id}: {error}", kind.as_str()));
        match kind {
            ObjectKind::Secret => match self.runtime.block_on(self.docker.delete_secret(id)) {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
                Err(error) => Err(failed(error.to_string())),
            },
            ObjectKind::Config => {
                self.raw("DELETE", &format!("/configs/{id}"), None).map(|_| ()).map_err(|e| failed(e.0))
            }
        }
    }

    /// One request to the Engine API without bollard (which has no `/configs` endpoints), over the same
    /// connection `DOCKER_HOST` names (a unix socket or plain `tcp://`), at the negotiated API version. A reply
    /// other than 2xx (404 for a DELETE excepted) is an error carrying the Engine's message.
    fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Vec<u8>, EngineError> {
        use http_body_util::BodyExt as _;
        let version = self.docker.client_version();
        let uri = format!("/v{}.{}{path}", version.major_version, version.minor_version);
        let host = crate::env::docker_host().unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let failed = |error: String| EngineError(format!("{method} {path}: {error}"));
        self.runtime.block_on(async {
            let request = hyper::Request::builder()
                .method(method)
                .uri(&uri)
                .header("Host", "docker")
                .header("Content-Type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
                .map_err(|error| failed(error.to_string()))?;
            let response = if let Some(socket) = host.strip_prefix("unix://") {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|error| failed(format!("{socket}: {error}")))?;
                send(stream, request).await
            } else if let Some(address) = host.strip_prefix("tcp://") {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .map_err(|error| failed(format!("{address}: {error}")))?;
                send(stream, request).await
            } else {
                Err(format!(
                    "Swarm configs need the Engine on a unix socket or a plain tcp:// address, and DOCKER_HOST is \
                     `{host}`: run cometctl on a manager node with its local socket"
                ))
            }
            .map_err(failed)?;
            let status = response.status();
            let bytes = response.into_body().collect().await.map_err(|error| failed(error.to_string()))?.to_bytes();
            if status.is_success() || (method == "DELETE" && status.as_u16() == 404) {
                return Ok(bytes.to_vec());
            }
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|reply| reply["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            Err(failed(format!("the Engine answered {status}: {message}")))
        })
    }
}

/// Sends one HTTP/1 request over `stream`.
async fn send<S>(
    stream: S,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(|error| error.to_string())
}

/// A query-string value with everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn observed_service(service: bollard::models::Service) -> ObservedService {
    let spec = service.spec.unwrap_or_default();
    let template = spec.task_template.unwrap_or_default();
    let container = template.container_spec.unwrap_or_default();
    let mode = spec.mode.unwrap_or_default();
    let count = |value: Option<i64>| u64::try_from(value.unwrap_or(1)).unwrap_or(0);
    let mode = if let Some(replicated) = mode.replicated {
        ServiceMode::Replicated(count(replicated.replicas))
    } else if let Some(job) = mode.replicated_job {
        ServiceMode::ReplicatedJob(count(job.total_completions))
    } else if mode.global_job.is_some() {
        ServiceMode::GlobalJob
    } else if mode.global.is_some() {
        ServiceMode::Global
    } else {
        ServiceMode::Replicated(1)
    };
    let mut ports: Vec<String> = spec
        .endpoint_spec
        .and_then(|endpoint| endpoint.ports)
        .unwrap_or_default()
        .iter()
        .filter_map(|port| {
            let published = port.published_port.filter(|published| *published > 0)?;
            let host = port.publish_mode.is_some_and(|mode| mode.to_string() == "host");
            Some(format!("{published}:{}{}", port.target_port.unwrap_or(0), if host { "/host" } else { "" }))
        })
        .collect();
    ports.sort();
    ObservedService {
        id: service.id.unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        version: service.version.and_then(|version| version.index).unwrap_or(0),
        labels: labels_of(spec.labels),
        image: container.image.unwrap_or_default(),
        mode,
        force_update: template.force_update.unwrap_or(0),
        update: service.update_status.map(|status| UpdateStatus {
            state: status.state.map(|state| state.to_string()).unwrap_or_default(),
            message: status.message.unwrap_or_default(),
            started_at: status.started_at.unwrap_or_default(),
        }),
        job_iteration: service.job_status.and_then(|status| status.job_iteration).and_then(|version| version.index),
        ports,
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
    fn fields_a_model_drops_are_named() {
        let body = serde_json::json!({
            "Name": "t_api",
            "TaskTemplate": { "ContainerSpec": { "Image": "comet:1", "Imagee": "typo" }, "ForceUpdate": 0 },
            "Mode": { "Replicated": { "Replicas": 2 } },
        });
        let error = typed::<bollard::models::ServiceSpec>("service t_api", body).expect_err("a dropped field");
        assert!(error.to_string().contains(".TaskTemplate.ContainerSpec.Imagee"), "{error}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode(r#"{"label":["a=b"]}"#), "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D");
    }

    #[test]
    fn health_comes_from_the_status_line() {
        assert_eq!(health_from_status("Up 5 minutes (healthy)"), Health::Healthy);
        assert_eq!(health_from_status("Up 1 second (health: starting)"), Health::Starting);
        assert_eq!(health_from_status("Up 2 hours (unhealthy)"), Health::Unhealthy);
        assert_eq!(health_from_status("Exited (1) 3 seconds ago"), Health::None);
    }
}
