//! The Docker Engine, through its API (bollard): the only code that imports bollard. Calls block on a small
//! runtime of their own, so the commands stay synchronous. `DOCKER_HOST` picks the engine (the local socket
//! by default); the API version is negotiated, so older engines (20.10, API 1.41) work.

use bollard::Docker;
use bollard::query_parameters::ImportImageOptionsBuilder;
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

    /// The local image with this reference, if the Engine has it.
    pub fn image(&self, reference: &str) -> Result<Option<LocalImage>, EngineError> {
        match self.runtime.block_on(self.docker.inspect_image(reference)) {
            Ok(found) => Ok(Some(LocalImage { id: found.id.unwrap_or_default(), size: found.size.unwrap_or(0) })),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(EngineError(format!("inspecting image {reference}: {error}"))),
        }
    }
}
