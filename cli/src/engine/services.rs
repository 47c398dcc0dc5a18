//! Swarm services and their tasks.

use std::collections::HashMap;

use super::{Engine, EngineError, labels_of, typed};
use crate::plan::observed::{ObservedService, ObservedTask, ServiceMode, UpdateStatus};

impl Engine {
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
        self.replace_service_spec(id, &name, version, spec)
    }

    fn replace_service_spec(
        &self,
        id: &str,
        name: &str,
        version: u64,
        spec: bollard::models::ServiceSpec,
    ) -> Result<(), EngineError> {
        let version = i32::try_from(version)
            .map_err(|_| EngineError(format!("service {name}: version {version} does not fit the Engine client")))?;
        let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default().version(version).build();
        self.runtime
            .block_on(self.docker.update_service(id, spec, options, None))
            .map(|_| ())
            .map_err(|error| EngineError(format!("updating service {name}: {error}")))
    }

    /// Makes Swarm replace every task of a service without changing its spec (`docker service update
    /// --force`): its `ForceUpdate` counter goes up by one, and the service's own update config rolls it.
    pub fn force_update_service(&self, name: &str) -> Result<(), EngineError> {
        let options = None::<bollard::query_parameters::InspectServiceOptions>;
        let found = self
            .runtime
            .block_on(self.docker.inspect_service(name, options))
            .map_err(|error| EngineError(format!("inspecting service {name}: {error}")))?;
        let version = found.version.and_then(|version| version.index).unwrap_or_default();
        let mut spec = found.spec.ok_or_else(|| EngineError(format!("service {name} has no spec")))?;
        let task = spec.task_template.get_or_insert_with(Default::default);
        task.force_update = Some(task.force_update.unwrap_or(0) + 1);
        self.replace_service_spec(name, name, version, spec)
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
