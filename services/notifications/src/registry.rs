//! Providers as configured (`push_providers` rows) turned into senders. A provider's credentials are named by
//! reference: the name of a secret file in the operator's secrets folder (`COMET_NOTIFICATIONS_SECRETS_DIR`),
//! read when the provider is built and never stored, returned or logged. The registry rebuilds a provider when
//! its row changed, and looks at the rows again at most every [`RELOAD_AFTER_MS`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use comet_model::Millis;
use comet_store::{ProviderRecord, Store};
use comet_webhooks::Guard;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::provider::apns::{PRODUCTION_URL, SANDBOX_URL};
use crate::provider::{
    Apns, ApnsSettings, Fcm, FcmSettings, Provider, ProviderError, ServiceAccount, WebhookProvider,
    WebhookProviderSettings,
};
use crate::settings::NotificationSettings;

/// How long the registry trusts its copy of the providers' rows.
pub const RELOAD_AFTER_MS: Millis = 5_000;

/// A provider's settings as the API takes and stores them (`body` of its row), by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderConfig {
    /// `serviceAccount`: the secret holding the service-account JSON file.
    #[serde(rename_all = "camelCase")]
    Fcm { service_account: String },
    /// `key`: the secret holding the `.p8` key.
    #[serde(rename_all = "camelCase")]
    Apns { key: String, key_id: String, team_id: String, bundle_id: String, production: bool },
    /// `secret`: the secret holding the `whsec_` signing secret.
    #[serde(rename_all = "camelCase")]
    Webhook { url: String, secret: String },
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Fcm { .. } => "fcm",
            ProviderConfig::Apns { .. } => "apns",
            ProviderConfig::Webhook { .. } => "webhook",
        }
    }

    /// The secret names it refers to.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            ProviderConfig::Fcm { service_account } => vec![service_account],
            ProviderConfig::Apns { key, .. } => vec![key],
            ProviderConfig::Webhook { secret, .. } => vec![secret],
        }
    }
}

/// Why a provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("`{0}` is not a secret name (letters, digits, `.`, `_`, `-`; not starting with `.`)")]
    SecretName(String),
    #[error("reading the secret `{name}`: {reason}")]
    Secret { name: String, reason: String },
    #[error("the provider's settings do not parse: {0}")]
    Config(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Whether `name` may name a secret file: one path component, no hidden files.
pub fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

fn read_secret(folder: &Path, name: &str) -> Result<String, BuildError> {
    if !is_secret_name(name) {
        return Err(BuildError::SecretName(name.to_owned()));
    }
    let text = std::fs::read_to_string(folder.join(name))
        .map_err(|error| BuildError::Secret { name: name.to_owned(), reason: error.kind().to_string() })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Builds the sender of one provider.
pub fn build(
    config: &ProviderConfig,
    settings: &NotificationSettings,
    guard: &Guard,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Provider>, BuildError> {
    let folder: &PathBuf = &settings.secrets_dir;
    Ok(match config {
        ProviderConfig::Fcm { service_account } => {
            let account = ServiceAccount::parse(&read_secret(folder, service_account)?)?;
            let fcm = FcmSettings { base_url: settings.fcm_url.clone(), timeout: settings.timeout };
            Arc::new(Fcm::new(account, &fcm, clock)?)
        }
        ProviderConfig::Apns { key, key_id, team_id, bundle_id, production } => {
            let base_url = match (production, &settings.apns_url) {
                (_, Some(url)) => url.clone(),
                (true, None) => PRODUCTION_URL.to_owned(),
                (false, None) => SANDBOX_URL.to_owned(),
            };
            let apns = ApnsSettings {
                key_pem: read_secret(folder, key)?,
                key_id: key_id.clone(),
                team_id: team_id.clone(),
                topic: bundle_id.clone(),
                base_url,
                timeout: settings.timeout,
                extra_roots: settings.extra_roots.clone(),
            };
            Arc::new(Apns::new(&apns, clock)?)
        }
        ProviderConfig::Webhook { url, secret } => {
            let webhook = WebhookProviderSettings {
                url: url.clone(),
                secret: read_secret(folder, secret)?,
                timeout: settings.timeout,
            };
            Arc::new(WebhookProvider::new(&webhook, guard, clock)?)
        }
    })
}

#[derive(Default)]
struct Cache {
    loaded_at: Option<Millis>,
    default: Option<String>,
    built: HashMap<String, (Millis, Arc<dyn Provider>)>,
    broken: HashMap<String, (Millis, String)>,
}

/// The configured providers, built on first use.
pub struct Registry {
    store: Store,
    settings: NotificationSettings,
    guard: Guard,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// What the registry has for a provider id.
#[derive(Debug)]
pub enum Lookup {
    Ready(Arc<dyn Provider>),
    /// Configured but not buildable (a missing secret file): the reason, safe to log.
    Broken(String),
    Missing,
}

impl Registry {
    pub fn new(store: Store, settings: NotificationSettings, clock: Arc<dyn Clock>) -> Registry {
        let guard = Guard::new(settings.allow.clone());
        Registry { store, settings, guard, clock, cache: Mutex::new(Cache::default()) }
    }

    /// The default provider's id, if one is marked default.
    pub async fn default_provider(&self) -> Option<String> {
        let mut cache = self.cache.lock().await;
        self.refresh(&mut cache).await;
        cache.default.clone()
    }

    pub async fn get(&self, id: &str) -> Lookup {
        let mut cache = self.cache.lock().await;
        self.refresh(&mut cache).await;
        if let Some((_, provider)) = cache.built.get(id) {
            return Lookup::Ready(provider.clone());
        }
        match cache.broken.get(id) {
            Some((_, reason)) => Lookup::Broken(reason.clone()),
            None => Lookup::Missing,
        }
    }

    async fn refresh(&self, cache: &mut Cache) {
        let now = self.clock.now();
        if cache.loaded_at.is_some_and(|at| now - at < RELOAD_AFTER_MS) {
            return;
        }
        let records = match self.store.list_push_providers().await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "reading the push providers failed; keeping the ones known");
                return;
            }
        };
        cache.loaded_at = Some(now);
        cache.default = records.iter().find(|record| record.is_default).map(|record| record.id.clone());
        let mut built = HashMap::new();
        let mut broken = HashMap::new();
        for record in &records {
            if let Some((version, provider)) =
                cache.built.remove(&record.id).filter(|(version, _)| *version == record.updated_at)
            {
                built.insert(record.id.clone(), (version, provider));
                continue;
            }
            match self.build_record(record) {
                Ok(provider) => {
                    built.insert(record.id.clone(), (record.updated_at, provider));
                }
                Err(error) => {
                    tracing::warn!(provider = %record.id, %error, "a push provider cannot be used");
                    broken.insert(record.id.clone(), (record.updated_at, error.to_string()));
                }
            }
        }
        cache.built = built;
        cache.broken = broken;
    }

    fn build_record(&self, record: &ProviderRecord) -> Result<Arc<dyn Provider>, BuildError> {
        let config: ProviderConfig =
            serde_json::from_str(&record.body).map_err(|error| BuildError::Config(error.to_string()))?;
        build(&config, &self.settings, &self.guard, self.clock.clone())
    }
}
