//! Every check `doctor` runs, in the order it shows them: a stable id, its area and its title. Ids are an
//! interface (`--only`, `--skip`, the JSON, scripts and runbooks name them); docs/operations/doctor.md lists
//! each with what it looks at and its threshold. A test keeps the two lists equal.

use serde::Serialize;

/// Where a check looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Host,
    Swarm,
    Deployment,
    Stores,
    Edge,
    Security,
    Observability,
    Backups,
}

impl Area {
    pub const ALL: [Area; 8] = [
        Area::Host,
        Area::Swarm,
        Area::Deployment,
        Area::Stores,
        Area::Edge,
        Area::Security,
        Area::Observability,
        Area::Backups,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Host => "host",
            Area::Swarm => "swarm",
            Area::Deployment => "deployment",
            Area::Stores => "stores",
            Area::Edge => "edge",
            Area::Security => "security",
            Area::Observability => "observability",
            Area::Backups => "backups",
        }
    }
}

/// One check of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: &'static str,
    pub area: Area,
    pub title: &'static str,
    /// Part of `deploy`'s preflight: a fail refuses the deploy before its first change, a warn is printed.
    pub preflight: bool,
}

const fn entry(id: &'static str, area: Area, title: &'static str) -> Entry {
    Entry { id, area, title, preflight: false }
}

const fn preflight(id: &'static str, area: Area, title: &'static str) -> Entry {
    Entry { id, area, title, preflight: true }
}

use Area::{Backups, Deployment, Edge, Host, Observability, Security, Stores, Swarm};

/// The catalogue, in display order.
pub const CATALOG: &[Entry] = &[
    entry("host.os", Host, "Operating system and kernel"),
    preflight("host.docker", Host, "Docker Engine and API version"),
    preflight("host.cpus", Host, "CPUs against the plan's limits and reservations"),
    preflight("host.memory", Host, "Memory against the plan's limits and reservations"),
    preflight("host.disk", Host, "Free disk where Docker keeps its data"),
    preflight("host.nofile", Host, "Open files the Docker daemon allows"),
    entry("host.somaxconn", Host, "net.core.somaxconn"),
    entry("host.netdev_max_backlog", Host, "net.core.netdev_max_backlog"),
    entry("host.overcommit", Host, "vm.overcommit_memory (Redis)"),
    entry("host.thp", Host, "Transparent huge pages (Redis, TiKV)"),
    entry("host.swap", Host, "Swap (TiKV)"),
    entry("host.time_sync", Host, "Time synchronisation (PD's timestamp oracle)"),
    preflight("host.ports", Host, "Published ports free"),
    entry("host.fsync", Host, "fsync latency of the data disk"),
    entry("host.ssd", Host, "TiKV's disk is an SSD"),
    entry("swarm.state", Swarm, "Swarm active with a leader"),
    entry("swarm.nodes", Swarm, "Every node Ready and active"),
    entry("swarm.managers", Swarm, "Odd manager count, managers free of app tasks"),
    entry("deployment.running", Deployment, "Every service runs as many containers or tasks as desired"),
    entry("deployment.healthy", Deployment, "Every container with a health check is healthy"),
    entry("deployment.restarts", Deployment, "Restarts of long-running containers"),
    entry("deployment.oom", Deployment, "Containers killed for memory in the last hour"),
    entry("deployment.images", Deployment, "Running images match the spec"),
    entry("deployment.drift", Deployment, "What runs equals the spec (`cometctl diff`)"),
    entry("tidb.reachable", Stores, "TiDB answers, and its version"),
    entry("tidb.tikv", Stores, "TiKV stores Up and regions healthy (PD)"),
    entry("kafka.reachable", Stores, "Kafka brokers answer"),
    entry("kafka.topics", Stores, "Topics with the spec's partitions, RF and min.insync.replicas"),
    entry("kafka.under_replicated", Stores, "Under-replicated and offline partitions"),
    entry("kafka.consumer_lag", Stores, "Consumer lag per group"),
    entry("redis.ping", Stores, "Redis answers"),
    entry("redis.maxmemory", Stores, "Redis maxmemory set"),
    entry("redis.policy", Stores, "Redis maxmemory-policy"),
    entry("redis.memory", Stores, "Redis used memory against maxmemory"),
    entry("redis.persistence", Stores, "Redis persistence configured"),
    entry("redis.cluster", Stores, "Redis cluster state (cluster mode)"),
    entry("mongodb.replica_set", Stores, "MongoDB answers and its replica-set members are healthy"),
    entry("comet.ready", Stores, "comet-server roles answer /ready"),
    entry("comet.relay_lease", Stores, "The relay lease is held by exactly one replica"),
    entry("comet.outbox_backlog", Stores, "Outbox events waiting to be published"),
    entry("comet.gateway_connections", Stores, "Gateway connections against the plan's capacity"),
    entry("edge.https", Edge, "NGINX answers on HTTPS with the deployment's certificate"),
    entry("edge.redirect", Edge, "HTTP only redirects to HTTPS"),
    entry("edge.certificate_expiry", Edge, "Certificate expiry"),
    entry("edge.tls_versions", Edge, "TLS 1.2 and 1.3 only"),
    entry("edge.hsts", Edge, "HSTS header"),
    entry("edge.websocket", Edge, "A WebSocket upgrade through NGINX reaches the gateway"),
    entry("security.published_ports", Security, "Only NGINX publishes ports"),
    entry("security.encrypted_networks", Security, "Backend networks encrypted (Swarm)"),
    entry("security.env_secrets", Security, "No secret value in any container's environment"),
    entry("security.hardening", Security, "Containers non-root, read-only and without capabilities as rendered"),
    entry("security.secret_age", Security, "Secret age against the rotation policy"),
    entry("observability.targets", Observability, "Prometheus targets up"),
    entry("backups.age", Backups, "Last good backup per store"),
];

/// The entry of `id`.
pub fn entry_of(id: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|entry| entry.id == id)
}

/// The ids of one area, in display order.
pub fn ids_in(area: Area) -> Vec<&'static str> {
    CATALOG.iter().filter(|entry| entry.area == area).map(|entry| entry.id).collect()
}

/// Which checks run: `--only` and `--skip`, each a list of ids or area names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    chosen: Vec<&'static str>,
}

/// A name given to `--only` or `--skip` that is neither an id nor an area.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check `{name}` in --{flag}; the areas are {areas}, the ids are: {ids}")]
pub struct UnknownCheck {
    pub name: String,
    pub flag: &'static str,
    pub areas: String,
    pub ids: String,
}

impl Selection {
    /// Every check of the catalogue.
    pub fn all() -> Selection {
        Selection { chosen: CATALOG.iter().map(|entry| entry.id).collect() }
    }

    /// `--only` (empty: every check) less `--skip`.
    pub fn new(only: &[String], skip: &[String]) -> Result<Selection, UnknownCheck> {
        let only = resolve(only, "only")?;
        let skip = resolve(skip, "skip")?;
        let chosen = CATALOG
            .iter()
            .map(|entry| entry.id)
            .filter(|id| only.is_empty() || only.contains(id))
            .filter(|id| !skip.contains(id))
            .collect();
        Ok(Selection { chosen })
    }

    /// Only the host checks (`--host-only`), within this selection.
    pub fn host_only(self) -> Selection {
        let chosen =
            self.chosen.into_iter().filter(|id| entry_of(id).is_some_and(|entry| entry.area == Area::Host)).collect();
        Selection { chosen }
    }

    /// `deploy`'s preflight: the host checks marked so.
    pub fn preflight() -> Selection {
        Selection { chosen: CATALOG.iter().filter(|entry| entry.preflight).map(|entry| entry.id).collect() }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.chosen.contains(&id)
    }

    /// Whether any check of `ids` is chosen (a group whose facts must be gathered).
    pub fn any(&self, ids: &[&str]) -> bool {
        ids.iter().any(|id| self.contains(id))
    }

    pub fn ids(&self) -> &[&'static str] {
        &self.chosen
    }
}

fn resolve(names: &[String], flag: &'static str) -> Result<Vec<&'static str>, UnknownCheck> {
    let mut ids = Vec::new();
    for name in names.iter().map(|name| name.trim()).filter(|name| !name.is_empty()) {
        if let Some(area) = Area::ALL.iter().find(|area| area.as_str() == name) {
            ids.extend(ids_in(*area));
        } else if let Some(entry) = entry_of(name) {
            ids.push(entry.id);
        } else {
            return Err(UnknownCheck {
                name: name.to_owned(),
                flag,
                areas: Area::ALL.iter().map(|area| area.as_str()).collect::<Vec<_>>().join(", "),
                ids: CATALOG.iter().map(|entry| entry.id).collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_grouped_by_area() {
        let mut ids: Vec<&str> = CATALOG.iter().map(|entry| entry.id).collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate ids");
        let areas: Vec<Area> = CATALOG.iter().map(|entry| entry.area).collect();
        let mut sorted = areas.clone();
        sorted.sort();
        assert_eq!(areas, sorted, "the catalogue is in area order");
    }

    #[test]
    fn only_and_skip_take_ids_and_areas() {
        let selection = Selection::new(&["redis".into()], &[]);
        assert!(selection.is_err(), "`redis` is neither an id nor an area");
        let selection = Selection::new(&["host".into(), "redis.ping".into()], &["host.fsync".into()]).expect("valid");
        assert!(selection.contains("host.nofile"));
        assert!(selection.contains("redis.ping"));
        assert!(!selection.contains("host.fsync"));
        assert!(!selection.contains("redis.policy"));
        let error = Selection::new(&[], &["host.nofle".into()]).expect_err("a typo");
        assert!(error.to_string().contains("unknown check `host.nofle` in --skip"), "{error}");
        assert!(error.to_string().contains("host.nofile"), "{error}");
    }
}
