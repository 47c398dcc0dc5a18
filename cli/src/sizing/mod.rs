//! The sizing model: MAU and concurrency in, a plan out. Pure: no IO, no clock, no randomness.
//!
//! MAU → peak concurrent connections (PCC) → message and event rates → replicas per role from per-replica
//! capacities → store topology → storage from retention and message size. Production targets get the
//! high-availability minimums of the profile; Compose gets one of each. Services held back (roles comet-server
//! does not implement, none in this release, and the optional MongoDB) are sized like the others but planned
//! at 0 replicas, with the reason, so that turning one on later is one edit.

mod allocation;
mod profile;

use std::collections::BTreeMap;

use serde::Serialize;

pub use allocation::{
    Allocation, CpuMillis, KafkaSettings, MemoryMib, MongodbSettings, RedisSettings, ServiceAllocation, StoreSettings,
};
pub use profile::{EMBEDDED_DEFAULT, Profile, ProfileError, RedisMode};

use crate::domain::{Concurrency, Mau, ServiceKey, ServiceKind, Target};

/// What the operator asks for.
#[derive(Debug, Clone, Copy)]
pub struct SizingRequest {
    pub mau: Mau,
    pub concurrency: Concurrency,
    pub target: Target,
    pub message_retention_days: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SizingError {
    #[error(
        "{mau} MAU is above the {max} MAU this sizing model covers: capacities at that scale have not been measured, \
         and one deployment should not carry it; split users across several deployments (for example by region) and size each"
    )]
    TooLarge { mau: u64, max: u64 },
    #[error("message retention of 0 days keeps nothing; give at least 1 day")]
    NoRetention,
}

/// The traffic a deployment must carry at its peak.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub concurrency_percent: f64,
    pub peak_connections: u64,
    pub daily_active_users: u64,
    pub messages_per_day: u64,
    pub peak_sends_per_second: f64,
    pub peak_deliveries_per_second: f64,
    pub peak_events_per_second: f64,
    pub peak_sql_statements_per_second: f64,
}

/// Storage for one stateful service.
#[derive(Debug, Clone, Serialize)]
pub struct StorageLine {
    pub service: ServiceKey,
    pub replicas: u32,
    pub per_replica_gib: u32,
    /// Growth of the whole service (every copy) per month, until retention caps it.
    pub growth_gib_per_month: f64,
    pub bounded_by: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub vcpu_request: f64,
    pub vcpu_limit: f64,
    pub memory_gib_request: f64,
    pub memory_gib_limit: f64,
    pub storage_gib: u64,
}

/// One assumption as printed with the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Assumption {
    pub name: String,
    pub value: String,
    pub provisional: bool,
}

/// The comet-server release whose roles the plan knows: cometctl and comet-server are versioned together.
const COMET_SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A service the plan sizes but does not deploy (0 replicas): why, and the replicas it gets once turned on.
#[derive(Debug, Clone, Serialize)]
pub struct NotDeployed {
    pub service: ServiceKey,
    pub replicas_when_deployed: u32,
    pub reason: String,
}

/// The sizing plan: what `cometctl sizing` prints and what `init` writes into the spec.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub mau: Mau,
    pub concurrency: Concurrency,
    pub target: Target,
    pub recommended_target: Target,
    pub profile: String,
    pub load: Load,
    pub allocation: Allocation,
    pub not_deployed: Vec<NotDeployed>,
    pub storage: Vec<StorageLine>,
    pub totals: Totals,
    pub warnings: Vec<String>,
    pub assumptions: Vec<Assumption>,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The plan for `request`; unless its target was `chosen`, the plan again for the target the first one
/// recommends, if that differs (`init` and `sizing` without `--target` size for the recommendation).
pub fn plan_for_recommended(profile: &Profile, request: SizingRequest, chosen: bool) -> Result<Plan, SizingError> {
    let first = plan(profile, &request)?;
    if chosen || first.recommended_target == request.target {
        return Ok(first);
    }
    plan(profile, &SizingRequest { target: first.recommended_target, ..request })
}

/// Computes the plan for a request under a profile.
pub fn plan(profile: &Profile, request: &SizingRequest) -> Result<Plan, SizingError> {
    let mau = request.mau.get();
    if mau > profile.limits.max_mau {
        return Err(SizingError::TooLarge { mau, max: profile.limits.max_mau });
    }
    if request.message_retention_days == 0 {
        return Err(SizingError::NoRetention);
    }
    let load = load(profile, request);
    let allocation = allocate(profile, request, &load);
    let storage = storage(profile, request, &load, &allocation);
    let mut allocation = allocation;
    for line in &storage {
        if let Some(service) = allocation.services.get_mut(&line.service) {
            service.storage_gib = line.per_replica_gib;
        }
    }
    let not_deployed = hold_back(&mut allocation);
    let storage = storage.into_iter().filter(|line| allocation.deploys(line.service)).collect();
    let totals = totals(&allocation);
    let recommended_target = recommend(profile, mau, load.peak_connections);
    let warnings = warnings(profile, request, &load, recommended_target);
    Ok(Plan {
        mau: request.mau,
        concurrency: request.concurrency,
        target: request.target,
        recommended_target,
        profile: profile.name.clone(),
        load,
        allocation,
        not_deployed,
        storage,
        totals,
        warnings,
        assumptions: assumptions(profile, request),
    })
}

fn concurrency_percent(profile: &Profile, concurrency: Concurrency) -> f64 {
    match concurrency {
        Concurrency::Baseline => profile.concurrency.baseline_percent,
        Concurrency::High => profile.concurrency.high_percent,
        Concurrency::Percent(percent) => percent,
    }
}

fn load(profile: &Profile, request: &SizingRequest) -> Load {
    let mau = request.mau.get() as f64;
    let traffic = &profile.traffic;
    let concurrency_percent = concurrency_percent(profile, request.concurrency);
    let peak_connections = (mau * concurrency_percent / 100.0).ceil();
    let daily_active_users = (mau * traffic.daily_active_percent / 100.0).ceil();
    let messages_per_day = (daily_active_users * traffic.messages_per_daily_active_user).ceil();
    let peak_sends_per_second = messages_per_day / 86_400.0 * traffic.peak_to_average;
    Load {
        concurrency_percent,
        peak_connections: peak_connections as u64,
        daily_active_users: daily_active_users as u64,
        messages_per_day: messages_per_day as u64,
        peak_sends_per_second: round2(peak_sends_per_second),
        peak_deliveries_per_second: round2(peak_sends_per_second * traffic.deliveries_per_message),
        peak_events_per_second: round2(peak_sends_per_second * profile.storage.events_per_message),
        peak_sql_statements_per_second: round2(
            peak_sends_per_second * traffic.sql_statements_per_send
                + peak_connections * traffic.sql_reads_per_connection_per_minute / 60.0,
        ),
    }
}

/// Replicas needed to carry `load` at the profile's target utilisation of `capacity` per replica.
fn replicas_for(profile: &Profile, load: f64, capacity: f64) -> u32 {
    let usable = capacity * profile.capacities.target_utilisation_percent / 100.0;
    let needed = (load / usable).ceil();
    if needed.is_finite() && needed >= 1.0 { needed.min(f64::from(u32::MAX)) as u32 } else { 1 }
}

fn allocate(profile: &Profile, request: &SizingRequest, load: &Load) -> Allocation {
    let caps = &profile.capacities;
    let ha = &profile.high_availability;
    let production = request.target.is_production();
    let tier = profile.tier_for(request.mau.get());
    let connections = load.peak_connections as f64;
    let writes_per_second = load.peak_sql_statements_per_second;
    let tikv_for_storage = {
        let copies = if production { 3.0 } else { 1.0 };
        let stored_gib = tikv_gib_per_day(profile, load, copies) * held_days(profile, request.message_retention_days)
            + outbox_gib(profile, load, copies);
        let headroom = 100.0 / caps.target_utilisation_percent;
        let nodes = (stored_gib * headroom / caps.tikv_storage_gib.value).ceil();
        if nodes.is_finite() && nodes >= 1.0 { nodes.min(f64::from(u32::MAX)) as u32 } else { 1 }
    };

    let demand = |key: ServiceKey| -> u32 {
        match key {
            ServiceKey::Nginx => replicas_for(profile, connections, caps.nginx_connections.value),
            ServiceKey::Api => replicas_for(profile, load.peak_sends_per_second, caps.api_sends_per_second.value),
            ServiceKey::Gateway => replicas_for(profile, connections, caps.gateway_connections.value),
            ServiceKey::Moderation => {
                replicas_for(profile, load.peak_sends_per_second, caps.moderation_messages_per_second.value)
            }
            ServiceKey::Notifications => {
                replicas_for(profile, load.peak_deliveries_per_second, caps.notifications_per_second.value)
            }
            ServiceKey::Webhooks => replicas_for(profile, load.peak_events_per_second, caps.webhooks_per_second.value),
            ServiceKey::Relay => replicas_for(profile, load.peak_events_per_second, caps.relay_events_per_second.value),
            ServiceKey::Tidb => {
                replicas_for(profile, load.peak_sql_statements_per_second, caps.tidb_statements_per_second.value)
                    .max(ha.tidb)
            }
            ServiceKey::Tikv => replicas_for(profile, writes_per_second, caps.tikv_writes_per_second.value)
                .max(tikv_for_storage)
                .max(ha.tikv),
            ServiceKey::Pd => ha.pd,
            ServiceKey::Kafka => ha.kafka_brokers,
            ServiceKey::Mongodb => ha.mongodb_members,
            ServiceKey::Redis => match tier.redis {
                RedisMode::Standalone => 1,
                RedisMode::Cluster => ha.redis_cluster_shards * (1 + ha.redis_replicas_per_shard),
            },
            _ => 1,
        }
    };

    let services = ServiceKey::ALL
        .iter()
        .map(|&key| {
            let replicas = if !production {
                1
            } else if matches!(key.kind(), ServiceKind::Role | ServiceKind::Edge) {
                demand(key).max(ha.stateless_replicas)
            } else {
                demand(key)
            };
            let resources = profile
                .resources
                .get(&key)
                .copied()
                .unwrap_or(profile::Resources { cpu: [100, 100], memory: [64, 64] });
            let scale = if production { 100 } else { profile.compose_resources_percent };
            let scaled = |value: u32, floor: u32| (value.saturating_mul(scale) / 100).max(floor);
            let allocation = ServiceAllocation {
                replicas,
                cpu_millis: CpuMillis { request: scaled(resources.cpu[0], 50), limit: scaled(resources.cpu[1], 100) },
                memory_mib: MemoryMib {
                    request: scaled(resources.memory[0], 32),
                    limit: scaled(resources.memory[1], 64),
                },
                storage_gib: 0,
            };
            (key, allocation)
        })
        .collect::<BTreeMap<_, _>>();

    let (redis_mode, redis_shards, redis_replicas_per_shard) = match (production, tier.redis) {
        (true, RedisMode::Cluster) => (RedisMode::Cluster, ha.redis_cluster_shards, ha.redis_replicas_per_shard),
        _ => (RedisMode::Standalone, 1, 0),
    };
    let stores = StoreSettings {
        kafka: KafkaSettings {
            partitions: tier.kafka_partitions,
            replication_factor: if production { ha.kafka_replication_factor } else { 1 },
            min_insync_replicas: if production { ha.kafka_min_insync_replicas } else { 1 },
        },
        redis: RedisSettings { mode: redis_mode, shards: redis_shards, replicas_per_shard: redis_replicas_per_shard },
        mongodb: MongodbSettings { replica_set: "rs0".to_owned() },
    };
    Allocation { services, stores }
}

/// Sets the services that cannot run yet to 0 replicas. Their resources and storage stay as sized, so turning
/// one on is one edit of its `replicas` (to the count returned here).
fn hold_back(allocation: &mut Allocation) -> Vec<NotDeployed> {
    let mut held: Vec<(ServiceKey, String)> = ServiceKey::NOT_YET_IMPLEMENTED
        .into_iter()
        .map(|key| (key, format!("not yet implemented by comet-server {COMET_SERVER_VERSION}; sized at 0 until it is")))
        .collect();
    // The roles that can use MongoDB (moderation data, webhook configurations) keep the same data in the
    // relational store without it; the end-to-end suite has no MongoDB image to deploy, so it stays optional.
    held.push((
        ServiceKey::Mongodb,
        "optional: while it is 0, moderation data and webhook configurations stay in the relational store; set its \
         replicas to keep them in MongoDB, as CometChat's bundle does"
            .to_owned(),
    ));
    held.into_iter()
        .filter_map(|(key, reason)| {
            let service = allocation.services.get_mut(&key)?;
            let replicas_when_deployed = std::mem::replace(&mut service.replicas, 0);
            Some(NotDeployed { service: key, replicas_when_deployed, reason })
        })
        .collect()
}

/// GiB TiKV stores per day, all copies.
fn tikv_gib_per_day(profile: &Profile, load: &Load, copies: f64) -> f64 {
    load.messages_per_day as f64 * profile.storage.message_bytes * copies / GIB
}

/// GiB the outbox holds in TiKV, all copies: the events of its retention, deleted after it (a constant, not growth).
fn outbox_gib(profile: &Profile, load: &Load, copies: f64) -> f64 {
    let storage = &profile.storage;
    let days = f64::from(storage.outbox_retention_hours) / 24.0;
    load.messages_per_day as f64 * storage.events_per_message * storage.event_bytes * days * copies / GIB
}

/// Days of data a volume must hold: its provisioning horizon, or the retention when that is shorter.
fn held_days(profile: &Profile, retention_days: u32) -> f64 {
    (f64::from(profile.storage.provision_months) * 30.0).min(f64::from(retention_days))
}

fn storage(profile: &Profile, request: &SizingRequest, load: &Load, allocation: &Allocation) -> Vec<StorageLine> {
    let assumptions = &profile.storage;
    let replicas = |key: ServiceKey| allocation.services.get(&key).map_or(1, |service| service.replicas.max(1));
    let production = request.target.is_production();
    let days_per_month = 30.0;
    let provision_days = f64::from(assumptions.provision_months) * days_per_month;
    let headroom = 100.0 / profile.capacities.target_utilisation_percent;
    let min_gib = |key: ServiceKey| profile.min_storage_gib.get(&key).copied().unwrap_or(1);

    // Per-replica size: the service's data after `provision_days` (or its retention, whichever is shorter),
    // spread over its replicas, with utilisation headroom, never below the profile's minimum.
    // `fixed_gib` is held whatever the horizon (the outbox's retention window), and does not grow.
    let sized = |key: ServiceKey, copies_gib_per_day: f64, fixed_gib: f64, retention_days: f64, bounded_by| {
        let replicas = replicas(key);
        let held_days = provision_days.min(retention_days);
        let per_replica = ((copies_gib_per_day * held_days + fixed_gib) * headroom / f64::from(replicas)).ceil();
        let per_replica = if per_replica.is_finite() { per_replica as u32 } else { u32::MAX };
        let growth = if retention_days < days_per_month { 0.0 } else { round2(copies_gib_per_day * days_per_month) };
        StorageLine {
            service: key,
            replicas,
            per_replica_gib: per_replica.max(min_gib(key)),
            growth_gib_per_month: growth,
            bounded_by,
        }
    };
    let line = |key: ServiceKey, copies_gib_per_day: f64, retention_days: f64, bounded_by: &'static str| {
        sized(key, copies_gib_per_day, 0.0, retention_days, bounded_by)
    };

    let messages_per_day = load.messages_per_day as f64;
    let tikv_copies = if production { 3.0 } else { 1.0 };
    let kafka_copies = f64::from(allocation.stores.kafka.replication_factor);
    let mongodb_copies = f64::from(replicas(ServiceKey::Mongodb));
    let retention = f64::from(request.message_retention_days);
    let kafka_retention_days = f64::from(assumptions.kafka_retention_hours) / 24.0;
    let observability_days = f64::from(assumptions.observability_retention_days);
    let mau_in_100k = request.mau.get() as f64 / 100_000.0;

    vec![
        line(ServiceKey::Pd, 0.0, retention, "fixed"),
        sized(
            ServiceKey::Tikv,
            tikv_gib_per_day(profile, load, tikv_copies),
            outbox_gib(profile, load, tikv_copies),
            retention,
            "message retention",
        ),
        line(
            ServiceKey::Kafka,
            messages_per_day * assumptions.events_per_message * assumptions.event_bytes * kafka_copies / GIB,
            kafka_retention_days,
            "kafka retention",
        ),
        line(ServiceKey::Redis, 0.0, retention, "fixed"),
        // Moderation flags, webhook delivery logs and audit: about one small document per ten messages.
        line(
            ServiceKey::Mongodb,
            messages_per_day * 0.1 * 512.0 * mongodb_copies / GIB,
            retention,
            "message retention",
        ),
        line(ServiceKey::Prometheus, assumptions.metrics_gib_per_day, observability_days, "metrics retention"),
        line(ServiceKey::Grafana, 0.0, retention, "fixed"),
        line(
            ServiceKey::Loki,
            assumptions.logs_gib_per_day_per_100k_mau * mau_in_100k,
            observability_days,
            "log retention",
        ),
    ]
}

fn totals(allocation: &Allocation) -> Totals {
    let mut totals =
        Totals { vcpu_request: 0.0, vcpu_limit: 0.0, memory_gib_request: 0.0, memory_gib_limit: 0.0, storage_gib: 0 };
    for service in allocation.services.values() {
        let replicas = f64::from(service.replicas);
        totals.vcpu_request += replicas * f64::from(service.cpu_millis.request) / 1000.0;
        totals.vcpu_limit += replicas * f64::from(service.cpu_millis.limit) / 1000.0;
        totals.memory_gib_request += replicas * f64::from(service.memory_mib.request) / 1024.0;
        totals.memory_gib_limit += replicas * f64::from(service.memory_mib.limit) / 1024.0;
        totals.storage_gib += u64::from(service.replicas) * u64::from(service.storage_gib);
    }
    totals.vcpu_request = round2(totals.vcpu_request);
    totals.vcpu_limit = round2(totals.vcpu_limit);
    totals.memory_gib_request = round2(totals.memory_gib_request);
    totals.memory_gib_limit = round2(totals.memory_gib_limit);
    totals
}

fn recommend(profile: &Profile, mau: u64, peak_connections: u64) -> Target {
    if mau > profile.limits.swarm_max_mau || peak_connections > profile.limits.swarm_max_connections {
        Target::K8s
    } else {
        Target::Swarm
    }
}

fn warnings(profile: &Profile, request: &SizingRequest, load: &Load, recommended: Target) -> Vec<String> {
    let limits = &profile.limits;
    let mut warnings = Vec::new();
    if request.mau.get() < limits.warn_below_mau {
        warnings.push(format!(
            "{} MAU is below {}: even the smallest stack here is far larger than the load; \
             `comet-server all` (one process, embedded storage) may be all you need",
            request.mau.get(),
            limits.warn_below_mau
        ));
    }
    match (request.target, recommended) {
        (Target::Compose, _) => warnings.push(format!(
            "compose is for development and QA only: one host, one replica of everything, no high availability; \
             use {recommended} for production"
        )),
        (Target::Swarm, Target::K8s) => warnings.push(format!(
            "swarm chosen for {} MAU / {} peak connections, above what this project recommends for Swarm \
             ({} MAU / {} connections); use k8s",
            request.mau.get(),
            load.peak_connections,
            limits.swarm_max_mau,
            limits.swarm_max_connections
        )),
        _ => {}
    }
    warnings
}

fn assumptions(profile: &Profile, request: &SizingRequest) -> Vec<Assumption> {
    let traffic = &profile.traffic;
    let storage = &profile.storage;
    let plain = |name: &str, value: String| Assumption { name: name.to_owned(), value, provisional: false };
    let mut list = vec![
        plain("profile", profile.name.clone()),
        plain(
            "concurrency",
            format!("{} = {}% of MAU", request.concurrency, concurrency_percent(profile, request.concurrency)),
        ),
        plain("daily active users", format!("{}% of MAU", traffic.daily_active_percent)),
        plain("messages per daily active user", traffic.messages_per_daily_active_user.to_string()),
        plain("peak to average send rate", format!("{}x", traffic.peak_to_average)),
        plain("deliveries per message", traffic.deliveries_per_message.to_string()),
        plain("stored bytes per message (per copy)", storage.message_bytes.to_string()),
        plain("message retention", format!("{} days", request.message_retention_days)),
        plain("kafka retention", format!("{} hours", storage.kafka_retention_hours)),
        plain("outbox retention (published events)", format!("{} hours", storage.outbox_retention_hours)),
        plain("volumes provisioned for", format!("{} months of growth", storage.provision_months)),
        plain("target utilisation per replica", format!("{}%", profile.capacities.target_utilisation_percent)),
    ];
    list.extend(profile.capacities.named().iter().map(|(name, capacity)| Assumption {
        name: format!("capacity: {name}"),
        value: capacity.value.to_string(),
        provisional: capacity.provisional,
    }));
    list
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
