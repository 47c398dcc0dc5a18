//! How the role runs: `COMET_NOTIFICATIONS_*` in docs/configuration.md.

use std::path::PathBuf;
use std::time::Duration;

use comet_webhooks::AllowList;

use crate::decision::Policy;
use crate::provider::fcm::DEFAULT_BASE_URL;

/// Most push tokens a user may have (CometChat's limit).
pub const MAX_TOKENS_PER_USER: u32 = 100;
/// Longest push token (CometChat's limit).
pub const MAX_TOKEN_CHARS: usize = 4096;
/// How long the decision log is kept.
pub const LOG_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct NotificationSettings {
    pub policy: Policy,
    /// FCM's base URL (`COMET_NOTIFICATIONS_FCM_URL`); the token endpoint is the service account's `token_uri`.
    pub fcm_url: String,
    /// APNs' base URL for every APNs provider (`COMET_NOTIFICATIONS_APNS_URL`); unset: Apple's production or
    /// sandbox host, as each provider says.
    pub apns_url: Option<String>,
    /// Extra trusted roots (PEM) for the providers' TLS: a proxy's CA (`COMET_NOTIFICATIONS_CA_FILE`).
    pub extra_roots: Vec<String>,
    /// Where providers' secrets are read from (`COMET_NOTIFICATIONS_SECRETS_DIR`).
    pub secrets_dir: PathBuf,
    /// One request's limit.
    pub timeout: Duration,
    /// Pushes waiting per provider in memory; beyond it they wait in the table for the next poll.
    pub queue: usize,
    /// Requests in flight per provider.
    pub per_provider: usize,
    /// Attempts per push before it is logged failed.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a replica owns the pushes it took; a killed replica's go to others after it.
    pub claim: Duration,
    /// How often the table is asked for due pushes.
    pub poll: Duration,
    pub log_retention: Duration,
    /// Hosts and networks the webhook provider may reach although they are not public
    /// (`COMET_WEBHOOKS_ALLOW_HOSTS`, shared with the webhooks role).
    pub allow: AllowList,
}

impl Default for NotificationSettings {
    fn default() -> NotificationSettings {
        NotificationSettings {
            policy: Policy::default(),
            fcm_url: DEFAULT_BASE_URL.to_owned(),
            apns_url: None,
            extra_roots: Vec::new(),
            secrets_dir: PathBuf::from("/run/secrets/notifications"),
            timeout: Duration::from_secs(10),
            queue: 1024,
            per_provider: 32,
            attempts: 8,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            claim: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            log_retention: LOG_RETENTION,
            allow: AllowList::default(),
        }
    }
}

impl NotificationSettings {
    /// The wait after `attempts` failed attempts, at least what the provider asked for.
    pub fn backoff(&self, attempts: u32, asked: Option<Duration>) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        let wait = self.first_backoff.saturating_mul(factor).min(self.max_backoff);
        match asked {
            Some(asked) => wait.max(asked.min(self.max_backoff)),
            None => wait,
        }
    }
}
