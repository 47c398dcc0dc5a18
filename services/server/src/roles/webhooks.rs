//! The `webhooks` role: the worker base's loop in the consumer group `comet-webhooks` (Kafka, or embedded the
//! in-process bus) turning events into deliveries, and the dispatcher sending them.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use comet_store::Store;
use comet_webhooks::{MongoWebhookConfigs, WebhookConfigs, Webhooks};
use comet_worker::{Worker, group_of};

use super::WorkerContext;
use super::shutdown::Tasks;
use crate::admin::WebhooksRunning;
use crate::config::Settings;

/// Joins the consumer group and starts the worker and the dispatcher. On shutdown the worker finishes the
/// events in hand within its grace and hands the rest back to the group, and the dispatcher finishes and records the attempts in flight.
pub(super) async fn start(
    workers: &WorkerContext<'_>,
    configs: Arc<dyn WebhookConfigs>,
    tasks: &mut Tasks,
) -> Result<Arc<WebhooksRunning>> {
    let settings = workers.settings;
    let webhooks =
        Webhooks::new(workers.store.clone(), configs, settings.webhooks()?).context("starting the webhooks role")?;
    let worker = Worker::new(webhooks.handler.clone(), workers.store.clone(), settings.worker()?);
    let group = group_of(webhooks.handler.as_ref());
    let subscription = workers.join(&group).await?;
    let running = Arc::new(WebhooksRunning { worker: worker.metrics(), deliveries: webhooks.metrics.clone() });
    let stop = workers.shutdown.clone();
    tasks.spawn(async move {
        worker.run(subscription, stop.wait()).await;
        Ok(())
    });
    let dispatcher = webhooks.dispatcher;
    let stop = workers.shutdown.clone();
    tasks.spawn(async move {
        dispatcher.run(stop.wait()).await;
        Ok(())
    });
    Ok(running)
}

/// Where the webhook configurations live: MongoDB when `COMET_MONGODB_URL` is set (a deployment with MongoDB, as
/// CometChat's bundle keeps them), the relational store otherwise. Deliveries are always in `store`.
pub async fn configs(settings: &Settings, store: &Store) -> Result<Arc<dyn WebhookConfigs>> {
    match settings.documents().await? {
        Some(documents) => Ok(Arc::new(MongoWebhookConfigs::new(&documents, store.clone()))),
        None => Ok(Arc::new(store.clone())),
    }
}
