//! The `api` role: the REST API, with the embedded mode's keys made on first start.

use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use comet_api::{Admission, ApiConfig, AppState};
use comet_store::Store;
use comet_webhooks::WebhookConfigs;

use crate::config::Settings;
use crate::keys;

/// The `/v3` router with the configured (or generated) keys and the process's admission bounds (whose
/// counts the admin port exports).
pub fn router(
    settings: &Settings,
    store: &Store,
    webhooks: Arc<dyn WebhookConfigs>,
    admission: Arc<Admission>,
    moderation: comet_moderation::Moderation,
    notifications: Arc<dyn comet_notifications::PreferenceStore>,
) -> Result<Router> {
    let data_dir = settings.data_dir()?;
    let (keys, generated) = keys::load_or_create(settings, &data_dir)?;
    if generated {
        announce_keys(&keys, &data_dir);
    }
    let state = AppState {
        store: store.clone(),
        webhooks,
        config: Arc::new(ApiConfig {
            full_keys: vec![keys.full],
            auth_keys: vec![keys.auth_only],
            webhook_guard: settings.webhook_guard()?,
        }),
        admission,
        moderation,
        notifications,
    };
    Ok(comet_api::router(state))
}

/// Printed once, on stdout, when the embedded mode made its keys.
#[allow(clippy::print_stdout)]
fn announce_keys(keys: &keys::Keys, data_dir: &std::path::Path) {
    println!("comet-server generated API keys (kept in {}):", data_dir.join(keys::KEYS_FILE).display());
    println!("  full access: {}", keys.full);
    println!("  auth only:   {}", keys.auth_only);
}
