//! The part of a plan an operator may edit: replicas, resources and storage per service, and the settings of
//! the stores. `init` writes it into cometctl.yaml under `plan:`; `render` reads it back from there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RedisMode;
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
    /// Replicas; members for clustered stores; per node for global services.
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

    /// Problems that make the allocation impossible to deploy, each as `(path, problem)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for key in ServiceKey::ALL {
            match self.services.get(&key) {
                None => problems.push((format!("plan.services.{}", key.key()), "is missing".to_owned())),
                Some(service) => {
                    let path = format!("plan.services.{}", key.key());
                    if service.replicas == 0 {
                        problems.push((format!("{path}.replicas"), "must be at least 1".to_owned()));
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
}
