//! What `deploy compose` must do: the desired containers, networks and volumes of a rendered compose file,
//! and the changes that take the observed state there. Pure: the Engine is read before and written after, by
//! `deploy::compose`.
//!
//! Naming: containers `<deployment>-<service>-<n>`, networks and volumes `<deployment>_<name>` (as Compose
//! names them). Every object carries the deployment and service labels; containers also carry the hash of
//! their whole configuration, so an unchanged service is recognised and left alone ("no changes").

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use super::labels::{COMPOSE_SERVICE_LABEL, CONFIG_HASH_LABEL, DEPLOYMENT_LABEL, SERVICE_LABEL};
use super::observed::ObservedContainer;
use super::{Ready, Reason, json_hash};
use crate::manifest::compose::{ComposeFile, Condition, Healthcheck, Service};
use crate::manifest::values;
use crate::manifest::values::Mount;

/// The suffix of a container being replaced (start-first): it still serves until its successor is healthy.
pub const REPLACED_SUFFIX: &str = "-replaced";

/// One container `deploy` wants.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContainer {
    pub service: String,
    pub name: String,
    pub image: String,
    /// The Engine API create body.
    pub body: Value,
    /// Networks connected after creation, with aliases.
    pub extra_networks: Vec<(String, Vec<String>)>,
    /// The hash of `body` and `extra_networks`; combined with the image id when compared.
    pub config_hash: String,
    pub ready: Ready,
    /// Seconds from SIGTERM to SIGKILL.
    pub grace_seconds: i32,
    /// How long to wait for `ready` before giving up, in seconds.
    pub ready_timeout_seconds: u64,
    /// Replace start-first (stateless: no volumes, no published ports) rather than stop-first.
    pub start_first: bool,
}

/// Everything a compose deployment consists of.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub deployment: String,
    /// Network name → create body.
    pub networks: Vec<(String, Value)>,
    /// Volume name → labels.
    pub volumes: Vec<(String, HashMap<String, String>)>,
    /// Service names in start order, grouped (a group depends only on earlier groups).
    pub groups: Vec<Vec<String>>,
    /// Service name → its containers (one per replica).
    pub containers: BTreeMap<String, Vec<DesiredContainer>>,
    /// Host files the containers bind-mount (configuration, certificates, secrets).
    pub bind_sources: Vec<PathBuf>,
    /// Images by reference.
    pub images: Vec<String>,
}

/// One change to one container.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerChange {
    Create { desired: DesiredContainer, reason: Reason },
    Replace { desired: DesiredContainer, reason: Reason },
    Keep { desired: DesiredContainer },
}

/// The changes of one deploy, service by service in start order.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    pub networks_to_create: Vec<String>,
    pub volumes_to_create: Vec<String>,
    /// In start order; one entry per service.
    pub services: Vec<(String, Vec<ContainerChange>)>,
    /// Containers of the deployment nothing wants any more (scaled down, removed services, leftovers).
    pub containers_to_remove: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.networks_to_create.is_empty()
            && self.volumes_to_create.is_empty()
            && self.containers_to_remove.is_empty()
            && self
                .services
                .iter()
                .all(|(_, changes)| changes.iter().all(|change| matches!(change, ContainerChange::Keep { .. })))
    }
}

/// `dir/relative` without `.` and `..` components (the files need not exist yet).
pub(crate) fn resolve(dir: &Path, relative: &str) -> PathBuf {
    let mut path = PathBuf::new();
    for component in dir.join(relative).components() {
        match component {
            Component::ParentDir => {
                path.pop();
            }
            Component::CurDir => {}
            other => path.push(other),
        }
    }
    path
}

/// Seconds, rounded up, of a Compose duration (already validated by `ComposeFile::parse`).
pub(crate) fn seconds(duration: Option<&String>, default: u64) -> u64 {
    duration
        .and_then(|text| values::parse_duration_nanos(text).ok())
        .map_or(default, |nanos| u64::try_from(nanos).unwrap_or(0).div_ceil(1_000_000_000))
}

/// The Engine API `Healthcheck` of a Compose health check (`Null` without one; `NONE` when disabled); the
/// same object in a container's create body and a Swarm service's `ContainerSpec`.
pub(crate) fn healthcheck_body(check: Option<&Healthcheck>) -> Result<Value, String> {
    Ok(match check {
        Some(check) if check.disable => json!({ "Test": ["NONE"] }),
        Some(check) => {
            let nanos = |duration: &Option<String>| {
                duration.as_deref().map_or(Ok(0), values::parse_duration_nanos).map(Value::from)
            };
            json!({
                "Test": check.test.clone().unwrap_or_default(),
                "Interval": nanos(&check.interval)?,
                "Timeout": nanos(&check.timeout)?,
                "Retries": check.retries.unwrap_or(3),
                "StartPeriod": nanos(&check.start_period)?,
            })
        }
        None => Value::Null,
    })
}

/// An Engine API tmpfs mount.
pub(crate) fn tmpfs_body(target: &str, size_bytes: Option<i64>) -> Value {
    match size_bytes {
        Some(size) => json!({ "Type": "tmpfs", "Target": target, "TmpfsOptions": { "SizeBytes": size } }),
        None => json!({ "Type": "tmpfs", "Target": target }),
    }
}

/// How a service shows it is ready (a job by completing, a service with a health check by passing it, any
/// other by running), and how long to wait for it: long enough for the start period and every retry of its
/// health check, plus time to start the process; a job gets ten minutes.
pub(crate) fn readiness_of(healthcheck: Option<&Healthcheck>, job: bool) -> (Ready, u64) {
    let check = healthcheck.filter(|check| !check.disable);
    let ready = if job {
        Ready::Completed
    } else if check.is_some() {
        Ready::Healthy
    } else {
        Ready::Running
    };
    let timeout = match check {
        Some(check) => {
            let interval = seconds(check.interval.as_ref(), 30);
            let timeout = seconds(check.timeout.as_ref(), 30);
            let probes = u64::from(check.retries.unwrap_or(3)).saturating_add(1);
            seconds(check.start_period.as_ref(), 0)
                .saturating_add(interval.saturating_add(timeout).saturating_mul(probes))
                .saturating_add(30)
        }
        None if job => 600,
        None => 60,
    };
    (ready, timeout)
}

/// The names in `wanted` that `existing` lacks, in order.
pub(crate) fn missing<'a>(wanted: impl IntoIterator<Item = &'a String>, existing: &[String]) -> Vec<String> {
    wanted.into_iter().filter(|name| !existing.contains(name)).cloned().collect()
}

/// The content digest of a host file a container bind-mounts: part of the configuration hash, so a changed
/// configuration file or rotated secret replaces the containers that mount it.
pub type FileDigest<'a> = &'a dyn Fn(&Path) -> String;

/// Reads the desired state from a parsed compose file rendered into `rendered_dir` for `deployment`.
pub fn desired(
    deployment: &str,
    compose: &ComposeFile,
    rendered_dir: &Path,
    digest: FileDigest<'_>,
) -> Result<Desired, String> {
    let scoped = |name: &str| format!("{deployment}_{name}");
    let deployment_labels = |labels: Option<&BTreeMap<String, String>>, name: &str| {
        let mut all: HashMap<String, String> =
            labels.map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        all.insert(DEPLOYMENT_LABEL.to_owned(), deployment.to_owned());
        all.entry(SERVICE_LABEL.to_owned()).or_insert_with(|| name.to_owned());
        all
    };
    let networks = compose
        .networks
        .iter()
        .map(|(name, definition)| {
            let labels = deployment_labels(definition.as_ref().map(|d| &d.labels), name);
            (scoped(name), json!({ "Name": scoped(name), "Driver": "bridge", "Labels": labels }))
        })
        .collect();
    let volumes = compose
        .volumes
        .iter()
        .map(|(name, definition)| (scoped(name), deployment_labels(definition.as_ref().map(|d| &d.labels), name)))
        .collect();
    let mut containers = BTreeMap::new();
    let mut bind_sources = Vec::new();
    let mut images = Vec::new();
    for (service_name, service) in &compose.services {
        let built = service_containers(deployment, service_name, service, compose, rendered_dir, digest)?;
        for container in &built {
            for source in container.body["HostConfig"]["Binds"].as_array().into_iter().flatten() {
                if let Some(source) = source.as_str().and_then(|bind| bind.split(':').next()) {
                    bind_sources.push(PathBuf::from(source));
                }
            }
        }
        if !images.contains(&service.image) {
            images.push(service.image.clone());
        }
        containers.insert(service_name.clone(), built);
    }
    bind_sources.sort();
    bind_sources.dedup();
    Ok(Desired {
        deployment: deployment.to_owned(),
        networks,
        volumes,
        groups: compose.start_order()?,
        containers,
        bind_sources,
        images,
    })
}

/// The containers of one service: one per replica, identical but for the name.
fn service_containers(
    deployment: &str,
    name: &str,
    service: &Service,
    compose: &ComposeFile,
    rendered_dir: &Path,
    digest: FileDigest<'_>,
) -> Result<Vec<DesiredContainer>, String> {
    let mut binds = Vec::new();
    let mut sources = Vec::new();
    let mut mounts = Vec::new();
    for mount in service.mounts()? {
        match mount {
            Mount::Bind { source, target, read_only, propagation } => {
                let source = resolve(rendered_dir, &source);
                sources.push(source.clone());
                let mut options: Vec<&str> = Vec::new();
                if read_only {
                    options.push("ro");
                }
                if let Some(propagation) = &propagation {
                    options.push(propagation);
                }
                let suffix = if options.is_empty() { String::new() } else { format!(":{}", options.join(",")) };
                binds.push(format!("{}:{target}{suffix}", source.display()));
            }
            Mount::Volume { name: volume, target, read_only } => mounts.push(json!({
                "Type": "volume", "Source": format!("{deployment}_{volume}"), "Target": target, "ReadOnly": read_only,
            })),
            Mount::Tmpfs { target, size_bytes } => mounts.push(tmpfs_body(&target, size_bytes)),
        }
    }
    for secret in &service.secrets {
        let source = resolve(rendered_dir, &compose.secrets[secret].file);
        binds.push(format!("{}:/run/secrets/{secret}:ro", source.display()));
        sources.push(source);
    }
    let mut exposed = serde_json::Map::new();
    let mut port_bindings = serde_json::Map::new();
    for port in &service.ports {
        let (host, container) = values::parse_port(port)?;
        exposed.insert(format!("{container}/tcp"), json!({}));
        port_bindings.insert(format!("{container}/tcp"), json!([{ "HostPort": host.to_string() }]));
    }
    let healthcheck = healthcheck_body(service.healthcheck.as_ref())?;
    let mut host_config = json!({
        "Binds": binds,
        "Mounts": mounts,
        "Tmpfs": service.tmpfs.iter().map(|path| (path.clone(), Value::from(""))).collect::<serde_json::Map<_, _>>(),
        "ReadonlyRootfs": service.read_only,
        "CapDrop": service.cap_drop,
        "CapAdd": service.cap_add,
        "SecurityOpt": service.security_opt,
        "Ulimits": service.ulimits.iter()
            .map(|(name, limit)| json!({ "Name": name, "Soft": limit.soft, "Hard": limit.hard }))
            .collect::<Vec<_>>(),
        "PortBindings": port_bindings,
        "RestartPolicy": { "Name": service.restart.clone().unwrap_or_else(|| "no".to_owned()) },
    });
    if let Some(limits) = service.limits() {
        if let Some(cpus) = &limits.cpus {
            host_config["NanoCpus"] = values::parse_cpus_nanos(cpus)?.into();
        }
        if let Some(memory) = &limits.memory {
            host_config["Memory"] = values::parse_bytes(memory)?.into();
        }
    }
    if let Some(memory) = service.reservations().and_then(|reservations| reservations.memory.as_ref()) {
        host_config["MemoryReservation"] = values::parse_bytes(memory)?.into();
    }
    if let Some(logging) = &service.logging {
        host_config["LogConfig"] = json!({ "Type": logging.driver, "Config": logging.options });
    }
    // The first network is attached at creation, the others right after (one per API call).
    let mut attachments: Vec<(String, Vec<String>)> = service
        .networks
        .iter()
        .map(|(network, attachment)| {
            let mut aliases = vec![name.to_owned()];
            aliases.extend(attachment.aliases.iter().cloned());
            (format!("{deployment}_{network}"), aliases)
        })
        .collect();
    let first = if attachments.is_empty() { None } else { Some(attachments.remove(0)) };
    if let Some((network, _)) = &first {
        host_config["NetworkMode"] = network.clone().into();
    }
    let mut labels = service.labels.clone();
    labels.insert(DEPLOYMENT_LABEL.to_owned(), deployment.to_owned());
    labels.entry(SERVICE_LABEL.to_owned()).or_insert_with(|| name.to_owned());
    labels.insert(COMPOSE_SERVICE_LABEL.to_owned(), name.to_owned());
    let mut body = json!({
        "Image": service.image,
        "Env": service.environment.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>(),
        "Labels": labels,
        "ExposedPorts": exposed,
        "HostConfig": host_config,
        "NetworkingConfig": {
            "EndpointsConfig": first.iter()
                .map(|(network, aliases)| (network.clone(), json!({ "Aliases": aliases })))
                .collect::<serde_json::Map<_, _>>(),
        },
    });
    if let Some(entrypoint) = &service.entrypoint {
        body["Entrypoint"] = json!(entrypoint);
    }
    if let Some(command) = &service.command {
        body["Cmd"] = json!(command);
    }
    if let Some(user) = &service.user {
        body["User"] = user.clone().into();
    }
    if !healthcheck.is_null() {
        body["Healthcheck"] = healthcheck;
    }
    let grace = seconds(service.stop_grace_period.as_ref(), 10);
    body["StopTimeout"] = grace.into();
    // Directories (the host root for node-exporter) are mounted, not hashed.
    let contents: Vec<String> = sources.iter().filter(|source| !source.is_dir()).map(|source| digest(source)).collect();
    let config_hash = json_hash(&json!([body, attachments, contents]))?;
    body["Labels"][CONFIG_HASH_LABEL] = config_hash.clone().into();

    let (ready, ready_timeout_seconds) = readiness_of(service.healthcheck.as_ref(), service.is_job());
    let start_first = !service.is_job()
        && service.ports.is_empty()
        && !service.mounts()?.iter().any(|mount| matches!(mount, Mount::Volume { .. }));
    Ok((1..=service.replicas())
        .map(|replica| DesiredContainer {
            service: name.to_owned(),
            name: format!("{deployment}-{name}-{replica}"),
            image: service.image.clone(),
            body: body.clone(),
            extra_networks: attachments.clone(),
            config_hash: config_hash.clone(),
            ready,
            grace_seconds: i32::try_from(grace).unwrap_or(i32::MAX),
            ready_timeout_seconds,
            start_first,
        })
        .collect())
}

/// Compares the desired state with what the Engine has. `image_ids` maps each image reference to the id of
/// the local image; `networks`/`volumes` are the names that exist.
pub fn changes(
    desired: &Desired,
    observed: &[ObservedContainer],
    networks: &[String],
    volumes: &[String],
    image_ids: &HashMap<String, String>,
) -> Changes {
    let by_name: HashMap<&str, &ObservedContainer> =
        observed.iter().map(|container| (container.name.as_str(), container)).collect();
    let mut services = Vec::new();
    for group in &desired.groups {
        for service in group {
            let wanted = desired.containers.get(service).cloned().unwrap_or_default();
            let service_changes = wanted
                .into_iter()
                .map(|desired| match by_name.get(desired.name.as_str()) {
                    None => ContainerChange::Create { desired, reason: Reason::Missing },
                    Some(found) => {
                        let reason = if found.labels.get(CONFIG_HASH_LABEL) != Some(&desired.config_hash) {
                            Some(Reason::ConfigurationChanged)
                        } else if image_ids.get(&desired.image).is_some_and(|id| *id != found.image_id) {
                            Some(Reason::ImageChanged)
                        } else if desired.ready == Ready::Completed {
                            (found.running || found.exit_code != Some(0)).then_some(Reason::JobFailed)
                        } else {
                            (!found.running).then_some(Reason::NotRunning)
                        };
                        match reason {
                            Some(reason) => ContainerChange::Replace { desired, reason },
                            None => ContainerChange::Keep { desired },
                        }
                    }
                })
                .collect();
            services.push((service.clone(), service_changes));
        }
    }
    let wanted: Vec<&str> = desired.containers.values().flatten().map(|container| container.name.as_str()).collect();
    let containers_to_remove = observed
        .iter()
        .filter(|container| !wanted.contains(&container.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    Changes {
        networks_to_create: missing(desired.networks.iter().map(|(name, _)| name), networks),
        volumes_to_create: missing(desired.volumes.iter().map(|(name, _)| name), volumes),
        services,
        containers_to_remove,
    }
}

/// The services whose readiness `service` waits for, with the condition (for error messages and ordering).
pub fn dependencies(compose: &ComposeFile, service: &str) -> Vec<(String, Condition)> {
    compose
        .services
        .get(service)
        .map(|s| s.depends_on.iter().map(|(name, dependency)| (name.clone(), dependency.condition)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
services:
  redis-1:
    image: redis:7
    volumes: ["redis-1-data:/data"]
    secrets: [redis_password]
    networks: {backend: {aliases: [tasks.redis-1]}}
    healthcheck: {test: ["CMD", "true"], interval: 10s, timeout: 5s, retries: 3, start_period: 10s}
    restart: unless-stopped
    labels: {io.comet.service: redis-1}
  migrate:
    image: comet:1
    restart: "no"
    networks: {backend: {}}
    depends_on: {redis-1: {condition: service_healthy}}
    healthcheck: {disable: true}
  api:
    image: comet:1
    networks: {backend: {}}
    depends_on: {migrate: {condition: service_completed_successfully}}
    deploy: {replicas: 2, resources: {limits: {cpus: "1", memory: 256M}}}
  nginx:
    image: nginx:1
    ports: ["8080:80"]
    volumes: ["./nginx/nginx.conf:/etc/nginx/nginx.conf:ro"]
    networks: {edge: {}, backend: {}}
    depends_on: {api: {condition: service_healthy}}
networks:
  backend: {labels: {io.comet.service: backend}}
  edge:
volumes:
  redis-1-data:
secrets:
  redis_password: {file: ../secrets/redis_password}
"#;

    fn desired_state() -> Desired {
        let compose = ComposeFile::parse("compose.yaml", FILE).expect("parses");
        desired("t", &compose, Path::new("/srv/t/rendered"), &|path: &Path| path.display().to_string())
            .expect("desired")
    }

    fn observed_from(
        desired: &DesiredContainer,
        image_id: &str,
        running: bool,
        exit: Option<i64>,
    ) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{}", desired.name),
            name: desired.name.clone(),
            service: desired.service.clone(),
            image: desired.image.clone(),
            running,
            health: crate::plan::observed::Health::Healthy,
            created: 0,
            ports: Vec::new(),
            image_id: image_id.into(),
            exit_code: exit,
            labels: HashMap::from([(CONFIG_HASH_LABEL.to_owned(), desired.config_hash.clone())]),
        }
    }

    #[test]
    fn containers_get_names_mounts_secrets_and_networks() {
        let desired = desired_state();
        assert_eq!(desired.groups, vec![vec!["redis-1"], vec!["migrate"], vec!["api"], vec!["nginx"]]);
        let api = &desired.containers["api"];
        assert_eq!(api.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["t-api-1", "t-api-2"]);
        assert_eq!(api[0].body["HostConfig"]["NanoCpus"], 1_000_000_000);
        assert!(api[0].start_first);
        let redis = &desired.containers["redis-1"][0];
        assert!(!redis.start_first, "a store with a volume is replaced stop-first");
        assert_eq!(
            redis.body["HostConfig"]["Binds"][0],
            "/srv/t/secrets/redis_password:/run/secrets/redis_password:ro"
        );
        assert_eq!(redis.body["HostConfig"]["Mounts"][0]["Source"], "t_redis-1-data");
        assert_eq!(redis.body["NetworkingConfig"]["EndpointsConfig"]["t_backend"]["Aliases"][1], "tasks.redis-1");
        assert_eq!(redis.body["Healthcheck"]["Interval"], 10_000_000_000_i64);
        let nginx = &desired.containers["nginx"][0];
        assert_eq!(nginx.body["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(nginx.extra_networks.len(), 1, "the second network is connected after creation");
        assert_eq!(desired.containers["migrate"][0].ready, Ready::Completed);
        assert_eq!(desired.containers["migrate"][0].body["Healthcheck"]["Test"][0], "NONE");
        assert!(desired.bind_sources.contains(&PathBuf::from("/srv/t/rendered/nginx/nginx.conf")));
    }

    #[test]
    fn an_unchanged_deployment_has_no_changes_and_each_difference_is_named() {
        let desired = desired_state();
        let images = HashMap::from([("comet:1".to_owned(), "sha256:c".to_owned())]);
        let all: Vec<&DesiredContainer> = desired.containers.values().flatten().collect();
        let observed: Vec<ObservedContainer> = all
            .iter()
            .map(|c| {
                observed_from(
                    c,
                    if c.image == "comet:1" { "sha256:c" } else { "x" },
                    c.ready != Ready::Completed,
                    (c.ready == Ready::Completed).then_some(0),
                )
            })
            .collect();
        let networks = vec!["t_backend".to_owned(), "t_edge".to_owned()];
        let volumes = vec!["t_redis-1-data".to_owned()];
        assert!(changes(&desired, &observed, &networks, &volumes, &images).is_empty());

        let rebuilt = HashMap::from([("comet:1".to_owned(), "sha256:new".to_owned())]);
        let changed = changes(&desired, &observed, &networks, &volumes, &rebuilt);
        let api = &changed.services.iter().find(|(name, _)| name == "api").expect("api").1;
        assert!(matches!(&api[0], ContainerChange::Replace { reason: Reason::ImageChanged, .. }));

        let mut failed_job = observed.clone();
        if let Some(job) = failed_job.iter_mut().find(|c| c.service == "migrate") {
            job.exit_code = Some(1);
        }
        let changed = changes(&desired, &failed_job, &networks, &volumes, &images);
        let migrate = &changed.services.iter().find(|(name, _)| name == "migrate").expect("migrate").1;
        assert!(matches!(&migrate[0], ContainerChange::Replace { reason: Reason::JobFailed, .. }));

        let mut extra = observed.clone();
        let mut orphan = observed[0].clone();
        orphan.name = "t-api-3".into();
        extra.push(orphan);
        let changed = changes(&desired, &extra, &[], &volumes, &images);
        assert_eq!(changed.containers_to_remove, vec!["t-api-3".to_owned()]);
        assert_eq!(changed.networks_to_create, vec!["t_backend".to_owned(), "t_edge".to_owned()]);
    }
}
