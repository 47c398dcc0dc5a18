//! The sizing profile: traffic assumptions, per-replica capacities and resources, read from YAML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::ServiceKey;

/// The profile compiled into the binary (`profiles/default.yaml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../profiles/default.yaml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub concurrency: ConcurrencyRatios,
    pub traffic: Traffic,
    pub storage: StorageAssumptions,
    pub capacities: Capacities,
    pub tiers: Vec<Tier>,
    pub high_availability: HighAvailability,
    pub limits: Limits,
    pub compose_resources_percent: u32,
    pub resources: BTreeMap<ServiceKey, Resources>,
    pub min_storage_gib: BTreeMap<ServiceKey, u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyRatios {
    pub baseline_percent: f64,
    pub high_percent: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    pub daily_active_percent: f64,
    pub messages_per_daily_active_user: f64,
    pub peak_to_average: f64,
    pub deliveries_per_message: f64,
    pub sql_statements_per_send: f64,
    pub sql_reads_per_connection_per_minute: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageAssumptions {
    pub message_bytes: f64,
    pub event_bytes: f64,
    pub events_per_message: f64,
    pub kafka_retention_hours: u32,
    /// How long published events stay in the outbox table (comet-server's `COMET_OUTBOX_RETENTION_MS`); a
    /// profile written before the retention job existed gets its default, 24.
    #[serde(default = "default_outbox_retention_hours")]
    pub outbox_retention_hours: u32,
    pub provision_months: u32,
    pub logs_gib_per_day_per_100k_mau: f64,
    pub metrics_gib_per_day: f64,
    pub observability_retention_days: u32,
}

fn default_outbox_retention_hours() -> u32 {
    24
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub value: f64,
    /// A conservative starting figure, not yet replaced by a measurement in docs/benchmarks.md.
    pub provisional: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capacities {
    pub target_utilisation_percent: f64,
    pub gateway_connections: Capacity,
    pub api_sends_per_second: Capacity,
    pub relay_events_per_second: Capacity,
    pub notifications_per_second: Capacity,
    pub webhooks_per_second: Capacity,
    pub moderation_messages_per_second: Capacity,
    pub tidb_statements_per_second: Capacity,
    pub tikv_writes_per_second: Capacity,
    pub tikv_storage_gib: Capacity,
    pub nginx_connections: Capacity,
}

impl Capacities {
    /// Every capacity with its name, for the assumptions table.
    pub fn named(&self) -> [(&'static str, Capacity); 10] {
        [
            ("gateway_connections", self.gateway_connections),
            ("api_sends_per_second", self.api_sends_per_second),
            ("relay_events_per_second", self.relay_events_per_second),
            ("notifications_per_second", self.notifications_per_second),
            ("webhooks_per_second", self.webhooks_per_second),
            ("moderation_messages_per_second", self.moderation_messages_per_second),
            ("tidb_statements_per_second", self.tidb_statements_per_second),
            ("tikv_writes_per_second", self.tikv_writes_per_second),
            ("tikv_storage_gib", self.tikv_storage_gib),
            ("nginx_connections", self.nginx_connections),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    Standalone,
    Cluster,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub up_to_mau: u64,
    pub kafka_partitions: u32,
    pub redis: RedisMode,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HighAvailability {
    pub stateless_replicas: u32,
    pub pd: u32,
    pub tikv: u32,
    pub tidb: u32,
    pub kafka_brokers: u32,
    pub kafka_replication_factor: u32,
    pub kafka_min_insync_replicas: u32,
    pub mongodb_members: u32,
    pub redis_cluster_shards: u32,
    pub redis_replicas_per_shard: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub warn_below_mau: u64,
    pub max_mau: u64,
    pub swarm_max_mau: u64,
    pub swarm_max_connections: u64,
}

/// `[request, limit]` pairs: CPU in millicores, memory in MiB.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu: [u32; 2],
    pub memory: [u32; 2],
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile {0}")]
    Parse(crate::yaml::YamlError),
    #[error("profile {origin}: {problem}")]
    Invalid { origin: String, problem: String },
}

impl Profile {
    /// Parses and checks a profile. `origin` names the file (or `embedded`) in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = crate::yaml::from_str(origin, text).map_err(ProfileError::Parse)?;
        profile.check().map_err(|problem| ProfileError::Invalid { origin: origin.to_owned(), problem })?;
        Ok(profile)
    }

    pub fn embedded() -> Result<Profile, ProfileError> {
        Profile::parse("embedded default", EMBEDDED_DEFAULT)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(missing) = ServiceKey::ALL.iter().find(|key| !self.resources.contains_key(key)) {
            return Err(format!("resources has no entry for `{}`", missing.key()));
        }
        if self.tiers.is_empty() || self.tiers.windows(2).any(|pair| pair[0].up_to_mau >= pair[1].up_to_mau) {
            return Err("tiers must be non-empty and sorted by up_to_mau".to_owned());
        }
        if self.tiers.last().map(|tier| tier.up_to_mau) < Some(self.limits.max_mau) {
            return Err("the last tier must cover limits.max_mau".to_owned());
        }
        let positive = self.capacities.named().iter().all(|(_, capacity)| capacity.value > 0.0)
            && self.capacities.target_utilisation_percent > 0.0
            && self.capacities.target_utilisation_percent <= 100.0;
        if !positive {
            return Err("every capacity must be positive and target_utilisation_percent in (0, 100]".to_owned());
        }
        if let Some((key, resources)) =
            self.resources.iter().find(|(_, r)| r.cpu[0] > r.cpu[1] || r.memory[0] > r.memory[1] || r.cpu[0] == 0)
        {
            return Err(format!(
                "resources.{}: request must be positive and not above the limit ({resources:?})",
                key.key()
            ));
        }
        let ha = &self.high_availability;
        if ha.kafka_min_insync_replicas > ha.kafka_replication_factor || ha.kafka_replication_factor > ha.kafka_brokers
        {
            return Err("high_availability: need min_insync_replicas <= replication_factor <= kafka_brokers".to_owned());
        }
        if !(1..=100).contains(&self.compose_resources_percent) {
            return Err("compose_resources_percent must be in 1..=100".to_owned());
        }
        Ok(())
    }

    /// The tier that holds `mau` (the last one beyond every bound).
    pub fn tier_for(&self, mau: u64) -> &Tier {
        let last = self.tiers.len().saturating_sub(1);
        self.tiers.iter().find(|tier| mau <= tier.up_to_mau).unwrap_or(&self.tiers[last])
    }
}
