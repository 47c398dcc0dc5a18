//! The moderation rules of the `api` part: where they live (MongoDB when `COMET_MONGODB_URL` is set, as
//! CometChat's bundle keeps them; the relational store otherwise), loaded before the API serves and refreshed
//! by a poll of their change counter every [`comet_moderation::DEFAULT_POLL`].

use std::sync::Arc;

use anyhow::{Context as _, Result};
use comet_moderation::{DEFAULT_POLL, Moderation, ModerationStore, MongoModeration};
use comet_store::Store;

use super::shutdown::{Shutdown, Tasks};
use crate::config::Settings;

/// The moderation data and its compiled rules, loaded, with the refresh loop started in `tasks`.
pub async fn start(settings: &Settings, store: &Store, shutdown: &Shutdown, tasks: &mut Tasks) -> Result<Moderation> {
    let home: Arc<dyn ModerationStore> = match settings.documents().await? {
        Some(documents) => {
            Arc::new(MongoModeration::new(&documents).await.context("preparing the moderation collections")?)
        }
        None => Arc::new(store.clone()),
    };
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
