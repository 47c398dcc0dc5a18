//! Wiring: a role is a set of parts, and a process starts the parts of its role. `all` is every part in one
//! process, where the in-process bus joins the relay to the gateway and the workers when no Kafka is configured. SIGTERM or
//! Ctrl-C stops accepting, lets in-flight requests finish, stops the relay after its current batch, then exits 0.

mod api;
mod gateway;
mod migrate;
mod moderation;
mod notifications;
mod relay;
mod shutdown;
mod webhooks;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use comet_bus::{InProcessBus, KafkaPublisher};
use comet_store::Store;

use self::shutdown::{Shutdown, Tasks};
use crate::Role;
use crate::admin::{self, AdminState, DEFAULT_ADMIN_LISTEN};
use crate::config::{self, Settings};
use crate::http;
use crate::telemetry::{self, Metrics};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What a process can run. Each role but `all` is one part; `all` is the union of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// The one-shot schema job: it runs first and serves nothing.
    Migrate,
    Relay,
    Gateway,
    Api,
    Webhooks,
    Moderation,
    Notifications,
}

impl Role {
    /// The name the admin port and error messages use.
    fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Relay => "relay",
            Role::Gateway => "gateway",
            Role::Webhooks => "webhooks",
            Role::Moderation => "moderation",
            Role::Notifications => "notifications",
            Role::Migrate => "migrate",
            Role::Health => "health",
            Role::Outbox => "outbox",
            Role::Dump => "dump",
            Role::Load => "load",
        }
    }

    fn parts(self) -> &'static [Part] {
        match self {
            Role::All => &[
                Part::Migrate,
                Part::Relay,
                Part::Gateway,
                Part::Api,
                Part::Webhooks,
                Part::Moderation,
                Part::Notifications,
            ],
            Role::Api => &[Part::Api],
            Role::Relay => &[Part::Relay],
            Role::Gateway => &[Part::Gateway],
            Role::Webhooks => &[Part::Webhooks],
            Role::Moderation => &[Part::Moderation],
            Role::Notifications => &[Part::Notifications],
            Role::Migrate => &[Part::Migrate],
            // The container health check is a client (`probe`), not a part of the service; nor is the operator's
            // `outbox` command.
            Role::Health | Role::Outbox | Role::Dump | Role::Load => &[],
        }
    }

    fn runs(self, part: Part) -> bool {
        self.parts().contains(&part)
    }

    /// The relay and the consumers of events (the gateway, the workers) talk through Kafka unless they all
    /// run in this process, where the in-process bus joins them.
    fn needs_kafka(self) -> bool {
        let relay = self.runs(Part::Relay);
        let consumes = self.runs(Part::Gateway)
            || self.runs(Part::Webhooks)
            || self.runs(Part::Moderation)
            || self.runs(Part::Notifications);
        (relay || consumes) && !(relay && consumes)
    }

    /// Whether this process reads or writes the event bus at all.
    fn uses_bus(self) -> bool {
        self.runs(Part::Relay)
            || self.runs(Part::Gateway)
            || self.runs(Part::Webhooks)
            || self.runs(Part::Moderation)
            || self.runs(Part::Notifications)
    }
}

pub async fn run(role: Role, settings: Settings) -> Result<()> {
    let shutdown = Shutdown::install();
    let metrics = Arc::new(Metrics::default());
    if role.runs(Part::Migrate) {
        migrate::bootstrap(&settings).await?;
    }
    let database_url = settings.database_url()?;
    let store = Store::connect(&database_url).await.context("connecting to the database")?;
    if role.runs(Part::Migrate) {
        migrate::migrate(&store).await?;
        if role.parts().iter().all(|part| *part == Part::Migrate) {
            return Ok(());
        }
    }

    let brokers = settings.get(config::KAFKA_BROKERS)?;
    if role.needs_kafka() && brokers.is_none() {
        anyhow::bail!(
            "the {} role needs {}: the Kafka bootstrap servers (only `all` runs without Kafka)",
            role.name(),
            config::KAFKA_BROKERS
        );
    }
    let kafka_config = match brokers {
        Some(brokers) if role.uses_bus() => Some(settings.kafka(brokers)?),
        _ => None,
    };
    let kafka = match &kafka_config {
        Some(kafka_config) if role.runs(Part::Relay) => {
            Some(Arc::new(KafkaPublisher::connect(kafka_config).await.context("connecting to Kafka")?))
        }
        _ => None,
    };
    // The embedded mode's bus: the relay publishes to it and the gateway reads it, in this one process.
    let in_process = InProcessBus::new(4096);

    let mut tasks = Tasks::new();
    // The workers join their consumer group before the relay publishes its first batch, so in the embedded
    // mode (where a group starts at the bus's present end) they see every event.
    let webhook_configs = if role.runs(Part::Webhooks) || role.runs(Part::Api) {
        Some(webhooks::configs(&settings, &store).await?)
    } else {
        None
    };
    let workers = WorkerContext {
        settings: &settings,
        store: &store,
        kafka: kafka_config.as_ref(),
        in_process: &in_process,
        shutdown: &shutdown,
    };
    let webhooks = match &webhook_configs {
        Some(configs) if role.runs(Part::Webhooks) => {
            Some(webhooks::start(&workers, configs.clone(), &mut tasks).await?)
        }
        _ => None,
    };
    let moderation_home = if role.runs(Part::Api) || role.runs(Part::Moderation) {
        Some(moderation::home(&settings, &store).await?)
    } else {
        None
    };
    let decisions = match &moderation_home {
        Some(home) if role.runs(Part::Moderation) => {
            Some(moderation::decide(&workers, home.clone(), &mut tasks).await?)
        }
        _ => None,
    };
    let gateway = if role.runs(Part::Gateway) {
        Some(gateway::start(&settings, &store, kafka_config.clone(), &in_process, &shutdown, &mut tasks).await?)
    } else {
        None
    };
    let notifications = if role.runs(Part::Notifications) {
        let start = notifications::Start {
            settings: &settings,
            store: &store,
            kafka: kafka_config.as_ref(),
            in_process: &in_process,
            gateway: gateway.clone(),
        };
        Some(notifications::start(start, &shutdown, &mut tasks).await?)
    } else {
        None
    };
    let relay_stats = role
        .runs(Part::Relay)
        .then(|| relay::start(&settings, &store, kafka.as_ref(), &in_process, &shutdown, &mut tasks))
        .transpose()?;
    let admission_limits = settings.admission()?;
    let admission = role.runs(Part::Api).then(|| Arc::new(comet_api::Admission::new(admission_limits)));
    let moderation = match &moderation_home {
        Some(home) if role.runs(Part::Api) => Some(moderation::start(home.clone(), &shutdown, &mut tasks).await?),
        _ => None,
    };
    let api = match (&admission, &webhook_configs, &moderation) {
        (Some(admission), Some(configs), Some(moderation)) => {
            let preferences = notifications::preferences(&settings, &store).await?;
            Some(api::router(&settings, &store, configs.clone(), admission.clone(), moderation.clone(), preferences)?)
        }
        _ => None,
    };
    let limits = settings.http_limits()?;
    let shutdown_timeout = settings.shutdown_timeout()?;
    let app = [api, gateway.as_ref().map(|gateway| gateway.router())].into_iter().flatten().reduce(Router::merge);
    if let Some(app) = app {
        let app = telemetry::count_requests(app, metrics.clone());
        let address = settings.socket(config::LISTEN, DEFAULT_LISTEN)?;
        let stop = shutdown.clone();
        let connections = metrics.app_connections.clone();
        tasks.spawn(async move { http::serve("app", address, app, limits, connections, stop.wait()).await });
    }

    let admin_state = AdminState {
        role: role.name(),
        store: Some(store),
        kafka,
        metrics,
        relay: relay_stats,
        gateway,
        admission,
        webhooks,
        notifications,
        moderation,
        decisions,
    };
    let admin_address = settings.socket(config::ADMIN_LISTEN, DEFAULT_ADMIN_LISTEN)?;
    let stop = shutdown.clone();
    let admin_router = admin::router(admin_state);
    let admin_connections = Arc::new(http::Connections::default());
    tasks.spawn(async move {
        http::serve("admin", admin_address, admin_router, limits, admin_connections, stop.wait()).await
    });

    // The first task to end (an error, or every task after shutdown) decides the outcome; once the shutdown
    // deadline has passed after the signal, whatever still runs is cut and the stop counts as clean.
    let deadline = async {
        shutdown.clone().wait().await;
        tokio::time::sleep(shutdown_timeout).await;
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => return Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => return Err(error),
                Some(Err(error)) => return Err(anyhow::anyhow!("a task panicked: {error}")),
            },
            () = &mut deadline => {
                tracing::warn!(
                    deadline_ms = shutdown_timeout.as_millis() as u64,
                    "shutdown deadline passed: cutting the work still in flight ({})",
                    config::SHUTDOWN_TIMEOUT_MS
                );
                tasks.abort_all();
                return Ok(());
            }
        }
    }
}

/// What a worker part (webhooks, moderation) needs from its process to start.
struct WorkerContext<'a> {
    settings: &'a Settings,
    store: &'a Store,
    /// Kafka when the process has it; otherwise the in-process bus (`all` without Kafka).
    kafka: Option<&'a comet_bus::KafkaConfig>,
    in_process: &'a InProcessBus,
    shutdown: &'a Shutdown,
}

impl WorkerContext<'_> {
    /// A member of the consumer group `group`.
    async fn join(&self, group: &str) -> Result<comet_bus::GroupSubscription> {
        match self.kafka {
            Some(kafka) => comet_bus::GroupSubscription::kafka(kafka, group)
                .await
                .with_context(|| format!("joining the consumer group {group}")),
            None => Ok(comet_bus::GroupSubscription::in_process(self.in_process, group)),
        }
    }
}

/// Checks the settings a role reads before anything connects, so a bad value exits 2 (invalid configuration)
/// and names the variable, instead of failing later with exit 1.
pub fn check(role: Role, settings: &Settings) -> Result<()> {
    settings.socket(config::LISTEN, DEFAULT_LISTEN)?;
    settings.socket(config::ADMIN_LISTEN, DEFAULT_ADMIN_LISTEN)?;
    settings.http_limits()?;
    settings.shutdown_timeout()?;
    settings.admission()?;
    if role.runs(Part::Migrate) {
        migrate::check(settings)?;
    }
    if role.runs(Part::Relay) {
        settings.relay()?;
    }
    if role.runs(Part::Gateway) {
        gateway::check(settings)?;
    }
    if role.runs(Part::Webhooks) {
        settings.webhooks()?;
    }
    if role.runs(Part::Notifications) {
        settings.notifications()?;
    }
    if role.runs(Part::Api) {
        settings.webhook_guard()?;
    }
    if role.runs(Part::Moderation) {
        settings.custom_api()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_the_union_of_the_other_roles() {
        let roles = [
            Role::Migrate,
            Role::Relay,
            Role::Gateway,
            Role::Api,
            Role::Webhooks,
            Role::Moderation,
            Role::Notifications,
        ];
        let mut union: Vec<Part> = roles.iter().flat_map(|role| role.parts()).copied().collect();
        union.sort();
        let mut all = Role::All.parts().to_vec();
        all.sort();
        assert_eq!(all, union);
    }

    #[test]
    fn only_a_process_running_both_ends_of_the_bus_goes_without_kafka() {
        let roles = [
            Role::All,
            Role::Api,
            Role::Relay,
            Role::Gateway,
            Role::Webhooks,
            Role::Moderation,
            Role::Notifications,
            Role::Migrate,
        ];
        let needing: Vec<&str> = roles.into_iter().filter(|role| role.needs_kafka()).map(Role::name).collect();
        assert_eq!(needing, ["relay", "gateway", "webhooks", "moderation", "notifications"]);
    }
}
