use std::fmt;

use serde::{Deserialize, Serialize};

/// Every service a deployment runs. The order of the variants is the order of tables and manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKey {
    Nginx,
    Api,
    Gateway,
    Moderation,
    Notifications,
    Webhooks,
    Relay,
    Migrate,
    Pd,
    Tikv,
    Tidb,
    Kafka,
    Redis,
    Mongodb,
    Prometheus,
    Grafana,
    Loki,
    Promtail,
    NodeExporter,
    Cadvisor,
}

/// What part of the stack a service belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// The public entry point (NGINX).
    Edge,
    /// A long-running comet-server role; stateless and horizontally scaled.
    Role,
    /// A one-shot comet-server job (schema migration).
    Job,
    /// A stateful store.
    Store,
    /// Metrics, dashboards and logs.
    Observability,
}

impl ServiceKey {
    pub const ALL: [ServiceKey; 20] = [
        ServiceKey::Nginx,
        ServiceKey::Api,
        ServiceKey::Gateway,
        ServiceKey::Moderation,
        ServiceKey::Notifications,
        ServiceKey::Webhooks,
        ServiceKey::Relay,
        ServiceKey::Migrate,
        ServiceKey::Pd,
        ServiceKey::Tikv,
        ServiceKey::Tidb,
        ServiceKey::Kafka,
        ServiceKey::Redis,
        ServiceKey::Mongodb,
        ServiceKey::Prometheus,
        ServiceKey::Grafana,
        ServiceKey::Loki,
        ServiceKey::Promtail,
        ServiceKey::NodeExporter,
        ServiceKey::Cadvisor,
    ];

    /// Roles the plan sizes and the templates can run, but which `comet-server` of this release does not
    /// implement yet (services/server/src/roles/ refuses them). The default plan gives them 0 replicas.
    pub const NOT_YET_IMPLEMENTED: [ServiceKey; 0] = [];

    /// The long-running comet-server roles, in manifest order.
    pub fn roles() -> impl Iterator<Item = ServiceKey> {
        ServiceKey::ALL.into_iter().filter(|key| key.kind() == ServiceKind::Role)
    }

    /// The key as written in cometctl.yaml and the render context (`node_exporter`).
    pub fn key(self) -> &'static str {
        match self {
            ServiceKey::Nginx => "nginx",
            ServiceKey::Api => "api",
            ServiceKey::Gateway => "gateway",
            ServiceKey::Moderation => "moderation",
            ServiceKey::Notifications => "notifications",
            ServiceKey::Webhooks => "webhooks",
            ServiceKey::Relay => "relay",
            ServiceKey::Migrate => "migrate",
            ServiceKey::Pd => "pd",
            ServiceKey::Tikv => "tikv",
            ServiceKey::Tidb => "tidb",
            ServiceKey::Kafka => "kafka",
            ServiceKey::Redis => "redis",
            ServiceKey::Mongodb => "mongodb",
            ServiceKey::Prometheus => "prometheus",
            ServiceKey::Grafana => "grafana",
            ServiceKey::Loki => "loki",
            ServiceKey::Promtail => "promtail",
            ServiceKey::NodeExporter => "node_exporter",
            ServiceKey::Cadvisor => "cadvisor",
        }
    }

    /// The DNS name of the service (`node-exporter`).
    pub fn dns_name(self) -> &'static str {
        match self {
            ServiceKey::NodeExporter => "node-exporter",
            other => other.key(),
        }
    }

    pub fn kind(self) -> ServiceKind {
        match self {
            ServiceKey::Nginx => ServiceKind::Edge,
            ServiceKey::Api
            | ServiceKey::Gateway
            | ServiceKey::Moderation
            | ServiceKey::Notifications
            | ServiceKey::Webhooks
            | ServiceKey::Relay => ServiceKind::Role,
            ServiceKey::Migrate => ServiceKind::Job,
            ServiceKey::Pd
            | ServiceKey::Tikv
            | ServiceKey::Tidb
            | ServiceKey::Kafka
            | ServiceKey::Redis
            | ServiceKey::Mongodb => ServiceKind::Store,
            ServiceKey::Prometheus
            | ServiceKey::Grafana
            | ServiceKey::Loki
            | ServiceKey::Promtail
            | ServiceKey::NodeExporter
            | ServiceKey::Cadvisor => ServiceKind::Observability,
        }
    }

    /// Whether `service` (a Compose service or stack service name) is a node of this one: `redis-1` of redis,
    /// `tidb` of tidb.
    pub fn has_node(self, service: &str) -> bool {
        let key = self.key();
        service == key
            || service
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| n.parse::<u32>().is_ok())
    }

    /// One instance per node (Swarm `mode: global`, Kubernetes DaemonSet).
    pub fn is_global(self) -> bool {
        matches!(self, ServiceKey::Promtail | ServiceKey::NodeExporter | ServiceKey::Cadvisor)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dns_name())
    }
}
