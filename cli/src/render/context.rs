//! The render context: the one value every template sees, built from the spec. The contract is
//! docs/templates.md; a change here is a change to that page.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{ServiceKey, Target};
use crate::sizing::{CpuMillis, MemoryMib, RedisMode, ServiceAllocation};
use crate::spec::{Spec, TlsMode};

/// Ports every comet-server role listens on.
pub const APP_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9100;

/// A secret `init` creates under secrets/.
#[derive(Debug)]
pub struct Secret {
    /// File name under secrets/.
    pub name: &'static str,
    /// The environment variable comet-server reads `<env>_FILE` from.
    pub env: &'static str,
    /// The service that uses it, when only one does: manifests leave the secret out when that service is not
    /// deployed (`init` still creates the file, so turning the service on needs no new secret).
    pub only_for: Option<ServiceKey>,
}

const fn secret(name: &'static str, env: &'static str) -> Secret {
    Secret { name, env, only_for: None }
}

pub const SECRETS: [Secret; 8] = [
    secret("db_password", "COMET_DATABASE_PASSWORD"),
    secret("db_root_password", "COMET_DATABASE_ROOT_PASSWORD"),
    secret("redis_password", "COMET_REDIS_PASSWORD"),
    Secret { only_for: Some(ServiceKey::Mongodb), ..secret("mongodb_password", "COMET_MONGODB_PASSWORD") },
    secret("api_key", "COMET_API_KEY"),
    secret("auth_key", "COMET_AUTH_KEY"),
    secret("token_signing_key", "COMET_TOKEN_SIGNING_KEY"),
    secret("grafana_admin_password", "GF_SECURITY_ADMIN_PASSWORD"),
];

/// The Custom API's password: a file the operator writes (`init` cannot know it), mounted only when the spec
/// names a user to authenticate as.
const CUSTOM_API_PASSWORD: Secret = Secret {
    only_for: Some(ServiceKey::Moderation),
    ..secret("moderation_custom_api_password", "COMET_MODERATION_CUSTOM_API_PASSWORD")
};

/// The Custom API's password secret, when the spec authenticates to a Custom API and moderation runs.
fn custom_api_password(spec: &Spec) -> Option<&'static Secret> {
    let custom = &spec.integrations.moderation_custom_api;
    (!custom.url.is_empty() && !custom.username.is_empty() && spec.plan.deploys(ServiceKey::Moderation))
        .then_some(&CUSTOM_API_PASSWORD)
}

/// What to do about a missing file that a rendered deployment mounts: the Custom API's password is the
/// operator's to write; every other secret, certificate and configuration file comes from `init` and `render`.
pub fn missing_file_hint(path: &std::path::Path) -> &'static str {
    if path.file_name().is_some_and(|name| name == CUSTOM_API_PASSWORD.name) {
        "write the moderation Custom API's password into it (mode 0600): \
         integrations.moderation_custom_api.username in cometctl.yaml authenticates with it"
    } else {
        "secrets/ and tls/ are written by `cometctl init`, rendered/ by `cometctl render`"
    }
}

/// comet-server's settings for what it calls outside the deployment (names in services/server/src/config.rs).
fn integrations_env(integrations: &crate::spec::Integrations) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if !integrations.allow_hosts.is_empty() {
        env.push(("COMET_WEBHOOKS_ALLOW_HOSTS", integrations.allow_hosts.join(",")));
    }
    let custom = &integrations.moderation_custom_api;
    if !custom.url.is_empty() {
        env.push(("COMET_MODERATION_CUSTOM_API_URL", custom.url.clone()));
        env.push(("COMET_MODERATION_CUSTOM_API_TIMEOUT_MS", custom.timeout_ms.to_string()));
        if !custom.username.is_empty() {
            env.push(("COMET_MODERATION_CUSTOM_API_USERNAME", custom.username.clone()));
        }
    }
    env
}

#[derive(Debug, Serialize)]
pub struct Context<'a> {
    name: &'a str,
    domain: &'a str,
    target: Target,
    comet_version: &'a str,
    images: BTreeMap<&'static str, String>,
    services: BTreeMap<&'static str, ServiceView>,
    roles: Vec<&'static str>,
    stores: Stores<'a>,
    nodes: BTreeMap<&'static str, Vec<Node>>,
    ports: Ports,
    tls: TlsView<'a>,
    observability: &'a crate::spec::Observability,
    secrets: Vec<SecretView>,
    retention: &'a crate::spec::Retention,
    /// The one threshold table `doctor` also reads (crate::domain::thresholds): the alert rules use it.
    thresholds: crate::domain::thresholds::Thresholds,
    backup: &'a crate::spec::Backup,
    edge: &'a crate::spec::Edge,
    kubernetes: &'a crate::spec::Kubernetes,
    host: &'a crate::spec::Host,
    env: BTreeMap<&'static str, String>,
    /// The exporters beside the stores (Prometheus on), by the store they watch.
    exporters: BTreeMap<&'static str, ExporterView>,
    /// The fixed small resources every exporter gets (`replicas`, `cpu` and `memory` as in a `services` entry).
    exporter_resources: ResourcesView,
    /// Shared files rendered before the target's own templates: output path → text.
    pub files: BTreeMap<String, String>,
}

/// An exporter: its name (`<store>-exporter`, the Prometheus job; one container or Deployment per member
/// appends `-<id>`) and the port it serves metrics on.
#[derive(Debug, Serialize)]
struct ExporterView {
    job: String,
    port: u16,
}

/// The stores that have an exporter, with its metrics port (each image's default).
const EXPORTERS: [(ServiceKey, u16); 4] =
    [(ServiceKey::Kafka, 9308), (ServiceKey::Redis, 9121), (ServiceKey::Nginx, 9113), (ServiceKey::Mongodb, 9216)];

/// What an exporter may use: too little to size, the same at every tier.
const EXPORTER_CPU: CpuMillis = CpuMillis { request: 20, limit: 100 };
const EXPORTER_MEMORY: MemoryMib = MemoryMib { request: 32, limit: 64 };

/// One replica with requests and limits, for the exporters (which are not services of the plan).
#[derive(Debug, Serialize)]
struct ResourcesView {
    replicas: u32,
    cpu: CpuView,
    memory: MemoryView,
}

#[derive(Debug, Serialize)]
struct ServiceView {
    name: &'static str,
    replicas: u32,
    global: bool,
    cpu: CpuView,
    memory: MemoryView,
    storage_gib: u32,
}

#[derive(Debug, Serialize)]
struct CpuView {
    request_millis: u32,
    limit_millis: u32,
    request_cores: String,
    limit_cores: String,
}

#[derive(Debug, Serialize)]
struct MemoryView {
    request_mib: u32,
    limit_mib: u32,
}

#[derive(Debug, Serialize)]
struct Stores<'a> {
    tidb: TidbView,
    kafka: KafkaView,
    redis: RedisView,
    mongodb: MongodbView<'a>,
}

#[derive(Debug, Serialize)]
struct TidbView {
    pd: u32,
    tikv: u32,
    tidb: u32,
    /// No PD and no TiKV: one TiDB server on its embedded store (development, small single-host deployments).
    standalone: bool,
}

#[derive(Debug, Serialize)]
struct KafkaView {
    brokers: u32,
    partitions: u32,
    replication_factor: u32,
    min_insync_replicas: u32,
}

#[derive(Debug, Serialize)]
struct RedisView {
    mode: RedisMode,
    shards: u32,
    replicas_per_shard: u32,
}

#[derive(Debug, Serialize)]
struct MongodbView<'a> {
    members: u32,
    replica_set: &'a str,
}

#[derive(Debug, Serialize)]
struct Node {
    name: String,
    id: u32,
}

#[derive(Debug, Serialize)]
struct Ports {
    http: u16,
    https: u16,
    app: u16,
    admin: u16,
}

#[derive(Debug, Serialize)]
struct TlsView<'a> {
    mode: TlsMode,
    cert_file: &'a str,
    key_file: &'a str,
}

#[derive(Debug, Serialize)]
struct SecretView {
    name: &'static str,
    env: &'static str,
}

/// Millicores as cores without trailing zeros: 500 → "0.5", 2000 → "2", 1250 → "1.25".
fn cores(millis: u32) -> String {
    let whole = millis / 1000;
    let fraction = millis % 1000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn service_view(key: ServiceKey, allocation: &ServiceAllocation) -> ServiceView {
    ServiceView {
        name: key.dns_name(),
        replicas: allocation.replicas,
        global: key.is_global(),
        cpu: cpu_view(allocation.cpu_millis),
        memory: memory_view(allocation.memory_mib),
        storage_gib: allocation.storage_gib,
    }
}

fn cpu_view(cpu: CpuMillis) -> CpuView {
    CpuView {
        request_millis: cpu.request,
        limit_millis: cpu.limit,
        request_cores: cores(cpu.request),
        limit_cores: cores(cpu.limit),
    }
}

fn memory_view(memory: MemoryMib) -> MemoryView {
    MemoryView { request_mib: memory.request, limit_mib: memory.limit }
}

fn nodes(prefix: &str, count: u32) -> Vec<Node> {
    (1..=count).map(|id| Node { name: format!("{prefix}-{id}"), id }).collect()
}

impl<'a> Context<'a> {
    pub fn new(spec: &'a Spec, target: Target) -> Context<'a> {
        let plan = &spec.plan;
        let replicas = |key| plan.replicas(key);
        let mut services: BTreeMap<&'static str, ServiceView> =
            plan.services.iter().map(|(&key, allocation)| (key.key(), service_view(key, allocation))).collect();
        let standalone_tidb = plan.standalone_tidb();
        if standalone_tidb {
            // Standalone TiDB holds the data TiKV would: without a size of its own, it takes one TiKV store's.
            let tikv_gib = plan.services.get(&ServiceKey::Tikv).map_or(0, |tikv| tikv.storage_gib);
            if let Some(tidb) = services.get_mut(ServiceKey::Tidb.key()).filter(|tidb| tidb.storage_gib == 0) {
                tidb.storage_gib = tikv_gib;
            }
        }
        let images = spec.images.named().into_iter().map(|(key, image)| (key, image.reference())).collect();
        let kafka = &plan.stores.kafka;
        let nodes: BTreeMap<&'static str, Vec<Node>> = [
            ("pd", nodes("pd", replicas(ServiceKey::Pd))),
            ("tikv", nodes("tikv", replicas(ServiceKey::Tikv))),
            ("kafka", nodes("kafka", replicas(ServiceKey::Kafka))),
            ("mongodb", nodes("mongodb", replicas(ServiceKey::Mongodb))),
            ("redis", nodes("redis", replicas(ServiceKey::Redis))),
        ]
        .into_iter()
        .collect();
        let joined = |key: &str, port: u16, separator: &str| {
            nodes.get(key).map_or_else(String::new, |list| {
                list.iter().map(|node| format!("{}:{port}", node.name)).collect::<Vec<_>>().join(separator)
            })
        };
        let redis_url = match plan.stores.redis.mode {
            RedisMode::Standalone => format!("redis://{}", joined("redis", 6379, ",")),
            RedisMode::Cluster => joined("redis", 6379, ",")
                .split(',')
                .map(|host| format!("redis://{host}"))
                .collect::<Vec<_>>()
                .join(","),
        };
        // Browsers send the port in Origin when it is not the default; Kubernetes serves 443 from its Ingress.
        let https_port = spec.edge.https_port.get();
        let origin = if target == Target::K8s || https_port == 443 {
            format!("https://{}", spec.domain)
        } else {
            format!("https://{}:{https_port}", spec.domain)
        };
        let mongodb_url = plan.deploys(ServiceKey::Mongodb).then(|| {
            // The user MongoDB's image creates (MONGO_INITDB_ROOT_USERNAME, in `admin`); its password is the
            // mongodb_password secret, which comet-server reads from COMET_MONGODB_PASSWORD_FILE.
            format!(
                "mongodb://comet@{}/?replicaSet={}&authSource=admin",
                joined("mongodb", 27017, ","),
                plan.stores.mongodb.replica_set
            )
        });
        let env = [
            ("COMET_LISTEN", format!("0.0.0.0:{APP_PORT}")),
            ("COMET_ADMIN_LISTEN", format!("0.0.0.0:{ADMIN_PORT}")),
            ("COMET_DATABASE_URL", "mysql://comet@tidb:4000/comet".to_owned()),
            ("COMET_KAFKA_BROKERS", joined("kafka", 9092, ",")),
            ("COMET_KAFKA_PARTITIONS", kafka.partitions.to_string()),
            ("COMET_KAFKA_REPLICATION_FACTOR", kafka.replication_factor.to_string()),
            (
                "COMET_REDIS_MODE",
                match plan.stores.redis.mode {
                    RedisMode::Standalone => "standalone",
                    RedisMode::Cluster => "cluster",
                }
                .to_owned(),
            ),
            ("COMET_REDIS_URL", redis_url),
            ("COMET_LOG_FORMAT", "json".to_owned()),
            // Browsers connect to the gateway from the chat's own site; more origins are an operator's choice.
            ("COMET_GATEWAY_ALLOWED_ORIGINS", origin),
        ]
        .into_iter()
        .chain(mongodb_url.map(|url| ("COMET_MONGODB_URL", url)))
        .chain(integrations_env(&spec.integrations))
        .collect();
        Context {
            name: spec.name.as_str(),
            domain: &spec.domain,
            target,
            comet_version: &spec.images.comet.tag,
            images,
            services,
            roles: ServiceKey::roles().filter(|&role| plan.deploys(role)).map(ServiceKey::key).collect(),
            stores: Stores {
                tidb: TidbView {
                    pd: replicas(ServiceKey::Pd),
                    tikv: replicas(ServiceKey::Tikv),
                    tidb: replicas(ServiceKey::Tidb),
                    standalone: standalone_tidb,
                },
                kafka: KafkaView {
                    brokers: replicas(ServiceKey::Kafka),
                    partitions: kafka.partitions,
                    replication_factor: kafka.replication_factor,
                    min_insync_replicas: kafka.min_insync_replicas,
                },
                redis: RedisView {
                    mode: plan.stores.redis.mode,
                    shards: plan.stores.redis.shards,
                    replicas_per_shard: plan.stores.redis.replicas_per_shard,
                },
                mongodb: MongodbView {
                    members: replicas(ServiceKey::Mongodb),
                    replica_set: &plan.stores.mongodb.replica_set,
                },
            },
            nodes,
            ports: Ports { http: 80, https: 443, app: APP_PORT, admin: ADMIN_PORT },
            tls: TlsView { mode: spec.tls.mode, cert_file: &spec.tls.cert_file, key_file: &spec.tls.key_file },
            observability: &spec.observability,
            secrets: SECRETS
                .iter()
                .filter(|secret| secret.only_for.is_none_or(|service| plan.deploys(service)))
                .chain(custom_api_password(spec))
                .map(|secret| SecretView { name: secret.name, env: secret.env })
                .collect(),
            retention: &spec.retention,
            thresholds: crate::domain::thresholds::THRESHOLDS,
            backup: &spec.backup,
            edge: &spec.edge,
            kubernetes: &spec.kubernetes,
            host: &spec.host,
            env,
            exporters: EXPORTERS
                .into_iter()
                .map(|(store, port)| {
                    (store.key(), ExporterView { job: format!("{}-exporter", store.dns_name()), port })
                })
                .collect(),
            exporter_resources: ResourcesView {
                replicas: 1,
                cpu: cpu_view(EXPORTER_CPU),
                memory: memory_view(EXPORTER_MEMORY),
            },
            files: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cores_drop_trailing_zeros() {
        for (millis, shown) in [(500, "0.5"), (2000, "2"), (1250, "1.25"), (100, "0.1"), (0, "0"), (1005, "1.005")] {
            assert_eq!(super::cores(millis), shown);
        }
    }
}
