//! The notifications role (issue #16): pushes to the recipients who are not looking, through FCM HTTP v1, APNs
//! over HTTP/2 or a webhook provider, with mutes, do-not-disturb, weekly quiet hours, templates (default and
//! privacy) and the unread count as badge.
//!
//! ```text
//! bus (consumer group comet-notifications, the worker base) → NotificationsHandler
//!   → per recipient: decision (pure) → skipped: logged │ sent: one push row per device (one transaction)
//!   → Sender: the provider's bounded queue (full: the row waits for the poller) → request → answer
//!   → delivered: logged │ token gone: token deleted, logged │ 429/5xx: rescheduled (Retry-After) │ refused: logged
//! ```
//!
//! - [`decision`]: who gets a push, pure and table-tested. [`preferences`]: users' choices, the admin defaults
//!   and quiet hours in IANA zones. [`template`]: what a push says. [`provider`]: FCM, APNs and the webhook
//!   provider behind one trait, [`jwt`] their signing. [`registry`]: providers as configured, with their
//!   secrets read from files. [`directory`]: where preferences live (relational or MongoDB). [`sender`]: the
//!   queues and the poller. [`clock`]: the injected time.

pub mod clock;
pub mod decision;
pub mod directory;
mod handler;
pub mod jwt;
mod metrics;
pub mod preferences;
pub mod provider;
pub mod registry;
pub mod sender;
pub mod settings;
pub mod template;

use std::sync::Arc;

use comet_store::Store;

pub use clock::{Clock, SystemClock};
pub use directory::{MongoPreferences, PreferenceStore};
pub use handler::{NotificationsHandler, Presence, mentions};
pub use metrics::NotificationMetrics;
pub use registry::{ProviderConfig, Registry};
pub use sender::Sender;
pub use settings::{MAX_TOKEN_CHARS, MAX_TOKENS_PER_USER, NotificationSettings};

/// The role's two halves, sharing the registry and the counters.
#[derive(Debug)]
pub struct Notifications {
    pub handler: Arc<NotificationsHandler>,
    pub sender: Sender,
    pub metrics: Arc<NotificationMetrics>,
}

impl Notifications {
    pub fn new(
        store: Store,
        preferences: Arc<dyn PreferenceStore>,
        presence: Presence,
        settings: NotificationSettings,
        clock: Arc<dyn Clock>,
    ) -> Notifications {
        let metrics = Arc::new(NotificationMetrics::default());
        let registry = Arc::new(Registry::new(store.clone(), settings.clone(), clock.clone()));
        let sender = Sender::new(store.clone(), registry.clone(), settings.clone(), clock.clone(), metrics.clone());
        let handler = Arc::new(NotificationsHandler {
            store,
            preferences,
            presence,
            registry,
            sender: sender.clone(),
            policy: settings.policy,
            clock,
            metrics: metrics.clone(),
        });
        Notifications { handler, sender, metrics }
    }
}

/// The SHA-256 hex of a push token: how the store finds a token registered twice.
pub fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `token` may be registered: 1 to 4096 visible ASCII characters without `/`, `?`, `#` or `%` (it
/// goes into APNs' request path).
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_CHARS
        && token.bytes().all(|byte| byte.is_ascii_graphic() && !matches!(byte, b'/' | b'?' | b'#' | b'%'))
}
