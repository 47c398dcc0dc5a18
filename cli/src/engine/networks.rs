//! Networks and volumes of a deployment.

use std::collections::HashMap;

use bollard::query_parameters::{ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};

use super::{Engine, EngineError};

impl Engine {
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

    /// The deployment's overlay networks and whether each is encrypted (`--opt encrypted`).
    pub fn overlay_networks(&self, deployment: &str) -> Result<Vec<(String, bool)>, EngineError> {
        let options = ListNetworksOptionsBuilder::default().filters(&Engine::label_filter(deployment)).build();
        let found = self
            .runtime
            .block_on(self.docker.list_networks(Some(options)))
            .map_err(|error| EngineError(format!("listing the networks of {deployment}: {error}")))?;
        let mut networks: Vec<(String, bool)> = found
            .into_iter()
            .filter(|network| network.driver.as_deref() == Some("overlay"))
            .map(|network| {
                let encrypted = network.options.unwrap_or_default().contains_key("encrypted");
                (network.name.unwrap_or_default(), encrypted)
            })
            .collect();
        networks.sort();
        Ok(networks)
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
}
