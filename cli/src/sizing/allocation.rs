//! The part of a plan an operator may edit: replicas, resources and storage per service, and the settings of
//! the stores. `init` writes it into cometctl.yaml under `plan:`; `render` reads it back from there.
//!
//! `replicas: 0` means the service is not deployed: every render leaves it out. Only the services a
//! deployment can do without may be 0 (see `Allocation::problems`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::profile::RedisMode;
use crate::domain::ServiceKey;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub services: BTreeMap<ServiceKey, ServiceAllocation>,
    pub stores: StoreSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAllocation {
    /// Replicas; members for clustered stores; per node for global services. 0: not deployed.
    pub replicas: u32,
    pub cpu_millis: CpuMillis,
    pub memory_mib: MemoryMib,
    /// Volume per replica; 0 for a service that keeps no data.
    #[serde(default)]
    pub storage_gib: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuMillis {
    pub request: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryMib {
    pub request: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub kafka: KafkaSettings,
    pub redis: RedisSettings,
    pub mongodb: MongodbSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub partitions: u32,
    pub replication_factor: u32,
    pub min_insync_replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub mode: RedisMode,
    pub shards: u32,
    /// Replicas of each shard's primary (cluster mode).
    pub replicas_per_shard: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongodbSettings {
    pub replica_set: String,
}

impl Allocation {
    pub fn replicas(&self, key: ServiceKey) -> u32 {
        self.services.get(&key).map_or(0, |service| service.replicas)
    }

    /// Whether the service is deployed at all: `replicas: 0` leaves it out of every render.
    pub fn deploys(&self, key: ServiceKey) -> bool {
        self.replicas(key) > 0
    }

    /// TiDB on its embedded store, without PD and TiKV: for development and small single-host deployments,
    /// with no high availability (one server, one volume).
    pub fn standalone_tidb(&self) -> bool {
        !self.deploys(ServiceKey::Pd) && !self.deploys(ServiceKey::Tikv)
    }

    /// Problems that make the allocation impossible to deploy, each as `(path, problem)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for key in ServiceKey::ALL {
            match self.services.get(&key) {
                None => problems.push((format!("plan.services.{}", key.key()), "is missing".to_owned())),
                Some(service) => {
                    let path = format!("plan.services.{}", key.key());
                    if service.replicas == 0
                        && let Some(problem) = needs_a_replica(key)
                    {
                        problems.push((format!("{path}.replicas"), problem.to_owned()));
                    }
                    if service.cpu_millis.request == 0 || service.cpu_millis.request > service.cpu_millis.limit {
                        problems.push((
                            format!("{path}.cpu_millis"),
                            "request must be positive and not above limit".to_owned(),
                        ));
                    }
                    if service.memory_mib.request == 0 || service.memory_mib.request > service.memory_mib.limit {
                        problems.push((
                            format!("{path}.memory_mib"),
                            "request must be positive and not above limit".to_owned(),
                        ));
                    }
                }
            }
        }
        problems.extend(self.tidb_problems());
        let kafka = &self.stores.kafka;
        let brokers = self.replicas(ServiceKey::Kafka);
        if kafka.partitions == 0 {
            problems.push(("plan.stores.kafka.partitions".to_owned(), "must be at least 1".to_owned()));
        }
        if kafka.replication_factor == 0 || kafka.replication_factor > brokers {
            problems.push((
                "plan.stores.kafka.replication_factor".to_owned(),
                format!("must be between 1 and the number of brokers ({brokers})"),
            ));
        }
        if kafka.min_insync_replicas == 0 || kafka.min_insync_replicas > kafka.replication_factor {
            problems.push((
                "plan.stores.kafka.min_insync_replicas".to_owned(),
                "must be between 1 and replication_factor".to_owned(),
            ));
        }
        let redis = &self.stores.redis;
        let redis_nodes = self.replicas(ServiceKey::Redis);
        match redis.mode {
            RedisMode::Standalone if redis_nodes != 1 => problems.push((
                "plan.services.redis.replicas".to_owned(),
                "must be 1 in standalone mode (use mode: cluster to scale Redis)".to_owned(),
            )),
            RedisMode::Cluster if redis.shards < 3 => problems
                .push(("plan.stores.redis.shards".to_owned(), "Redis cluster needs at least 3 shards".to_owned())),
            RedisMode::Cluster if redis_nodes != redis.shards * (1 + redis.replicas_per_shard) => problems.push((
                "plan.services.redis.replicas".to_owned(),
                format!(
                    "must be shards x (1 + replicas_per_shard) = {} in cluster mode",
                    redis.shards * (1 + redis.replicas_per_shard)
                ),
            )),
            _ => {}
        }
        let valid_name = !self.stores.mongodb.replica_set.is_empty()
            && self.stores.mongodb.replica_set.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            problems.push(("plan.stores.mongodb.replica_set".to_owned(), "must be letters, digits, - or _".to_owned()));
        }
        problems
    }

    /// PD and TiKV come together or not at all; without them TiDB runs standalone on one volume.
    fn tidb_problems(&self) -> Vec<(String, String)> {
        let service = |key: ServiceKey| self.services.get(&key);
        let (pd, tikv, tidb) =
            (self.replicas(ServiceKey::Pd), self.replicas(ServiceKey::Tikv), self.replicas(ServiceKey::Tidb));
        let mut problems = Vec::new();
        match (pd, tikv) {
            (0, 0) => {
                if tidb > 1 {
                    problems.push((
                        "plan.services.tidb.replicas".to_owned(),
                        format!(
                            "is {tidb}, but must be 1 while pd and tikv are 0: standalone TiDB keeps its data on its \
                             own volume, which a second server cannot share; give pd and tikv members to run more"
                        ),
                    ));
                }
                let storage = |key| service(key).map_or(0, |service| service.storage_gib);
                if storage(ServiceKey::Tidb) == 0 && storage(ServiceKey::Tikv) == 0 {
                    problems.push((
                        "plan.services.tidb.storage_gib".to_owned(),
                        "must be at least 1 while pd and tikv are 0: it sizes standalone TiDB's volume \
                         (Kubernetes)"
                            .to_owned(),
                    ));
                }
            }
            (0, _) => problems.push((
                "plan.services.pd.replicas".to_owned(),
                format!(
                    "is 0 while tikv has {tikv} member(s), and TiKV needs PD: give pd members (3 for a quorum), \
                     or set tikv to 0 too for a standalone TiDB (development, no high availability)"
                ),
            )),
            (_, 0) => problems.push((
                "plan.services.tikv.replicas".to_owned(),
                format!(
                    "is 0 while pd has {pd} member(s), and PD without TiKV stores nothing: give tikv members \
                     (3 for three copies), or set pd to 0 too for a standalone TiDB (development, no high \
                     availability)"
                ),
            )),
            _ => {}
        }
        problems
    }
}

/// Why `key` cannot be left out (`replicas: 0`), or `None` when a deployment may do without it. PD, TiKV and
/// MongoDB are checked with the services they go with.
fn needs_a_replica(key: ServiceKey) -> Option<&'static str> {
    let problem = match key {
        ServiceKey::Moderation
        | ServiceKey::Notifications
        | ServiceKey::Webhooks
        | ServiceKey::Pd
        | ServiceKey::Tikv
        | ServiceKey::Mongodb => return None,
        ServiceKey::Prometheus | ServiceKey::NodeExporter | ServiceKey::Cadvisor => {
            "must be at least 1; to run without it, set observability.prometheus: false"
        }
        ServiceKey::Grafana => "must be at least 1; to run without it, set observability.grafana: false",
        ServiceKey::Loki | ServiceKey::Promtail => {
            "must be at least 1; to run without it, set observability.loki: false"
        }
        ServiceKey::Nginx
        | ServiceKey::Api
        | ServiceKey::Gateway
        | ServiceKey::Relay
        | ServiceKey::Migrate
        | ServiceKey::Tidb
        | ServiceKey::Kafka
        | ServiceKey::Redis => {
            "must be at least 1: every deployment needs it (only moderation, notifications, webhooks, mongodb, \
             and pd with tikv, may be 0)"
        }
    };
    Some(problem)
}
