//! The Engine itself: its version and host (`/version`, `/info`), and the events it recorded (`/events`).

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt as _;

use super::{Engine, EngineError};
use crate::plan::labels::DEPLOYMENT_LABEL;
use crate::plan::observed::EngineHost;

impl Engine {
    /// The Engine's version and what its host offers.
    pub fn engine_host(&self) -> Result<EngineHost, EngineError> {
        let (version, info) = self.runtime.block_on(async { tokio::join!(self.docker.version(), self.docker.info()) });
        let version = version.map_err(|error| EngineError(format!("reading the Engine's version: {error}")))?;
        let info = info.map_err(|error| EngineError(format!("reading the Engine's host information: {error}")))?;
        Ok(EngineHost {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            os: info.operating_system.unwrap_or_default(),
            kernel: info.kernel_version.unwrap_or_default(),
            cpus: info.ncpu.unwrap_or(0),
            memory_bytes: info.mem_total.unwrap_or(0),
            root_dir: info.docker_root_dir.unwrap_or_else(|| "/var/lib/docker".to_owned()),
        })
    }

    /// The names of the deployment's containers the kernel killed for memory between `since` and `until`
    /// (seconds since the epoch), one entry per kill.
    pub fn oom_kills(&self, deployment: &str, since: u64, until: u64) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["oom".to_owned()]),
            ("label".to_owned(), vec![format!("{DEPLOYMENT_LABEL}={deployment}")]),
        ]);
        let options = EventsOptionsBuilder::default()
            .since(&since.to_string())
            .until(&until.to_string())
            .filters(&filters)
            .build();
        self.runtime.block_on(async {
            let mut stream = self.docker.events(Some(options));
            let mut names = Vec::new();
            while let Some(event) = stream.next().await {
                let event = event.map_err(|error| EngineError(format!("reading the Engine's events: {error}")))?;
                let attributes = event.actor.and_then(|actor| actor.attributes).unwrap_or_default();
                names.push(attributes.get("name").cloned().unwrap_or_default());
            }
            Ok(names)
        })
    }
}
