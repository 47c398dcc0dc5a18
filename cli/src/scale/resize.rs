//! The spec a `scale` request leads to, with what the operator must know about it: re-sized by the profile
//! (`--mau`, `--concurrency`) or with replicas set directly (`api=4`). Pure: the profile and the spec in, the
//! next spec, its warnings, or a refusal out.
//!
//! What a re-size keeps as it is, because changing it is a migration and not a scale (each a warning when the
//! profile would change it): a service the operator left at 0 replicas, TiDB standalone (PD and TiKV at 0),
//! the Kafka topic settings (partitions only ever grow, and growing them breaks per-key order for keys in
//! flight), and the target. A change of Redis mode is refused outright: the data does not move between a
//! standalone server and a cluster by itself.

use crate::domain::{Concurrency, Mau, ServiceKey, ServiceKind};
use crate::sizing::{self, Profile, SizingRequest};
use crate::spec::Spec;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub mau: Option<Mau>,
    pub concurrency: Option<Concurrency>,
    /// `SERVICE=REPLICAS`, applied after a re-size.
    pub replicas: Vec<(ServiceKey, u32)>,
}

/// The next spec and what to tell the operator about it.
#[derive(Debug, Clone)]
pub struct Resized {
    pub next: Spec,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    #[error("nothing to scale: give --mau, --concurrency or SERVICE=REPLICAS (such as api=4)")]
    Empty,
    #[error("`{0}` is not SERVICE=REPLICAS (such as api=4 or gateway=3)")]
    Assignment(String),
    #[error("`{0}` is not a service; scalable services: {1}")]
    UnknownService(String, String),
    #[error(
        "{0} is a {1}: its replicas change the store's topology; re-size with --mau, or edit plan.services.{2} in \
         cometctl.yaml and deploy"
    )]
    NotStateless(ServiceKey, &'static str, &'static str),
    #[error("{0}")]
    Sizing(String),
    #[error(
        "the profile sizes Redis as a {to} at this size, and it runs {from}: that is a migration, not a scale (the \
         data does not move by itself); follow \"Redis standalone → cluster\" in docs/operations/scaling.md"
    )]
    RedisMode { from: &'static str, to: &'static str },
    #[error("the scaled spec would be invalid: {0} {1}")]
    Invalid(String, String),
}

/// Parses `SERVICE=REPLICAS`; only the services that scale out without moving data (the roles and NGINX).
pub fn assignment(text: &str) -> Result<(ServiceKey, u32), ResizeError> {
    let (name, count) = text.split_once('=').ok_or_else(|| ResizeError::Assignment(text.to_owned()))?;
    let replicas: u32 = count.trim().parse().map_err(|_| ResizeError::Assignment(text.to_owned()))?;
    Ok((scalable_service(name)?, replicas))
}

/// The service `name` (`api`, `node-exporter`) if its replicas are interchangeable and keep no data.
pub fn scalable_service(name: &str) -> Result<ServiceKey, ResizeError> {
    let name = name.trim();
    let scalable =
        || ServiceKey::ALL.iter().filter(|key| stateless(**key)).map(|key| key.key()).collect::<Vec<_>>().join(", ");
    let key = ServiceKey::ALL
        .into_iter()
        .find(|key| key.key() == name || key.dns_name() == name)
        .ok_or_else(|| ResizeError::UnknownService(name.to_owned(), scalable()))?;
    if !stateless(key) {
        let kind = match key.kind() {
            ServiceKind::Store => "store",
            ServiceKind::Job => "one-shot job",
            _ => "service that runs once per node or holds data",
        };
        return Err(ResizeError::NotStateless(key, kind, key.key()));
    }
    Ok(key)
}

/// Services whose replicas are interchangeable and keep no data.
fn stateless(key: ServiceKey) -> bool {
    matches!(key.kind(), ServiceKind::Role | ServiceKind::Edge)
}

/// The spec `request` leads to from `spec`, under `profile`.
pub fn resize(spec: &Spec, profile: &Profile, request: &Request) -> Result<Resized, ResizeError> {
    if request.mau.is_none() && request.concurrency.is_none() && request.replicas.is_empty() {
        return Err(ResizeError::Empty);
    }
    let mut next = spec.clone();
    let mut warnings = Vec::new();
    if request.mau.is_some() || request.concurrency.is_some() {
        let sizing = SizingRequest {
            mau: request.mau.unwrap_or(spec.mau),
            concurrency: request.concurrency.unwrap_or(spec.concurrency),
            target: spec.target,
            message_retention_days: spec.retention.message_days,
        };
        let plan = sizing::plan(profile, &sizing).map_err(|error| ResizeError::Sizing(error.to_string()))?;
        let (from, to) = (spec.plan.stores.redis.mode, plan.allocation.stores.redis.mode);
        if from != to {
            return Err(ResizeError::RedisMode { from: redis_mode(from), to: redis_mode(to) });
        }
        next.mau = plan.mau;
        next.concurrency = plan.concurrency;
        let mut allocation = plan.allocation.clone();
        for (key, service) in &mut allocation.services {
            if !spec.plan.deploys(*key) && service.replicas > 0 && !matches!(key, ServiceKey::Pd | ServiceKey::Tikv) {
                warnings.push(format!(
                    "{key} stays at 0 replicas as cometctl.yaml has it (the profile sizes {} at this size); turn it \
                     on with `cometctl scale {}={}`",
                    service.replicas,
                    key.key(),
                    service.replicas
                ));
                service.replicas = 0;
            }
        }
        if spec.plan.standalone_tidb() && !allocation.standalone_tidb() {
            warnings.push(format!(
                "TiDB stays standalone (PD and TiKV at 0): the profile sizes {} PD and {} TiKV at this size, and moving \
                 the data onto TiKV is a migration: back up, deploy the new topology, restore (docs/operations/scaling.md)",
                allocation.replicas(ServiceKey::Pd),
                allocation.replicas(ServiceKey::Tikv)
            ));
            for key in [ServiceKey::Pd, ServiceKey::Tikv] {
                if let (Some(kept), Some(now)) = (spec.plan.services.get(&key), allocation.services.get_mut(&key)) {
                    *now = *kept;
                }
            }
            keep_replicas(&mut allocation, spec, ServiceKey::Tidb);
        }
        let (kept, sized) = (&spec.plan.stores.kafka, &allocation.stores.kafka);
        let brokers = (spec.plan.replicas(ServiceKey::Kafka), allocation.replicas(ServiceKey::Kafka));
        if kept != sized || brokers.0 != brokers.1 {
            warnings.push(format!(
                "Kafka keeps {} brokers and its topics {} partitions, replication factor {} (the profile sizes {}, {} \
                 and {}): partitions only ever grow and growing them breaks per-key order for keys in flight, and new \
                 brokers take no partitions until they are reassigned; scale does neither (docs/operations/scaling.md)",
                brokers.0,
                kept.partitions,
                kept.replication_factor,
                brokers.1,
                sized.partitions,
                sized.replication_factor
            ));
        }
        allocation.stores.kafka = kept.clone();
        keep_replicas(&mut allocation, spec, ServiceKey::Kafka);
        let (kept, sized) = (&spec.plan.stores.redis, &allocation.stores.redis);
        if kept != sized {
            warnings.push(format!(
                "the Redis cluster keeps {} shards with {} replicas each (the profile sizes {} and {}): resharding moves \
                 slots between nodes and is not a scale (docs/operations/scaling.md)",
                kept.shards, kept.replicas_per_shard, sized.shards, sized.replicas_per_shard
            ));
            allocation.stores.redis = kept.clone();
            keep_replicas(&mut allocation, spec, ServiceKey::Redis);
        }
        if allocation.replicas(ServiceKey::Pd) != spec.plan.replicas(ServiceKey::Pd) && !spec.plan.standalone_tidb() {
            warnings.push(format!(
                "PD keeps {} members (the profile sizes {}): PD membership changes one member at a time by hand \
                 (docs/operations/scaling.md); TiKV stores are added, and PD moves regions onto them by itself",
                spec.plan.replicas(ServiceKey::Pd),
                allocation.replicas(ServiceKey::Pd)
            ));
            keep_replicas(&mut allocation, spec, ServiceKey::Pd);
        }
        // The replica set name is an identity of the data, never re-sized.
        allocation.stores.mongodb = spec.plan.stores.mongodb.clone();
        next.plan = allocation;
        if plan.recommended_target != spec.target {
            warnings.push(format!(
                "at {} MAU the profile recommends {} rather than {}; scale keeps the target (a move between targets \
                 is a new deployment and a restore)",
                plan.mau,
                plan.recommended_target.as_str(),
                spec.target.as_str()
            ));
        }
        warnings.extend(plan.warnings.iter().cloned());
    }
    for (key, replicas) in &request.replicas {
        if let Some(service) = next.plan.services.get_mut(key) {
            service.replicas = *replicas;
        }
    }
    if let Some((path, problem)) = next.problems().into_iter().next() {
        return Err(ResizeError::Invalid(path, problem));
    }
    Ok(Resized { next, warnings })
}

/// `key` keeps the replicas `spec` gives it.
fn keep_replicas(allocation: &mut sizing::Allocation, spec: &Spec, key: ServiceKey) {
    if let Some(service) = allocation.services.get_mut(&key) {
        service.replicas = spec.plan.replicas(key);
    }
}

fn redis_mode(mode: sizing::RedisMode) -> &'static str {
    match mode {
        sizing::RedisMode::Standalone => "standalone server",
        sizing::RedisMode::Cluster => "cluster",
    }
}
