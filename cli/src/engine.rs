//! The Docker Engine, through its API (bollard): the only code that imports bollard. Calls block on a small
//! runtime of their own, so the commands stay synchronous. `DOCKER_HOST` picks the engine (the local socket
//! by default); the API version is negotiated, so older engines (20.10, API 1.41) work.

use bollard::Docker;
use std::collections::HashMap;

use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder,
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
                let labels = summary.labels.unwrap_or_default();
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

    /// The local image with this reference, if the Engine has it.
    pub fn image(&self, reference: &str) -> Result<Option<LocalImage>, EngineError> {
        match self.runtime.block_on(self.docker.inspect_image(reference)) {
            Ok(found) => Ok(Some(LocalImage { id: found.id.unwrap_or_default(), size: found.size.unwrap_or(0) })),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(EngineError(format!("inspecting image {reference}: {error}"))),
        }
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
