//! What `deploy swarm` must do: the desired services, networks, secrets and configs of a rendered stack.yaml,
//! and the changes that take the observed swarm there. Pure: the Engine is read before and written after, by
//! `deploy::swarm`.
//!
//! Naming follows `docker stack deploy`: services and networks `<stack>_<name>`, every object labelled
//! `com.docker.stack.namespace`, so `docker stack services <stack>` lists what cometctl deployed. Secrets and
//! configs are immutable in Swarm, so their names end in a digest of their content: a changed file is a new
//! object, and the services using it roll onto it. Each service carries two hashes: the configuration hash
//! (service label; "no changes" when it and the image id match) and the task hash (a label of its
//! containers: the task template plus the image id), which tells the tasks of the current spec from older ones.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::compose::{self as compose_plan, FileDigest};
use super::labels::{
    CONFIG_HASH_LABEL, DEPLOYMENT_LABEL, IMAGE_ID_LABEL, SERVICE_LABEL, STACK_IMAGE_LABEL, STACK_NAMESPACE_LABEL,
    TASK_HASH_LABEL,
};
use super::observed::{ObjectKind, ObservedService, SwarmObject};
use super::{Ready, Reason, json_hash};
use crate::manifest::compose;
use crate::manifest::stack::{EndpointMode, FileMount, StackFile, StackService, UpdateConfig};
use crate::manifest::values;
use crate::manifest::values::Mount;

/// Docker's limit on the name of a secret or config.
const OBJECT_NAME_MAX: usize = 64;
/// Hex digits of the content digest in a secret's or config's name.
const DIGEST_CHARS: usize = 10;

/// A secret or config the deployment needs, named after its content.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub kind: ObjectKind,
    /// The key under stack.yaml's `secrets:` / `configs:`.
    pub key: String,
    /// The Docker name: the rendered name (or `<stack>_<key>`) and a digest of the content.
    pub name: String,
    /// The host file with the content.
    pub source: PathBuf,
    pub labels: HashMap<String, String>,
}

/// One Swarm service `deploy` wants.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredService {
    /// The name in stack.yaml (`api`).
    pub service: String,
    /// The Docker name (`<stack>_api`).
    pub name: String,
    pub image: String,
    /// The Engine API `ServiceSpec`, with secrets and configs by name only (`with_object_ids` completes it).
    pub spec: Value,
    pub config_hash: String,
    pub image_id: String,
    pub task_hash: String,
    pub ready: Ready,
    /// Tasks wanted (replicas, or completions of a job); `None` for a global service (one per node).
    pub tasks: Option<u32>,
    /// How long a new service may take to be ready, in seconds.
    pub ready_timeout_seconds: u64,
    /// How long a rolling update may take, in seconds.
    pub update_timeout_seconds: u64,
    /// Node labels its placement constraints require (`node.labels.K == V`).
    pub node_labels: Vec<(String, String)>,
    pub max_replicas_per_node: Option<u64>,
    /// Reserved per task: nano-CPUs and bytes.
    pub reserved_nano_cpus: i64,
    pub reserved_memory: i64,
    pub cpu_limit_nanos: Option<i64>,
}

/// Everything a swarm deployment consists of.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub deployment: String,
    /// Network name → create body.
    pub networks: Vec<(String, Value)>,
    pub objects: Vec<DesiredObject>,
    /// By stack service name.
    pub services: BTreeMap<String, DesiredService>,
    /// Stack service names in start order, grouped: each group is ready before the next starts.
    pub groups: Vec<Vec<String>>,
    /// Images by reference.
    pub images: Vec<String>,
}

/// One change to one service.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceChange {
    Create {
        desired: DesiredService,
    },
    /// `observed` is the service as read: its id, version and the state of its last update.
    Update {
        desired: DesiredService,
        reason: Reason,
        observed: ObservedService,
    },
    Keep {
        desired: DesiredService,
        observed: ObservedService,
    },
}

impl ServiceChange {
    pub fn desired(&self) -> &DesiredService {
        match self {
            ServiceChange::Create { desired }
            | ServiceChange::Update { desired, .. }
            | ServiceChange::Keep { desired, .. } => desired,
        }
    }
}

/// The changes of one deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    pub networks_to_create: Vec<String>,
    /// Secrets and configs by Docker name.
    pub objects_to_create: Vec<(ObjectKind, String)>,
    /// In start order; one entry per desired service.
    pub services: Vec<ServiceChange>,
    /// Services of the deployment nothing wants any more, by Docker name.
    pub services_to_remove: Vec<String>,
    /// Secrets and configs of the deployment nothing uses any more (older contents), removed once the services
    /// have moved on.
    pub objects_to_remove: Vec<(ObjectKind, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.networks_to_create.is_empty()
            && self.objects_to_create.is_empty()
            && self.services_to_remove.is_empty()
            && self.objects_to_remove.is_empty()
            && self.services.iter().all(|change| matches!(change, ServiceChange::Keep { .. }))
    }
}

/// The Docker name of a secret or config: the rendered `name:` (or `<stack>_<key>`) without the `_v<N>` suffix
/// that `docker stack deploy` users raise by hand, then `_` and the first hex digits of the content's sha256.
/// A base too long for Docker's 64 characters is cut, never the digest.
pub fn object_name(deployment: &str, key: &str, rendered_name: Option<&str>, content_sha256: &str) -> String {
    let base = rendered_name.map_or_else(|| format!("{deployment}_{key}"), str::to_owned);
    let base = match base.rsplit_once("_v") {
        Some((stem, version)) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) => stem.to_owned(),
        _ => base,
    };
    let digest: String = content_sha256.chars().take(DIGEST_CHARS).collect();
    let room = OBJECT_NAME_MAX.saturating_sub(digest.len() + 1);
    let base: String = base.chars().take(room).collect();
    format!("{base}_{digest}")
}

/// `node.labels.K == V` → (K, V); other constraints (role, hostname, `!=`) are left to the scheduler.
pub fn label_constraint(constraint: &str) -> Option<(String, String)> {
    let (left, right) = constraint.split_once("==")?;
    let key = left.trim().strip_prefix("node.labels.")?;
    Some((key.to_owned(), right.trim().to_owned()))
}

fn nanos(duration: Option<&String>) -> Result<Option<i64>, String> {
    duration.map(|text| values::parse_duration_nanos(text)).transpose()
}

/// An object without its `null` members (the Engine's optional fields are left out, not null).
fn present(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(members.into_iter().filter(|(_, value)| !value.is_null()).collect()),
        other => other,
    }
}

/// `update_config` / `rollback_config` as the Engine's `UpdateConfig` (the enums are spelt the same way).
fn update_config_body(config: &UpdateConfig) -> Result<Value, String> {
    Ok(present(json!({
        "Parallelism": config.parallelism,
        "Delay": nanos(config.delay.as_ref())?,
        "FailureAction": config.failure_action,
        "Monitor": nanos(config.monitor.as_ref())?,
        "MaxFailureRatio": config.max_failure_ratio,
        "Order": config.order,
    })))
}

fn file_references(mounts: &[FileMount], names: &HashMap<String, String>, name_key: &str) -> Vec<Value> {
    mounts
        .iter()
        .map(|mount| {
            json!({
                "File": { "Name": mount.target, "UID": mount.uid, "GID": mount.gid, "Mode": mount.mode },
                name_key: names.get(&mount.source).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

fn amounts_body(amounts: Option<&compose::ResourceAmounts>) -> Result<Value, String> {
    let cpus = amounts.and_then(|amounts| amounts.cpus.as_deref()).map(values::parse_cpus_nanos).transpose()?;
    let memory = amounts.and_then(|amounts| amounts.memory.as_deref()).map(values::parse_bytes).transpose()?;
    Ok(present(json!({ "NanoCPUs": cpus, "MemoryBytes": memory })))
}

/// The labels every object of the deployment carries, over `labels` from the file; `name` names the object
/// within the deployment unless the file already did.
fn deployment_labels(deployment: &str, name: &str, labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    let mut all: HashMap<String, String> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.insert(DEPLOYMENT_LABEL.to_owned(), deployment.to_owned());
    all.insert(STACK_NAMESPACE_LABEL.to_owned(), deployment.to_owned());
    all.entry(SERVICE_LABEL.to_owned()).or_insert_with(|| name.to_owned());
    all
}

/// Reads the desired state from a parsed stack file rendered into `rendered_dir` for `deployment`. `groups` is
/// the start order (from the Compose rendering's `depends_on`; Swarm has none); services it does not name
/// start last. `image_ids` maps image references to local image ids (missing: not on this Engine).
pub fn desired(
    deployment: &str,
    stack: &StackFile,
    groups: &[Vec<String>],
    rendered_dir: &Path,
    digest: FileDigest<'_>,
    image_ids: &HashMap<String, String>,
) -> Result<Desired, String> {
    let scoped = |name: &str| format!("{deployment}_{name}");
    let networks = stack
        .networks
        .iter()
        .map(|(name, definition)| {
            let definition = definition.clone().unwrap_or(crate::manifest::stack::StackNetwork {
                driver: None,
                driver_opts: BTreeMap::new(),
                attachable: false,
                internal: false,
                labels: BTreeMap::new(),
            });
            let body = json!({
                "Name": scoped(name),
                "Driver": "overlay",
                "Options": definition.driver_opts,
                "Attachable": definition.attachable,
                "Internal": definition.internal,
                "Labels": deployment_labels(deployment, name, &definition.labels),
            });
            (scoped(name), body)
        })
        .collect();
    let mut objects = Vec::new();
    let mut names: HashMap<ObjectKind, HashMap<String, String>> = HashMap::new();
    for (kind, declared) in [(ObjectKind::Secret, &stack.secrets), (ObjectKind::Config, &stack.configs)] {
        for (key, object) in declared {
            let source = compose_plan::resolve(rendered_dir, &object.file);
            let name = object_name(deployment, key, object.name.as_deref(), &digest(&source));
            names.entry(kind).or_default().insert(key.clone(), name.clone());
            let labels = deployment_labels(deployment, key, &BTreeMap::new());
            objects.push(DesiredObject { kind, key: key.clone(), name, source, labels });
        }
    }
    let mut services = BTreeMap::new();
    let mut images = Vec::new();
    for (service_name, service) in &stack.services {
        let image_id = image_ids.get(&service.image).cloned().unwrap_or_default();
        let built = desired_service(deployment, service_name, service, rendered_dir, &names, image_id)?;
        if !images.contains(&service.image) {
            images.push(service.image.clone());
        }
        services.insert(service_name.clone(), built);
    }
    let mut ordered: Vec<Vec<String>> = groups
        .iter()
        .map(|group| group.iter().filter(|name| services.contains_key(*name)).cloned().collect::<Vec<_>>())
        .filter(|group| !group.is_empty())
        .collect();
    let placed: Vec<String> = ordered.iter().flatten().cloned().collect();
    let rest: Vec<String> = services.keys().filter(|name| !placed.contains(name)).cloned().collect();
    if !rest.is_empty() {
        ordered.push(rest);
    }
    Ok(Desired { deployment: deployment.to_owned(), networks, objects, services, groups: ordered, images })
}

/// The `ContainerSpec` of a service: image, labels, environment, mounts, secrets and configs, capabilities,
/// ulimits, command, user, health check and stop grace period.
fn container_spec(
    deployment: &str,
    name: &str,
    service: &StackService,
    rendered_dir: &Path,
    object_names: &HashMap<ObjectKind, HashMap<String, String>>,
) -> Result<Value, String> {
    let mut mounts = Vec::new();
    for mount in service.mounts()? {
        mounts.push(match mount {
            Mount::Bind { source, target, read_only, propagation } => {
                let source = compose_plan::resolve(rendered_dir, &source);
                let mut body = json!({ "Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only });
                if let Some(propagation) = propagation {
                    body["BindOptions"] = json!({ "Propagation": propagation });
                }
                body
            }
            Mount::Volume { name: volume, target, read_only } => json!({
                "Type": "volume",
                "Source": format!("{deployment}_{volume}"),
                "Target": target,
                "ReadOnly": read_only,
                // A node creates the volume when a task first needs it, with these labels.
                "VolumeOptions": { "Labels": deployment_labels(deployment, &volume, &BTreeMap::new()) },
            }),
            Mount::Tmpfs { target, size_bytes } => compose_plan::tmpfs_body(&target, size_bytes),
        });
    }
    let no_names = HashMap::new();
    let mut container_labels = deployment_labels(deployment, name, &service.labels);
    container_labels.remove(TASK_HASH_LABEL);
    let mut container = json!({
        "Image": service.image,
        "Labels": container_labels,
        "Env": service.environment.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>(),
        "ReadOnly": service.read_only,
        "Mounts": mounts,
        "Secrets": file_references(&service.secret_mounts()?, object_names.get(&ObjectKind::Secret).unwrap_or(&no_names), "SecretName"),
        "Configs": file_references(&service.config_mounts()?, object_names.get(&ObjectKind::Config).unwrap_or(&no_names), "ConfigName"),
        // Capabilities and ulimits of a service's containers: Engine API 1.41 (Docker 20.10) and later.
        "CapabilityAdd": service.cap_add,
        "CapabilityDrop": service.cap_drop,
        "Ulimits": service.ulimits.iter()
            .map(|(name, limit)| json!({ "Name": name, "Soft": limit.soft, "Hard": limit.hard }))
            .collect::<Vec<_>>(),
    });
    // Compose's entrypoint and command are a service's Command and Args.
    if let Some(entrypoint) = &service.entrypoint {
        container["Command"] = json!(entrypoint);
    }
    if let Some(command) = &service.command {
        container["Args"] = json!(command);
    }
    if let Some(user) = &service.user {
        container["User"] = user.clone().into();
    }
    let healthcheck = compose_plan::healthcheck_body(service.healthcheck.as_ref())?;
    if !healthcheck.is_null() {
        // A service's container spec spells it `HealthCheck`, a container's create body `Healthcheck`.
        container["HealthCheck"] = healthcheck;
    }
    let grace_nanos = nanos(service.stop_grace_period.as_ref())?;
    if let Some(grace) = grace_nanos {
        container["StopGracePeriod"] = grace.into();
    }
    Ok(container)
}

/// The `TaskTemplate` of a service around its container spec: resources, networks with aliases, restart
/// policy, placement and logging.
fn task_template(deployment: &str, name: &str, service: &StackService, container: Value) -> Result<Value, String> {
    let mut template = json!({
        "ContainerSpec": container,
        "Resources": {
            "Limits": amounts_body(service.limits())?,
            "Reservations": amounts_body(service.reservations())?,
        },
        "Networks": service.networks.0.iter()
            .map(|(network, attachment)| {
                // Other services reach this one by its name in the file, as with `docker stack deploy`.
                let mut aliases = vec![name.to_owned()];
                aliases.extend(attachment.aliases.iter().filter(|alias| *alias != name).cloned());
                json!({ "Target": format!("{deployment}_{network}"), "Aliases": aliases })
            })
            .collect::<Vec<_>>(),
        "ForceUpdate": 0,
    });
    if let Some(policy) = service.restart_policy() {
        template["RestartPolicy"] = present(json!({
            "Condition": policy.condition,
            "Delay": nanos(policy.delay.as_ref())?,
            "MaxAttempts": policy.max_attempts,
            "Window": nanos(policy.window.as_ref())?,
        }));
    }
    if let Some(placement) = service.placement() {
        let mut body = json!({ "Constraints": placement.constraints });
        if let Some(max) = placement.max_replicas_per_node {
            body["MaxReplicas"] = max.into();
        }
        template["Placement"] = body;
    }
    if let Some(logging) = &service.logging {
        template["LogDriver"] = json!({ "Name": logging.driver, "Options": logging.options });
    }
    Ok(template)
}

/// How long an update of a service may take: every batch of its rolling update ready, with the delay between
/// batches and the monitor period; twice the ready timeout without an update config.
fn update_timeout_seconds(update_config: Option<&UpdateConfig>, tasks: Option<u32>, ready_timeout_seconds: u64) -> u64 {
    match update_config {
        Some(config) => {
            let count = u64::from(tasks.unwrap_or(1));
            let batches = count.div_ceil(config.parallelism.unwrap_or(1).max(1));
            let delay = compose_plan::seconds(config.delay.as_ref(), 0);
            let per_batch = ready_timeout_seconds.saturating_add(delay);
            ready_timeout_seconds
                .saturating_add(batches.saturating_mul(per_batch))
                .saturating_add(compose_plan::seconds(config.monitor.as_ref(), 5))
                .saturating_add(30)
        }
        None => ready_timeout_seconds.saturating_mul(2),
    }
}

fn desired_service(
    deployment: &str,
    name: &str,
    service: &StackService,
    rendered_dir: &Path,
    object_names: &HashMap<ObjectKind, HashMap<String, String>>,
    image_id: String,
) -> Result<DesiredService, String> {
    let container = container_spec(deployment, name, service, rendered_dir, object_names)?;
    let template = task_template(deployment, name, service, container)?;
    let placement = service.placement();
    let deploy_block = service.deploy.as_ref();
    let job = service.is_job();
    let tasks = (!service.is_global()).then(|| service.replicas());
    let mode = match tasks {
        None => json!({ "Global": {} }),
        // A job runs to completion (Engine API 1.41 and later); Swarm refuses an update config on one.
        Some(count) if job => json!({ "ReplicatedJob": { "MaxConcurrent": count, "TotalCompletions": count } }),
        Some(count) => json!({ "Replicated": { "Replicas": count } }),
    };
    let ports: Vec<Value> = service
        .ports()?
        .iter()
        .map(|port| {
            present(json!({
                "Protocol": port.protocol,
                "TargetPort": port.target,
                "PublishedPort": port.published,
                "PublishMode": port.mode,
            }))
        })
        .collect();
    let endpoint_mode = deploy_block.and_then(|deploy| deploy.endpoint_mode).unwrap_or(EndpointMode::Vip);
    let endpoint = json!({ "Mode": endpoint_mode, "Ports": ports });
    // Swarm replaces a service's tasks when its task template or its endpoint changes.
    let task_hash = json_hash(&json!([template, endpoint, image_id]))?;
    let mut service_labels =
        deployment_labels(deployment, name, &deploy_block.map(|deploy| deploy.labels.clone()).unwrap_or_default());
    service_labels.insert(STACK_IMAGE_LABEL.to_owned(), service.image.clone());
    let mut spec = json!({
        "Name": format!("{deployment}_{name}"),
        "Labels": service_labels,
        "TaskTemplate": template,
        "Mode": mode,
        "EndpointSpec": endpoint,
    });
    let update_config = deploy_block.and_then(|deploy| deploy.update_config.as_ref());
    if !job {
        if let Some(config) = update_config {
            spec["UpdateConfig"] = update_config_body(config)?;
        }
        if let Some(config) = deploy_block.and_then(|deploy| deploy.rollback_config.as_ref()) {
            spec["RollbackConfig"] = update_config_body(config)?;
        }
    }
    let config_hash = json_hash(&spec)?;
    spec["TaskTemplate"]["ContainerSpec"]["Labels"][TASK_HASH_LABEL] = task_hash.clone().into();
    spec["Labels"][CONFIG_HASH_LABEL] = config_hash.clone().into();
    spec["Labels"][IMAGE_ID_LABEL] = image_id.clone().into();

    let (ready, ready_timeout_seconds) = compose_plan::readiness_of(service.healthcheck.as_ref(), job);
    let update_timeout_seconds = update_timeout_seconds(update_config, tasks, ready_timeout_seconds);
    let reservations = amounts_body(service.reservations())?;
    Ok(DesiredService {
        service: name.to_owned(),
        name: format!("{deployment}_{name}"),
        image: service.image.clone(),
        spec,
        config_hash,
        image_id,
        task_hash,
        ready,
        tasks,
        ready_timeout_seconds,
        update_timeout_seconds,
        node_labels: placement
            .map(|placement| placement.constraints.iter().filter_map(|c| label_constraint(c)).collect())
            .unwrap_or_default(),
        max_replicas_per_node: placement.and_then(|placement| placement.max_replicas_per_node),
        reserved_nano_cpus: reservations["NanoCPUs"].as_i64().unwrap_or(0),
        reserved_memory: reservations["MemoryBytes"].as_i64().unwrap_or(0),
        cpu_limit_nanos: amounts_body(service.limits())?["NanoCPUs"].as_i64(),
    })
}

/// `spec` with the ids of its secrets and configs filled in (the Engine wants both name and id). `ids` maps
/// Docker names to ids; a name without an id is an error naming it.
pub fn with_object_ids(spec: &Value, ids: &HashMap<String, String>) -> Result<Value, String> {
    let mut spec = spec.clone();
    for (list, name_key, id_key) in [("Secrets", "SecretName", "SecretID"), ("Configs", "ConfigName", "ConfigID")] {
        if let Some(references) = spec["TaskTemplate"]["ContainerSpec"][list].as_array_mut() {
            for reference in references {
                let name = reference[name_key].as_str().unwrap_or_default().to_owned();
                let id = ids.get(&name).ok_or_else(|| format!("{name_key} `{name}` does not exist on the swarm"))?;
                reference[id_key] = id.clone().into();
            }
        }
    }
    Ok(spec)
}

/// How the last run of an existing job service went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Succeeded,
    /// Still running, or waiting to.
    Pending,
    Failed,
}

/// Compares the desired state with what the swarm has: the deployment's services, networks (names), secrets
/// and configs, and for each job service the outcome of its last run.
pub fn changes(
    desired: &Desired,
    observed: &[ObservedService],
    networks: &[String],
    objects: &[(ObjectKind, SwarmObject)],
    jobs: &HashMap<String, JobOutcome>,
) -> Changes {
    let by_name: HashMap<&str, &ObservedService> =
        observed.iter().map(|service| (service.name.as_str(), service)).collect();
    let mut services = Vec::new();
    for group in &desired.groups {
        for name in group {
            let Some(wanted) = desired.services.get(name) else { continue };
            let wanted = wanted.clone();
            let change = match by_name.get(wanted.name.as_str()) {
                None => ServiceChange::Create { desired: wanted },
                Some(found) => {
                    let reason = if found.labels.get(CONFIG_HASH_LABEL) != Some(&wanted.config_hash) {
                        Some(Reason::ConfigurationChanged)
                    } else if found.labels.get(IMAGE_ID_LABEL) != Some(&wanted.image_id) {
                        Some(Reason::ImageChanged)
                    } else if wanted.ready == Ready::Completed && jobs.get(&wanted.name) == Some(&JobOutcome::Failed) {
                        Some(Reason::JobFailed)
                    } else {
                        None
                    };
                    let observed = (*found).clone();
                    match reason {
                        Some(reason) => ServiceChange::Update { desired: wanted, reason, observed },
                        None => ServiceChange::Keep { desired: wanted, observed },
                    }
                }
            };
            services.push(change);
        }
    }
    let wanted_services: Vec<&str> = desired.services.values().map(|service| service.name.as_str()).collect();
    let wanted_objects: Vec<(ObjectKind, &str)> =
        desired.objects.iter().map(|object| (object.kind, object.name.as_str())).collect();
    let mut objects_to_create: Vec<(ObjectKind, String)> = desired
        .objects
        .iter()
        .filter(|object| !objects.iter().any(|(kind, found)| *kind == object.kind && found.name == object.name))
        .map(|object| (object.kind, object.name.clone()))
        .collect();
    objects_to_create.dedup();
    Changes {
        networks_to_create: compose_plan::missing(desired.networks.iter().map(|(name, _)| name), networks),
        objects_to_create,
        services,
        services_to_remove: observed
            .iter()
            .filter(|service| !wanted_services.contains(&service.name.as_str()))
            .map(|service| service.name.clone())
            .collect(),
        objects_to_remove: objects
            .iter()
            .filter(|(kind, found)| !wanted_objects.contains(&(*kind, found.name.as_str())))
            .map(|(kind, found)| (*kind, found.name.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::observed::ServiceMode;
    use crate::plan::sha256_hex;

    const FILE: &str = r#"
services:
  redis-1:
    image: redis:7
    entrypoint: ["/bin/sh", "-c", "exec redis-server"]
    secrets: [redis_password]
    volumes: ["redis-1-data:/data"]
    networks: [backend]
    healthcheck: {test: ["CMD", "true"], interval: 10s, timeout: 5s, retries: 3, start_period: 10s}
    deploy:
      replicas: 1
      endpoint_mode: dnsrr
      resources: {limits: {cpus: "1", memory: 256M}, reservations: {cpus: "0.5", memory: 128M}}
      placement: {constraints: ["node.labels.comet.redis-1 == true"]}
      update_config: {parallelism: 1, delay: 10s, order: stop-first, failure_action: rollback, monitor: 50s, max_failure_ratio: 0}
      restart_policy: {condition: any, delay: 5s, window: 120s}
      labels: {io.comet.service: redis-1}
  migrate:
    image: comet:1
    command: ["migrate"]
    networks: [backend]
    healthcheck: {disable: true}
    deploy:
      replicas: 1
      update_config: {parallelism: 1, order: stop-first, failure_action: continue}
      restart_policy: {condition: on-failure, delay: 10s, max_attempts: 60, window: 60s}
  api:
    image: comet:1
    command: ["api"]
    user: "10001:10001"
    read_only: true
    cap_drop: [ALL]
    volumes: [{type: tmpfs, target: /tmp}]
    networks: [backend]
    deploy:
      replicas: 2
      update_config: {parallelism: 1, delay: 10s, order: start-first, failure_action: rollback, monitor: 70s}
  nginx:
    image: nginx:1
    configs: [{source: nginx_conf, target: /etc/nginx/nginx.conf}]
    secrets: [{source: tls_key, target: /etc/nginx/tls/key.pem, mode: 0400}]
    ports: [{target: 443, published: 8443, protocol: tcp, mode: host}]
    networks: [edge, backend]
    ulimits: {nofile: {soft: 1024, hard: 2048}}
    deploy:
      replicas: 1
      placement: {constraints: ["node.labels.comet.nginx == true"], max_replicas_per_node: 1}
networks:
  backend: {driver: overlay, driver_opts: {encrypted: "true"}, labels: {io.comet.service: backend}}
  edge:
volumes:
  redis-1-data:
secrets:
  redis_password: {name: t_redis_password_v1, file: ../secrets/redis_password}
  tls_key: {name: t_tls_key_v1, file: ../tls/key.pem}
configs:
  nginx_conf: {name: t_nginx_conf_v1, file: ./nginx/nginx.conf}
"#;

    fn groups() -> Vec<Vec<String>> {
        ["redis-1", "migrate", "api", "nginx"].iter().map(|name| vec![(*name).to_owned()]).collect()
    }

    fn desired_state(content: &str) -> Desired {
        let stack = StackFile::parse("stack.yaml", FILE).expect("parses");
        let digest = |path: &Path| sha256_hex(format!("{}{content}", path.display()).as_bytes());
        let images = HashMap::from([("comet:1".to_owned(), "sha256:c".to_owned())]);
        desired("t", &stack, &groups(), Path::new("/srv/t/rendered"), &digest, &images).expect("desired")
    }

    fn observed_from(service: &DesiredService) -> ObservedService {
        let labels = service.spec["Labels"]
            .as_object()
            .map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        ObservedService {
            id: format!("id-{}", service.name),
            name: service.name.clone(),
            version: 7,
            labels,
            image: service.image.clone(),
            mode: ServiceMode::Replicated(1),
            force_update: 0,
            update: None,
            job_iteration: None,
            ports: Vec::new(),
        }
    }

    #[test]
    fn services_get_stack_names_mounts_objects_and_modes() {
        let desired = desired_state("");
        assert_eq!(desired.groups.len(), 4);
        let redis = &desired.services["redis-1"];
        assert_eq!(redis.name, "t_redis-1");
        let spec = &redis.spec;
        assert_eq!(spec["EndpointSpec"]["Mode"], "dnsrr");
        assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Command"][0], "/bin/sh");
        assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Mounts"][0]["Source"], "t_redis-1-data");
        assert_eq!(
            spec["TaskTemplate"]["ContainerSpec"]["Mounts"][0]["VolumeOptions"]["Labels"][DEPLOYMENT_LABEL],
            "t"
        );
        assert_eq!(spec["TaskTemplate"]["Networks"][0], json!({ "Target": "t_backend", "Aliases": ["redis-1"] }));
        assert_eq!(spec["TaskTemplate"]["Resources"]["Reservations"]["NanoCPUs"], 500_000_000);
        assert_eq!(spec["UpdateConfig"]["Monitor"], 50_000_000_000_i64);
        assert_eq!(spec["Labels"][STACK_NAMESPACE_LABEL], "t");
        assert_eq!(redis.node_labels, vec![("comet.redis-1".to_owned(), "true".to_owned())]);
        let secret = &spec["TaskTemplate"]["ContainerSpec"]["Secrets"][0];
        assert_eq!(secret["File"]["Name"], "redis_password");
        assert_eq!(secret["File"]["Mode"], 0o444);
        assert!(secret["SecretName"].as_str().is_some_and(|name| name.starts_with("t_redis_password_")), "{secret}");
        let migrate = &desired.services["migrate"];
        assert_eq!(migrate.ready, Ready::Completed);
        assert_eq!(migrate.spec["Mode"], json!({ "ReplicatedJob": { "MaxConcurrent": 1, "TotalCompletions": 1 } }));
        assert!(migrate.spec.get("UpdateConfig").is_none(), "Swarm refuses an update config on a job");
        let nginx = &desired.services["nginx"];
        assert_eq!(nginx.spec["EndpointSpec"]["Ports"][0]["PublishMode"], "host");
        assert_eq!(nginx.spec["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["File"]["Mode"], 0o400);
        assert_eq!(nginx.spec["TaskTemplate"]["ContainerSpec"]["Configs"][0]["File"]["Name"], "/etc/nginx/nginx.conf");
        assert_eq!(nginx.spec["TaskTemplate"]["ContainerSpec"]["Ulimits"][0]["Hard"], 2048);
        assert_eq!(nginx.max_replicas_per_node, Some(1));
        assert_eq!(desired.services["api"].tasks, Some(2));
        assert_eq!(desired.networks[0].1["Options"]["encrypted"], "true");
        assert_eq!(desired.objects.len(), 3);
    }

    #[test]
    fn object_names_follow_the_content() {
        let name = object_name("t", "db_password", Some("t_db_password_v1"), "0123456789abcdef");
        assert_eq!(name, "t_db_password_0123456789");
        assert_eq!(object_name("t", "db_password", None, "ffffffffffff"), "t_db_password_ffffffffff");
        let long =
            object_name(&"d".repeat(30), "k", Some(&format!("{}_{}_v1", "d".repeat(30), "x".repeat(30))), "abc0123456");
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("_abc0123456"), "{long}");
        let one = desired_state("one");
        let two = desired_state("two");
        assert_ne!(one.objects[0].name, two.objects[0].name);
        assert_ne!(
            one.services["redis-1"].task_hash, two.services["redis-1"].task_hash,
            "a new secret rolls the tasks"
        );
        assert_eq!(label_constraint("node.labels.comet.nginx == true"), Some(("comet.nginx".into(), "true".into())));
        assert_eq!(label_constraint("node.role == manager"), None);
    }

    #[test]
    fn an_unchanged_deployment_has_no_changes_and_each_difference_is_named() {
        let desired = desired_state("");
        let observed: Vec<ObservedService> = desired.services.values().map(observed_from).collect();
        let networks = vec!["t_backend".to_owned(), "t_edge".to_owned()];
        let objects: Vec<(ObjectKind, SwarmObject)> = desired
            .objects
            .iter()
            .map(|object| {
                let found =
                    SwarmObject { id: object.name.clone(), name: object.name.clone(), labels: object.labels.clone() };
                (object.kind, found)
            })
            .collect();
        let done = HashMap::from([("t_migrate".to_owned(), JobOutcome::Succeeded)]);
        assert!(changes(&desired, &observed, &networks, &objects, &done).is_empty());

        let failed = HashMap::from([("t_migrate".to_owned(), JobOutcome::Failed)]);
        let changed = changes(&desired, &observed, &networks, &objects, &failed);
        assert!(
            changed
                .services
                .iter()
                .any(|change| matches!(change, ServiceChange::Update { reason: Reason::JobFailed, .. }))
        );

        let rebuilt = {
            let stack = StackFile::parse("stack.yaml", FILE).expect("parses");
            let images = HashMap::from([("comet:1".to_owned(), "sha256:new".to_owned())]);
            let digest = |path: &Path| sha256_hex(path.display().to_string().as_bytes());
            super::desired("t", &stack, &groups(), Path::new("/srv/t/rendered"), &digest, &images).expect("desired")
        };
        let changed = changes(&rebuilt, &observed, &networks, &objects, &done);
        let api = changed.services.iter().find(|change| change.desired().service == "api").expect("api");
        assert!(matches!(api, ServiceChange::Update { reason: Reason::ImageChanged, .. }), "{api:?}");
        assert_ne!(rebuilt.services["api"].task_hash, desired.services["api"].task_hash);

        let rotated = desired_state("rotated");
        let changed = changes(&rotated, &observed, &networks, &objects, &done);
        assert_eq!(changed.objects_to_create.len(), 3);
        assert_eq!(changed.objects_to_remove.len(), 3, "the old contents go once nothing uses them");
        let redis = changed.services.iter().find(|change| change.desired().service == "redis-1").expect("redis");
        assert!(matches!(redis, ServiceChange::Update { reason: Reason::ConfigurationChanged, .. }));

        let mut extra = observed.clone();
        let mut orphan = observed[0].clone();
        orphan.name = "t_old".into();
        extra.push(orphan);
        let changed = changes(&desired, &extra, &[], &objects, &done);
        assert_eq!(changed.services_to_remove, vec!["t_old".to_owned()]);
        assert_eq!(changed.networks_to_create, networks);
    }

    fn sized_spec(mau: &str) -> crate::spec::Spec {
        crate::spec::sized_for_tests(mau, crate::domain::Target::Swarm)
    }

    #[test]
    fn every_rendered_stack_becomes_services_the_engine_client_accepts_in_start_order() {
        use crate::domain::{ServiceKey, Target};
        use crate::render::{self, TemplateSet};
        let mut with_moderation = sized_spec("250k");
        for (key, replicas) in [(ServiceKey::Moderation, 2), (ServiceKey::Mongodb, 3)] {
            with_moderation.plan.services.get_mut(&key).expect("planned").replicas = replicas;
        }
        for spec in [sized_spec("10k"), sized_spec("1.5m"), with_moderation] {
            let tree =
                render::render(&spec, &TemplateSet::embedded(), &[Target::Swarm, Target::Compose]).expect("renders");
            let text = |path: &str| String::from_utf8_lossy(&tree[path]).into_owned();
            let stack = StackFile::parse("stack.yaml", &text("stack.yaml")).expect("stack.yaml parses");
            let compose =
                crate::manifest::compose::ComposeFile::parse("compose.yaml", &text("compose.yaml")).expect("compose");
            let groups = compose.start_order().expect("order");
            let digest = |path: &Path| sha256_hex(path.display().to_string().as_bytes());
            let desired = desired("comet", &stack, &groups, Path::new("/srv/comet/rendered"), &digest, &HashMap::new())
                .expect("desired");
            let ids: HashMap<String, String> =
                desired.objects.iter().map(|object| (object.name.clone(), format!("id-{}", object.key))).collect();
            for service in desired.services.values() {
                let spec = with_object_ids(&service.spec, &ids).expect("every secret and config is declared");
                crate::engine::check_service_spec(spec).expect("the Engine client's model takes every field");
            }
            let position = |name: &str| desired.groups.iter().position(|group| group.iter().any(|s| s == name));
            let migrate = position("migrate").expect("migrate is deployed");
            for store in desired.services.values().filter(|s| s.service.starts_with("kafka-") || s.service == "tidb") {
                assert!(position(&store.service) < Some(migrate), "{} starts after migrate", store.service);
            }
            assert!(position("api") > Some(migrate) && position("nginx") > position("api"), "{:?}", desired.groups);
            assert_eq!(desired.services["migrate"].ready, Ready::Completed);
            assert!(desired.services["api"].spec["EndpointSpec"]["Mode"] == "dnsrr", "roles need no IPVS");
            assert_eq!(desired.groups.iter().flatten().count(), desired.services.len(), "every service has a place");
        }
    }

    #[test]
    fn object_ids_complete_the_spec() {
        let desired = desired_state("");
        let nginx = &desired.services["nginx"];
        let ids: HashMap<String, String> =
            desired.objects.iter().map(|object| (object.name.clone(), format!("id-{}", object.key))).collect();
        let spec = with_object_ids(&nginx.spec, &ids).expect("ids");
        assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretID"], "id-tls_key");
        assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Configs"][0]["ConfigID"], "id-nginx_conf");
        let error = with_object_ids(&nginx.spec, &HashMap::new()).expect_err("missing");
        assert!(error.contains("does not exist"), "{error}");
    }
}
