//! The `relay` role: publishes the outbox, to Kafka or (embedded) to the in-process bus.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use comet_bus::relay::{Relay, RelayStats};
use comet_bus::{InProcessBus, KafkaPublisher, Publisher};
use comet_store::Store;

use super::shutdown::{Shutdown, Tasks};
use crate::config::{self, Settings, hostname};

/// Starts the relay with the `COMET_OUTBOX_*` settings; on shutdown it stops after its current batch and
/// releases its lease.
pub fn start(
    settings: &Settings,
    store: &Store,
    kafka: Option<&Arc<KafkaPublisher>>,
    in_process: &InProcessBus,
    shutdown: &Shutdown,
    tasks: &mut Tasks,
) -> Result<Arc<RelayStats>> {
    let publisher: Arc<dyn Publisher> = match kafka {
        Some(kafka) => kafka.clone(),
        None => {
            tracing::info!("no {} set: events go to the in-process bus", config::KAFKA_BROKERS);
            Arc::new(in_process.clone())
        }
    };
    let owner = format!("{}-{}", hostname(), std::process::id());
    let relay = Relay::new(store.clone(), publisher, owner, settings.relay()?);
    let stats = relay.stats();
    let stop = shutdown.clone();
    tasks.spawn(async move { relay.run(stop.wait()).await.context("relay") });
    Ok(stats)
}
