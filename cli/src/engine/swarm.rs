//! The swarm and its nodes: this Engine's role, a single-node swarm, node labels and resources.

use super::{Engine, EngineError, labels_of};
use crate::plan::observed::{SwarmNode, SwarmRole};

impl Engine {
    /// Whether this Engine manages a swarm (Swarm's services, tasks, secrets and configs are read here).
    pub fn manages_swarm(&self) -> Result<bool, EngineError> {
        Ok(matches!(self.swarm_role()?, SwarmRole::Manager { .. }))
    }

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
                let manager_status = node.manager_status.unwrap_or_default();
                SwarmNode {
                    ready,
                    manager: spec.role.is_some_and(|role| role.to_string() == "manager"),
                    leader: manager_status.leader.unwrap_or(false),
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
        self.update_node(node_id, "labelling", |spec| {
            let mut all = labels_of(spec.labels.take());
            all.extend(labels.iter().cloned());
            spec.labels = Some(all);
        })
    }

    /// Sets a node's availability: `active` (takes tasks), `pause` (keeps its tasks, takes no new ones) or
    /// `drain` (its tasks move to other nodes), as `docker node update --availability` does.
    pub fn set_node_availability(&self, node_id: &str, availability: &str) -> Result<(), EngineError> {
        let wanted = match availability {
            "active" => bollard::models::NodeSpecAvailabilityEnum::ACTIVE,
            "pause" => bollard::models::NodeSpecAvailabilityEnum::PAUSE,
            "drain" => bollard::models::NodeSpecAvailabilityEnum::DRAIN,
            other => return Err(EngineError(format!("`{other}` is not a node availability (active, pause, drain)"))),
        };
        self.update_node(node_id, "setting the availability of", |spec| spec.availability = Some(wanted))
    }

    /// Reads a node's spec, changes it with `change`, and writes it back at the version it was read at.
    fn update_node(
        &self,
        node_id: &str,
        doing: &str,
        change: impl FnOnce(&mut bollard::models::NodeSpec),
    ) -> Result<(), EngineError> {
        let failed = |error: bollard::errors::Error| EngineError(format!("{doing} node {node_id}: {error}"));
        let node = self.runtime.block_on(self.docker.inspect_node(node_id)).map_err(failed)?;
        let version = node.version.and_then(|version| version.index).unwrap_or(0);
        let mut spec = node.spec.unwrap_or_default();
        change(&mut spec);
        let options = bollard::query_parameters::UpdateNodeOptionsBuilder::default()
            .version(i64::try_from(version).unwrap_or(i64::MAX))
            .build();
        self.runtime.block_on(self.docker.update_node(node_id, spec, options)).map_err(failed)
    }
}
