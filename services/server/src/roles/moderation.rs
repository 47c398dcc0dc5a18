//! Moderation in a process. For the `api` part: the rules, where they live (MongoDB when `COMET_MONGODB_URL` is
//! set, as CometChat's bundle keeps them; the relational store otherwise), loaded before the API serves and
//! refreshed by a poll of their change counter every [`comet_moderation::DEFAULT_POLL`]. For the `moderation`
//! part: the worker base's loop in the consumer group `comet-moderation` deciding the messages Custom API rules
//! hold (`comet_moderation::Decider`).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use comet_moderation::{
    CustomApi, DEFAULT_POLL, Decider, DecisionMetrics, Moderation, ModerationStore, MongoModeration,
};
use comet_store::Store;
use comet_worker::{Worker, group_of};

use super::WorkerContext;
use super::shutdown::{Shutdown, Tasks};
use crate::admin::ModerationRunning;
use crate::config::Settings;

/// Where the moderation data lives.
pub async fn home(settings: &Settings, store: &Store) -> Result<Arc<dyn ModerationStore>> {
    Ok(match settings.documents().await? {
        Some(documents) => {
            Arc::new(MongoModeration::new(&documents).await.context("preparing the moderation collections")?)
        }
        None => Arc::new(store.clone()),
    })
}

/// The moderation data and its compiled rules, loaded, with the refresh loop started in `tasks`.
pub async fn start(home: Arc<dyn ModerationStore>, shutdown: &Shutdown, tasks: &mut Tasks) -> Result<Moderation> {
    let moderation = Moderation::new(home);
    moderation.refresh().await.context("loading the moderation rules")?;
    let refreshing = moderation.clone();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        refreshing.run(DEFAULT_POLL, stop.wait()).await;
        Ok(())
    });
    Ok(moderation)
}

/// Joins the consumer group `comet-moderation` and starts deciding held messages. On shutdown the worker
/// finishes the decisions in hand within its grace and hands the rest back to the group.
pub(super) async fn decide(
    workers: &WorkerContext<'_>,
    home: Arc<dyn ModerationStore>,
    tasks: &mut Tasks,
) -> Result<Arc<ModerationRunning>> {
    let settings = workers.settings;
    let adapter = CustomApi::new(settings.custom_api()?).context("building the Custom API client")?;
    let decisions = Arc::new(DecisionMetrics::default());
    let decider = Arc::new(Decider::new(workers.store.clone(), home, adapter, decisions.clone()));
    let worker = Worker::new(decider.clone(), workers.store.clone(), settings.worker()?);
    let group = group_of(decider.as_ref());
    let subscription = workers.join(&group).await?;
    let running = Arc::new(ModerationRunning { worker: worker.metrics(), decisions });
    let stop = workers.shutdown.clone();
    tasks.spawn(async move {
        worker.run(subscription, stop.wait()).await;
        Ok(())
    });
    Ok(running)
}
