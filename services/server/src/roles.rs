//! Wiring: which parts each role starts, and the shutdown that stops them. SIGTERM or Ctrl-C stops
//! accepting, lets in-flight requests finish, stops the relay after its current batch, then exits 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use comet_api::{ApiConfig, AppState};
use comet_bus::relay::Relay;
use comet_bus::{InProcessBus, KafkaConfig, KafkaPublisher, Publisher};
use comet_gateway::{EventSource, Gateway, GatewayConfig};
use comet_store::{BootstrapError, Store};
use tokio::sync::watch;

use crate::Role;
use crate::admin::{self, AdminState, DEFAULT_ADMIN_LISTEN};
use crate::config::{self, Settings};
use crate::keys;
use crate::telemetry::Metrics;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A shutdown signal every task can wait on.
#[derive(Clone)]
struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    fn install() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: draining in-flight work");
            let _ = sender.send(true);
        });
        Shutdown(receiver)
    }

    async fn wait(mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn kafka_config(settings: &Settings, brokers: String) -> Result<KafkaConfig> {
    Ok(KafkaConfig {
        brokers,
        partitions: settings.number(config::KAFKA_PARTITIONS, 12)?,
        replication_factor: settings.number(config::KAFKA_REPLICATION_FACTOR, 1)?,
        client_id: format!("comet-server-{}", std::process::id()),
    })
}

async fn serve(name: &str, address: SocketAddr, router: Router, shutdown: Shutdown) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("binding the {name} port {address}"))?;
    tracing::info!(%address, "{name} listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.wait())
        .await
        .with_context(|| format!("serving {name}"))
}

fn count_responses(router: Router, metrics: Arc<Metrics>) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let metrics = metrics.clone();
        async move {
            let response = next.run(request).await;
            metrics.count_status(response.status().as_u16());
            response
        }
    }))
}

pub async fn run(role: Role, settings: Settings) -> Result<()> {
    let shutdown = Shutdown::install();
    let metrics = Arc::new(Metrics::default());
    let role_name = match role {
        Role::All => "all",
        Role::Api => "api",
        Role::Relay => "relay",
        Role::Gateway => "gateway",
        Role::Migrate => "migrate",
        Role::Health => "health",
        Role::Outbox => "outbox",
    };
    if matches!(role, Role::Migrate | Role::All)
        && let Some(bootstrap) = settings.database_bootstrap()?
    {
        bootstrap.run().await.map_err(|error| match error {
            BootstrapError::RootRefused { user, source } => anyhow::anyhow!(
                "the database refused {user} with the configured {} (and an empty one): {source}",
                config::DATABASE_ROOT_PASSWORD
            ),
            other => anyhow::Error::from(other).context("making the database and its account"),
        })?;
    }
    let database_url = settings.database_url()?;
    let store = Store::connect(&database_url).await.context("connecting to the database")?;
    if matches!(role, Role::Migrate | Role::All) {
        store.migrate().await.context("applying the schema")?;
        tracing::info!("schema is up to date");
        if role == Role::Migrate {
            return Ok(());
        }
    }

    let brokers = settings.get(config::KAFKA_BROKERS)?;
    if matches!(role, Role::Relay | Role::Gateway) && brokers.is_none() {
        anyhow::bail!(
            "the {role_name} role needs {}: the Kafka bootstrap servers (only `all` runs without Kafka)",
            config::KAFKA_BROKERS
        );
    }
    let kafka = match &brokers {
        Some(brokers) if matches!(role, Role::Relay | Role::All) => Some(Arc::new(
            KafkaPublisher::connect(&kafka_config(&settings, brokers.clone())?).await.context("connecting to Kafka")?,
        )),
        _ => None,
    };
    // The embedded mode's bus: the relay publishes to it and the gateway reads it, in this one process.
    let in_process = InProcessBus::new(4096);

    let mut tasks = tokio::task::JoinSet::new();
    let mut relay_stats = None;
    if matches!(role, Role::Relay | Role::All) {
        let publisher: Arc<dyn Publisher> = match &kafka {
            Some(kafka) => kafka.clone(),
            None => {
                tracing::info!("no {} set: events go to the in-process bus", config::KAFKA_BROKERS);
                Arc::new(in_process.clone())
            }
        };
        let owner = format!("{}-{}", hostname(), std::process::id());
        let relay = Relay::new(store.clone(), publisher, owner, settings.relay()?);
        relay_stats = Some(relay.stats());
        let stop = shutdown.clone();
        tasks.spawn(async move { relay.run(stop.wait()).await.context("relay") });
    }

    let gateway = if matches!(role, Role::Gateway | Role::All) {
        let events = match &brokers {
            Some(brokers) => EventSource::Kafka(kafka_config(&settings, brokers.clone())?),
            None => EventSource::InProcess(in_process.clone()),
        };
        let redis = settings.redis()?;
        if redis.is_none() {
            tracing::info!("no {} set: presence and typing stay in this process (one gateway node)", config::REDIS_URL);
        }
        let gateway = Gateway::start(gateway_config(&settings)?, store.clone(), events, redis.as_ref())
            .await
            .context("starting the gateway")?;
        let gateway = Arc::new(gateway);
        let stopping = gateway.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            stop.wait().await;
            stopping.shutdown().await;
            Ok(())
        });
        Some(gateway)
    } else {
        None
    };

    let mut app: Option<Router> = None;
    if matches!(role, Role::Api | Role::All) {
        let data_dir = settings.data_dir()?;
        let (keys, generated) = keys::load_or_create(&settings, &data_dir)?;
        if generated {
            announce_keys(&keys, &data_dir);
        }
        let state = AppState {
            store: store.clone(),
            config: Arc::new(ApiConfig { full_keys: vec![keys.full], auth_keys: vec![keys.auth_only] }),
        };
        app = Some(comet_api::router(state));
    }
    if let Some(gateway) = &gateway {
        app = Some(match app {
            Some(api) => api.merge(gateway.router()),
            None => gateway.router(),
        });
    }
    if let Some(app) = app {
        let app = count_responses(app, metrics.clone());
        let address = settings.socket(config::LISTEN, DEFAULT_LISTEN)?;
        let stop = shutdown.clone();
        tasks.spawn(async move { serve("app", address, app, stop).await });
    }

    let admin_state = AdminState { role: role_name, store: Some(store), kafka, metrics, relay: relay_stats, gateway };
    let admin_address = settings.socket(config::ADMIN_LISTEN, DEFAULT_ADMIN_LISTEN)?;
    let stop = shutdown.clone();
    tasks.spawn(async move { serve("admin", admin_address, admin::router(admin_state), stop).await });

    // The first task to end (an error, or every task after shutdown) decides the outcome.
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(anyhow::anyhow!("a task panicked: {error}")),
        }
    }
    Ok(())
}

/// Checks the settings a role reads before anything connects, so a bad value exits 2 (invalid configuration)
/// and names the variable, instead of failing later with exit 1.
pub fn check(role: Role, settings: &Settings) -> Result<()> {
    settings.socket(config::LISTEN, DEFAULT_LISTEN)?;
    settings.socket(config::ADMIN_LISTEN, DEFAULT_ADMIN_LISTEN)?;
    if matches!(role, Role::Migrate | Role::All) {
        settings.database_bootstrap()?;
    }
    if matches!(role, Role::Relay | Role::All) {
        settings.relay()?;
    }
    if matches!(role, Role::Gateway | Role::All) {
        gateway_config(settings)?;
        settings.redis()?;
    }
    Ok(())
}

/// The gateway's limits and timings from `COMET_GATEWAY_*` (docs/configuration.md), defaults otherwise.
fn gateway_config(settings: &Settings) -> Result<GatewayConfig> {
    let defaults = GatewayConfig::default();
    let origins = settings.get(config::GATEWAY_ALLOWED_ORIGINS)?.unwrap_or_default();
    let count = |name, default: usize| -> Result<usize> { Ok(settings.positive(name, default as u64)? as usize) };
    Ok(GatewayConfig {
        node_id: settings
            .get(config::GATEWAY_NODE_ID)?
            .unwrap_or_else(|| format!("{}-{}-{}", hostname(), std::process::id(), uuid::Uuid::new_v4().simple())),
        namespace: settings.get(config::GATEWAY_NAMESPACE)?.unwrap_or(defaults.namespace.clone()),
        allowed_origins: origins
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(str::to_owned)
            .collect(),
        max_sockets_per_user: count(config::GATEWAY_MAX_SOCKETS_PER_USER, defaults.max_sockets_per_user)?,
        queue_capacity: count(config::GATEWAY_QUEUE_FRAMES, defaults.queue_capacity)?,
        max_frame_bytes: count(config::GATEWAY_MAX_FRAME_BYTES, defaults.max_frame_bytes)?,
        read_buffer_bytes: count(config::GATEWAY_READ_BUFFER_BYTES, defaults.read_buffer_bytes)?,
        ping_interval: settings.millis(config::GATEWAY_PING_INTERVAL_MS, defaults.ping_interval)?,
        idle_timeout: settings.millis(config::GATEWAY_IDLE_TIMEOUT_MS, defaults.idle_timeout)?,
        presence_grace: settings.millis(config::GATEWAY_PRESENCE_GRACE_MS, defaults.presence_grace)?,
        presence_ttl: settings.millis(config::GATEWAY_PRESENCE_TTL_MS, defaults.presence_ttl)?,
        typing_ttl: settings.millis(config::GATEWAY_TYPING_TTL_MS, defaults.typing_ttl)?,
        resync_max_messages: u32::try_from(
            settings.positive(config::GATEWAY_RESYNC_MAX_MESSAGES, u64::from(defaults.resync_max_messages))?,
        )
        .with_context(|| format!("{} is too large", config::GATEWAY_RESYNC_MAX_MESSAGES))?,
        hold_live_for: settings.millis(config::GATEWAY_HOLD_LIVE_MS, defaults.hold_live_for)?,
        ..defaults
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_else(|_| "comet".to_owned())
}

/// Printed once, on stdout, when the embedded mode made its keys.
#[allow(clippy::print_stdout)]
fn announce_keys(keys: &keys::Keys, data_dir: &std::path::Path) {
    println!("comet-server generated API keys (kept in {}):", data_dir.join(keys::KEYS_FILE).display());
    println!("  full access: {}", keys.full);
    println!("  auth only:   {}", keys.auth_only);
}
