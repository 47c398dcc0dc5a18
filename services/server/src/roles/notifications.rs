//! The `notifications` role: the worker base's loop in the consumer group `comet-notifications` (Kafka, or
//! embedded the in-process bus) deciding and writing pushes, and the sender sending them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use comet_bus::{GroupSubscription, InProcessBus, KafkaConfig};
use comet_cluster::Cluster;
use comet_gateway::Gateway;
use comet_model::Uid;
use comet_notifications::{MongoPreferences, Notifications, PreferenceStore, Presence, SystemClock};
use comet_store::Store;
use comet_worker::{Worker, group_of};

use super::shutdown::{Shutdown, Tasks};
use crate::admin::NotificationsRunning;
use crate::config::{self, Settings, hostname};

/// What the role starts from.
pub struct Start<'a> {
    pub settings: &'a Settings,
    pub store: &'a Store,
    pub kafka: Option<&'a KafkaConfig>,
    pub in_process: &'a InProcessBus,
    /// The gateway of this process, when it runs one: with in-memory presence it is who is online.
    pub gateway: Option<Arc<Gateway>>,
}

/// Joins the consumer group and starts the worker and the sender. On shutdown the worker finishes the events
/// in hand within its grace and hands the rest back; pushes in flight are sent again by whoever claims them.
pub async fn start(start: Start<'_>, shutdown: &Shutdown, tasks: &mut Tasks) -> Result<Arc<NotificationsRunning>> {
    let Start { settings, store, kafka, in_process, gateway } = start;
    let notification_settings = settings.notifications()?;
    let preferences = preferences(settings, store).await?;
    let presence = presence(settings, gateway).await?;
    let notifications =
        Notifications::new(store.clone(), preferences, presence, notification_settings, Arc::new(SystemClock));
    let worker = Worker::new(notifications.handler.clone(), store.clone(), settings.worker()?);
    let group = group_of(notifications.handler.as_ref());
    let subscription = match kafka {
        Some(kafka) => GroupSubscription::kafka(kafka, &group)
            .await
            .with_context(|| format!("joining the consumer group {group}"))?,
        None => GroupSubscription::in_process(in_process, &group),
    };
    let running = Arc::new(NotificationsRunning { worker: worker.metrics(), pushes: notifications.metrics.clone() });
    let stop = shutdown.clone();
    tasks.spawn(async move {
        worker.run(subscription, stop.wait()).await;
        Ok(())
    });
    let sender = notifications.sender;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        sender.run(stop.wait()).await;
        Ok(())
    });
    Ok(running)
}

/// Where preferences live: MongoDB when `COMET_MONGODB_URL` is set (as CometChat's bundle keeps them), the
/// relational store otherwise.
pub async fn preferences(settings: &Settings, store: &Store) -> Result<Arc<dyn PreferenceStore>> {
    Ok(match settings.documents().await? {
        Some(documents) => Arc::new(MongoPreferences::new(&documents)),
        None => Arc::new(store.clone()),
    })
}

/// "Online" is a live socket on any gateway node: Redis presence when `COMET_REDIS_URL` is set (the gateways'
/// namespace, `COMET_GATEWAY_NAMESPACE`), else this process's own gateway, else nobody (every recipient counts as
/// offline, which the log says).
async fn presence(settings: &Settings, gateway: Option<Arc<Gateway>>) -> Result<Presence> {
    let node = format!("notifications-{}-{}", hostname(), std::process::id());
    let ttl = Duration::from_secs(30);
    let cluster = match settings.redis()? {
        Some(target) => {
            let namespace = settings
                .get(config::GATEWAY_NAMESPACE)?
                .unwrap_or_else(|| comet_gateway::GatewayConfig::default().namespace);
            Cluster::redis(&target, &namespace, node, ttl).await.context("connecting to Redis for presence")?
        }
        None => {
            if gateway.is_none() {
                tracing::warn!(
                    "no {} and no gateway in this process: presence is unknown, every recipient counts as offline",
                    config::REDIS_URL
                );
            }
            Cluster::local(node, ttl)
        }
    };
    let local: Arc<dyn Fn(&Uid) -> bool + Send + Sync> = match gateway {
        Some(gateway) => Arc::new(move |uid: &Uid| gateway.holds(uid)),
        None => Arc::new(|_: &Uid| false),
    };
    Ok(Presence::new(Arc::new(cluster), local))
}
