//! Wiring: which parts each role starts, and the shutdown that stops them. SIGTERM or Ctrl-C stops
//! accepting, lets in-flight requests finish, stops the relay after its current batch, then exits 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use comet_api::{ApiConfig, AppState};
use comet_bus::relay::{Relay, RelaySettings};
use comet_bus::{InProcessBus, KafkaConfig, KafkaPublisher, Publisher};
use comet_store::Store;
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
        Role::Migrate => "migrate",
        Role::Health => "health",
    };
    let database_url = settings.database_url()?;
    let store = Store::connect(&database_url).await.context("connecting to the database")?;
    if matches!(role, Role::Migrate | Role::All) {
        store.migrate().await.context("applying the schema")?;
        tracing::info!("schema is up to date");
        if role == Role::Migrate {
            return Ok(());
        }
    }

    let kafka = match settings.get(config::KAFKA_BROKERS)? {
        Some(brokers) if matches!(role, Role::Relay | Role::All) => Some(Arc::new(
            KafkaPublisher::connect(&kafka_config(&settings, brokers)?).await.context("connecting to Kafka")?,
        )),
        _ => None,
    };
    if role == Role::Relay && kafka.is_none() {
        anyhow::bail!("the relay role needs {}: the Kafka bootstrap servers", config::KAFKA_BROKERS);
    }

    let mut tasks = tokio::task::JoinSet::new();
    let mut relay_stats = None;
    if matches!(role, Role::Relay | Role::All) {
        let publisher: Arc<dyn Publisher> = match &kafka {
            Some(kafka) => kafka.clone(),
            None => {
                tracing::info!("no {} set: events go to the in-process bus", config::KAFKA_BROKERS);
                Arc::new(InProcessBus::new(4096))
            }
        };
        let owner = format!("{}-{}", hostname(), std::process::id());
        let relay = Relay::new(store.clone(), publisher, owner, RelaySettings::default());
        relay_stats = Some(relay.stats());
        let stop = shutdown.clone();
        tasks.spawn(async move { relay.run(stop.wait()).await.context("relay") });
    }

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
        let app = count_responses(comet_api::router(state), metrics.clone());
        let address = settings.socket(config::LISTEN, DEFAULT_LISTEN)?;
        let stop = shutdown.clone();
        tasks.spawn(async move { serve("api", address, app, stop).await });
    }

    let admin_state = AdminState { role: role_name, store: Some(store), kafka, metrics, relay: relay_stats };
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
