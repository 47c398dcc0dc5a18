//! The `gateway` role: the WebSocket gateway, reading events from Kafka (or, embedded, the in-process bus) and
//! sharing presence through Redis (or, with one node, this process).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use comet_bus::{InProcessBus, KafkaConfig};
use comet_gateway::{EventSource, Gateway, GatewayConfig};
use comet_store::Store;

use super::shutdown::{Shutdown, Tasks};
use crate::config::{self, Settings, hostname};

/// Starts the gateway; on shutdown it closes its sockets and leaves presence.
pub async fn start(
    settings: &Settings,
    store: &Store,
    kafka: Option<KafkaConfig>,
    in_process: &InProcessBus,
    shutdown: &Shutdown,
    tasks: &mut Tasks,
) -> Result<Arc<Gateway>> {
    let events = match kafka {
        Some(kafka) => EventSource::Kafka(kafka),
        None => EventSource::InProcess(in_process.clone()),
    };
    let redis = settings.redis()?;
    if redis.is_none() {
        tracing::info!("no {} set: presence and typing stay in this process (one gateway node)", config::REDIS_URL);
    }
    let gateway = Gateway::start(gateway_config(settings)?, store.clone(), events, redis.as_ref())
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
    Ok(gateway)
}

/// Checks the settings this role reads.
pub fn check(settings: &Settings) -> Result<()> {
    gateway_config(settings)?;
    settings.redis()?;
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
        drain: settings.millis(config::GATEWAY_DRAIN_MS, defaults.drain)?,
        reconnect_jitter: settings.millis(config::GATEWAY_RECONNECT_JITTER_MS, defaults.reconnect_jitter)?,
        ..defaults
    })
}
