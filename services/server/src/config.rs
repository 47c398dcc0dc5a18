//! Settings: every one is an environment variable `COMET_…` (names below, the only place they are spelled),
//! optionally preset by a `--config FILE` of `NAME=value` lines; the environment wins over the file. A
//! secret may be given as `NAME_FILE=/run/secrets/…` (Docker and Kubernetes secrets) instead of `NAME`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

pub const LISTEN: &str = "COMET_LISTEN";
pub const ADMIN_LISTEN: &str = "COMET_ADMIN_LISTEN";
pub const DATA_DIR: &str = "COMET_DATA_DIR";
pub const DATABASE_URL: &str = "COMET_DATABASE_URL";
pub const DATABASE_PASSWORD: &str = "COMET_DATABASE_PASSWORD";
pub const DATABASE_ROOT_USER: &str = "COMET_DATABASE_ROOT_USER";
pub const DATABASE_ROOT_PASSWORD: &str = "COMET_DATABASE_ROOT_PASSWORD";
pub const KAFKA_BROKERS: &str = "COMET_KAFKA_BROKERS";
pub const KAFKA_PARTITIONS: &str = "COMET_KAFKA_PARTITIONS";
pub const KAFKA_REPLICATION_FACTOR: &str = "COMET_KAFKA_REPLICATION_FACTOR";
pub const REDIS_URL: &str = "COMET_REDIS_URL";
pub const REDIS_PASSWORD: &str = "COMET_REDIS_PASSWORD";
pub const REDIS_MODE: &str = "COMET_REDIS_MODE";
pub const MONGODB_URL: &str = "COMET_MONGODB_URL";
pub const MONGODB_PASSWORD: &str = "COMET_MONGODB_PASSWORD";
pub const MONGODB_DATABASE: &str = "COMET_MONGODB_DATABASE";
pub const API_KEY: &str = "COMET_API_KEY";
pub const AUTH_KEY: &str = "COMET_AUTH_KEY";
pub const LOG_FORMAT: &str = "COMET_LOG_FORMAT";
pub const LOG: &str = "COMET_LOG";
pub const GATEWAY_NODE_ID: &str = "COMET_GATEWAY_NODE_ID";
pub const GATEWAY_NAMESPACE: &str = "COMET_GATEWAY_NAMESPACE";
pub const GATEWAY_ALLOWED_ORIGINS: &str = "COMET_GATEWAY_ALLOWED_ORIGINS";
pub const GATEWAY_MAX_SOCKETS_PER_USER: &str = "COMET_GATEWAY_MAX_SOCKETS_PER_USER";
pub const GATEWAY_QUEUE_FRAMES: &str = "COMET_GATEWAY_QUEUE_FRAMES";
pub const GATEWAY_MAX_FRAME_BYTES: &str = "COMET_GATEWAY_MAX_FRAME_BYTES";
pub const GATEWAY_READ_BUFFER_BYTES: &str = "COMET_GATEWAY_READ_BUFFER_BYTES";
pub const GATEWAY_PING_INTERVAL_MS: &str = "COMET_GATEWAY_PING_INTERVAL_MS";
pub const GATEWAY_IDLE_TIMEOUT_MS: &str = "COMET_GATEWAY_IDLE_TIMEOUT_MS";
pub const GATEWAY_PRESENCE_GRACE_MS: &str = "COMET_GATEWAY_PRESENCE_GRACE_MS";
pub const GATEWAY_PRESENCE_TTL_MS: &str = "COMET_GATEWAY_PRESENCE_TTL_MS";
pub const GATEWAY_TYPING_TTL_MS: &str = "COMET_GATEWAY_TYPING_TTL_MS";
pub const GATEWAY_RESYNC_MAX_MESSAGES: &str = "COMET_GATEWAY_RESYNC_MAX_MESSAGES";
pub const GATEWAY_HOLD_LIVE_MS: &str = "COMET_GATEWAY_HOLD_LIVE_MS";
pub const GATEWAY_DRAIN_MS: &str = "COMET_GATEWAY_DRAIN_MS";
pub const GATEWAY_RECONNECT_JITTER_MS: &str = "COMET_GATEWAY_RECONNECT_JITTER_MS";
pub const OUTBOX_RETENTION_MS: &str = "COMET_OUTBOX_RETENTION_MS";
pub const OUTBOX_MAX_ATTEMPTS: &str = "COMET_OUTBOX_MAX_ATTEMPTS";
pub const APP_ID: &str = "COMET_APP_ID";
pub const REGION: &str = "COMET_REGION";
pub const WEBHOOKS_ALLOW_HOSTS: &str = "COMET_WEBHOOKS_ALLOW_HOSTS";
pub const WEBHOOKS_TIMEOUT_MS: &str = "COMET_WEBHOOKS_TIMEOUT_MS";
pub const WEBHOOKS_RETRY_SCHEDULE_MS: &str = "COMET_WEBHOOKS_RETRY_SCHEDULE_MS";
pub const WEBHOOKS_PER_WEBHOOK_CONCURRENCY: &str = "COMET_WEBHOOKS_PER_WEBHOOK_CONCURRENCY";
pub const WEBHOOKS_CONCURRENCY: &str = "COMET_WEBHOOKS_CONCURRENCY";
pub const WEBHOOKS_DISABLE_AFTER_MS: &str = "COMET_WEBHOOKS_DISABLE_AFTER_MS";
pub const WEBHOOKS_CLAIM_MS: &str = "COMET_WEBHOOKS_CLAIM_MS";
pub const WEBHOOKS_POLL_MS: &str = "COMET_WEBHOOKS_POLL_MS";
pub const MODERATION_CUSTOM_API_URL: &str = "COMET_MODERATION_CUSTOM_API_URL";
pub const MODERATION_CUSTOM_API_USERNAME: &str = "COMET_MODERATION_CUSTOM_API_USERNAME";
pub const MODERATION_CUSTOM_API_PASSWORD: &str = "COMET_MODERATION_CUSTOM_API_PASSWORD";
pub const MODERATION_CUSTOM_API_TIMEOUT_MS: &str = "COMET_MODERATION_CUSTOM_API_TIMEOUT_MS";
pub const WORKER_CONCURRENCY: &str = "COMET_WORKER_CONCURRENCY";
pub const WORKER_SHUTDOWN_GRACE_MS: &str = "COMET_WORKER_SHUTDOWN_GRACE_MS";

// The HTTP edge of the app and admin ports, and the shutdown deadline (issue #17; docs/configuration.md).
pub const HTTP_HEADER_TIMEOUT_MS: &str = "COMET_HTTP_HEADER_TIMEOUT_MS";
pub const HTTP_BODY_TIMEOUT_MS: &str = "COMET_HTTP_BODY_TIMEOUT_MS";
pub const HTTP_IDLE_TIMEOUT_MS: &str = "COMET_HTTP_IDLE_TIMEOUT_MS";
pub const HTTP_MAX_CONNECTIONS: &str = "COMET_HTTP_MAX_CONNECTIONS";
pub const SHUTDOWN_TIMEOUT_MS: &str = "COMET_SHUTDOWN_TIMEOUT_MS";
pub const EDGE: [&str; 5] =
    [HTTP_HEADER_TIMEOUT_MS, HTTP_BODY_TIMEOUT_MS, HTTP_IDLE_TIMEOUT_MS, HTTP_MAX_CONNECTIONS, SHUTDOWN_TIMEOUT_MS];

// Overload protection of the API role (issue #17, item 5; docs/configuration.md).
pub const API_MAX_IN_FLIGHT: &str = "COMET_API_MAX_IN_FLIGHT";
pub const API_QUEUE_WAIT_MS: &str = "COMET_API_QUEUE_WAIT_MS";
pub const API_USER_RATE: &str = "COMET_API_USER_RATE";
pub const API_USER_BURST: &str = "COMET_API_USER_BURST";
pub const API_KEY_RATE: &str = "COMET_API_KEY_RATE";
pub const API_KEY_BURST: &str = "COMET_API_KEY_BURST";
pub const ADMISSION: [&str; 6] =
    [API_MAX_IN_FLIGHT, API_QUEUE_WAIT_MS, API_USER_RATE, API_USER_BURST, API_KEY_RATE, API_KEY_BURST];

// The notifications role (issue #16; docs/configuration.md, docs/notifications.md).
pub const NOTIFICATIONS_PUSH_TO_ONLINE: &str = "COMET_NOTIFICATIONS_PUSH_TO_ONLINE";
pub const NOTIFICATIONS_MAX_GROUP_MEMBERS: &str = "COMET_NOTIFICATIONS_MAX_GROUP_MEMBERS";
pub const NOTIFICATIONS_FCM_URL: &str = "COMET_NOTIFICATIONS_FCM_URL";
pub const NOTIFICATIONS_APNS_URL: &str = "COMET_NOTIFICATIONS_APNS_URL";
pub const NOTIFICATIONS_CA_FILE: &str = "COMET_NOTIFICATIONS_CA_FILE";
pub const NOTIFICATIONS_SECRETS_DIR: &str = "COMET_NOTIFICATIONS_SECRETS_DIR";
pub const NOTIFICATIONS_TIMEOUT_MS: &str = "COMET_NOTIFICATIONS_TIMEOUT_MS";
pub const NOTIFICATIONS_QUEUE: &str = "COMET_NOTIFICATIONS_QUEUE";
pub const NOTIFICATIONS_PER_PROVIDER_CONCURRENCY: &str = "COMET_NOTIFICATIONS_PER_PROVIDER_CONCURRENCY";
pub const NOTIFICATIONS_ATTEMPTS: &str = "COMET_NOTIFICATIONS_ATTEMPTS";
pub const NOTIFICATIONS_CLAIM_MS: &str = "COMET_NOTIFICATIONS_CLAIM_MS";
pub const NOTIFICATIONS_POLL_MS: &str = "COMET_NOTIFICATIONS_POLL_MS";
pub const NOTIFICATIONS: [&str; 12] = [
    NOTIFICATIONS_PUSH_TO_ONLINE,
    NOTIFICATIONS_MAX_GROUP_MEMBERS,
    NOTIFICATIONS_FCM_URL,
    NOTIFICATIONS_APNS_URL,
    NOTIFICATIONS_CA_FILE,
    NOTIFICATIONS_SECRETS_DIR,
    NOTIFICATIONS_TIMEOUT_MS,
    NOTIFICATIONS_QUEUE,
    NOTIFICATIONS_PER_PROVIDER_CONCURRENCY,
    NOTIFICATIONS_ATTEMPTS,
    NOTIFICATIONS_CLAIM_MS,
    NOTIFICATIONS_POLL_MS,
];

/// Every name this program reads, for `--help` and the unknown-name check on config files (with `EDGE` and
/// `ADMISSION` and `NOTIFICATIONS`).
pub const ALL: [&str; 54] = [
    LISTEN,
    ADMIN_LISTEN,
    DATA_DIR,
    DATABASE_URL,
    DATABASE_PASSWORD,
    DATABASE_ROOT_USER,
    DATABASE_ROOT_PASSWORD,
    KAFKA_BROKERS,
    KAFKA_PARTITIONS,
    KAFKA_REPLICATION_FACTOR,
    REDIS_URL,
    REDIS_PASSWORD,
    REDIS_MODE,
    MONGODB_URL,
    MONGODB_PASSWORD,
    MONGODB_DATABASE,
    API_KEY,
    AUTH_KEY,
    LOG_FORMAT,
    LOG,
    GATEWAY_NODE_ID,
    GATEWAY_NAMESPACE,
    GATEWAY_ALLOWED_ORIGINS,
    GATEWAY_MAX_SOCKETS_PER_USER,
    GATEWAY_QUEUE_FRAMES,
    GATEWAY_MAX_FRAME_BYTES,
    GATEWAY_READ_BUFFER_BYTES,
    GATEWAY_PING_INTERVAL_MS,
    GATEWAY_IDLE_TIMEOUT_MS,
    GATEWAY_PRESENCE_GRACE_MS,
    GATEWAY_PRESENCE_TTL_MS,
    GATEWAY_TYPING_TTL_MS,
    GATEWAY_RESYNC_MAX_MESSAGES,
    GATEWAY_HOLD_LIVE_MS,
    GATEWAY_DRAIN_MS,
    GATEWAY_RECONNECT_JITTER_MS,
    WORKER_CONCURRENCY,
    WORKER_SHUTDOWN_GRACE_MS,
    OUTBOX_RETENTION_MS,
    OUTBOX_MAX_ATTEMPTS,
    APP_ID,
    REGION,
    WEBHOOKS_ALLOW_HOSTS,
    WEBHOOKS_TIMEOUT_MS,
    WEBHOOKS_RETRY_SCHEDULE_MS,
    WEBHOOKS_PER_WEBHOOK_CONCURRENCY,
    WEBHOOKS_CONCURRENCY,
    WEBHOOKS_DISABLE_AFTER_MS,
    WEBHOOKS_CLAIM_MS,
    WEBHOOKS_POLL_MS,
    MODERATION_CUSTOM_API_URL,
    MODERATION_CUSTOM_API_USERNAME,
    MODERATION_CUSTOM_API_PASSWORD,
    MODERATION_CUSTOM_API_TIMEOUT_MS,
];

/// Every setting's name.
fn known() -> impl Iterator<Item = &'static str> {
    ALL.into_iter().chain(EDGE).chain(ADMISSION).chain(NOTIFICATIONS)
}

/// Raw settings: file values overlaid by the environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    pub fn load(config_file: Option<&Path>) -> Result<Settings> {
        let mut values = BTreeMap::new();
        if let Some(path) = config_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((name, value)) = line.split_once('=') else {
                    bail!("{}:{}: expected NAME=value", path.display(), number + 1);
                };
                let name = name.trim();
                let base = name.strip_suffix("_FILE").unwrap_or(name);
                if !known().any(|known| known == base) {
                    let names: Vec<&str> = known().collect();
                    bail!("{}:{}: unknown setting `{name}` (known: {})", path.display(), number + 1, names.join(", "));
                }
                values.insert(name.to_owned(), value.trim().to_owned());
            }
        }
        for name in known() {
            for key in [name.to_owned(), format!("{name}_FILE")] {
                if let Ok(value) = std::env::var(&key) {
                    values.insert(key, value);
                }
            }
        }
        Ok(Settings { values })
    }

    /// The value of `name`, read from `name_FILE` when that is set (trailing newline dropped).
    pub fn get(&self, name: &str) -> Result<Option<String>> {
        if let Some(path) = self.values.get(&format!("{name}_FILE")).filter(|path| !path.is_empty()) {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}_FILE={path}"))?;
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()));
        }
        Ok(self.values.get(name).filter(|value| !value.is_empty()).cloned())
    }

    pub fn socket(&self, name: &str, default: &str) -> Result<SocketAddr> {
        let text = self.get(name)?.unwrap_or_else(|| default.to_owned());
        text.parse().with_context(|| format!("{name}=`{text}` is not an address such as 127.0.0.1:8080"))
    }

    pub fn number(&self, name: &str, default: i32) -> Result<i32> {
        match self.get(name)? {
            None => Ok(default),
            Some(text) => text.parse().with_context(|| format!("{name}=`{text}` is not a whole number")),
        }
    }

    /// A positive whole number (sizes, counts, milliseconds).
    pub fn positive(&self, name: &str, default: u64) -> Result<u64> {
        match self.get(name)? {
            None => Ok(default),
            Some(text) => match text.parse::<u64>() {
                Ok(value) if value > 0 => Ok(value),
                _ => bail!("{name}=`{text}` is not a positive whole number"),
            },
        }
    }

    /// A duration given in milliseconds.
    pub fn millis(&self, name: &str, default: std::time::Duration) -> Result<std::time::Duration> {
        Ok(std::time::Duration::from_millis(self.positive(name, default.as_millis() as u64)?))
    }

    pub fn data_dir(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(self.get(DATA_DIR)?.unwrap_or_else(|| "comet-data".to_owned())))
    }

    /// The database URL: `COMET_DATABASE_URL` (with `COMET_DATABASE_PASSWORD` filled in when the URL has
    /// none), or a SQLite file in the data folder.
    pub fn database_url(&self) -> Result<String> {
        match self.get(DATABASE_URL)? {
            Some(url) => match self.get(DATABASE_PASSWORD)? {
                Some(password) if url.starts_with("mysql://") && !url_has_password(&url) => {
                    Ok(with_password(&url, &password))
                }
                _ => Ok(url),
            },
            None => {
                let dir = self.data_dir()?;
                std::fs::create_dir_all(&dir).with_context(|| format!("creating the data folder {}", dir.display()))?;
                Ok(format!("sqlite://{}", dir.join("comet.db").display()))
            }
        }
    }

    /// The MongoDB database (`COMET_MONGODB_URL`, `COMET_MONGODB_PASSWORD` for the URL's user when the URL has
    /// none, `COMET_MONGODB_DATABASE`, default `comet`), connected and answering; `None` when no URL is set.
    pub async fn documents(&self) -> Result<Option<comet_documents::Documents>> {
        let Some(url) = self.get(MONGODB_URL)? else { return Ok(None) };
        let password = self.get(MONGODB_PASSWORD)?;
        let database = self.get(MONGODB_DATABASE)?.unwrap_or_else(|| "comet".to_owned());
        let documents = comet_documents::Documents::connect(&url, password.as_deref(), &database)
            .await
            .with_context(|| format!("connecting to MongoDB ({MONGODB_URL})"))?;
        Ok(Some(documents))
    }

    /// What `migrate` makes as the database's root user before it applies the schema, when
    /// `COMET_DATABASE_ROOT_PASSWORD` is set: the database and the account of `COMET_DATABASE_URL` (with
    /// `COMET_DATABASE_PASSWORD`), as `COMET_DATABASE_ROOT_USER` (default `root`). `None` without a root password.
    pub fn database_bootstrap(&self) -> Result<Option<comet_store::Bootstrap>> {
        let Some(root_password) = self.get(DATABASE_ROOT_PASSWORD)? else { return Ok(None) };
        if self.get(DATABASE_URL)?.is_none() {
            bail!(
                "{DATABASE_ROOT_PASSWORD} is set but {DATABASE_URL} is not: the root user serves a mysql:// database"
            );
        }
        let root_user = self.get(DATABASE_ROOT_USER)?.unwrap_or_else(|| "root".to_owned());
        let bootstrap = comet_store::Bootstrap::new(&self.database_url()?, &root_user, &root_password)
            .with_context(|| format!("the database bootstrap ({DATABASE_ROOT_PASSWORD} is set)"))?;
        Ok(Some(bootstrap))
    }
}

impl Settings {
    /// The relay's settings: `COMET_OUTBOX_*` (docs/configuration.md), the defaults otherwise.
    pub fn relay(&self) -> Result<comet_bus::relay::RelaySettings> {
        let defaults = comet_bus::relay::RelaySettings::default();
        Ok(comet_bus::relay::RelaySettings {
            retention: self.millis(OUTBOX_RETENTION_MS, defaults.retention)?,
            max_attempts: u32::try_from(self.positive(OUTBOX_MAX_ATTEMPTS, u64::from(defaults.max_attempts))?)
                .with_context(|| format!("{OUTBOX_MAX_ATTEMPTS} is too large"))?,
            ..defaults
        })
    }

    /// The SSRF guard with the operator's allow-list (`COMET_WEBHOOKS_ALLOW_HOSTS`): the API checks webhook
    /// URLs with it and the webhooks role connects through it.
    pub fn webhook_guard(&self) -> Result<comet_webhooks::Guard> {
        Ok(comet_webhooks::Guard::new(self.webhook_allow_list()?))
    }

    fn webhook_allow_list(&self) -> Result<comet_webhooks::AllowList> {
        let text = self.get(WEBHOOKS_ALLOW_HOSTS)?.unwrap_or_default();
        comet_webhooks::AllowList::parse(&text).map_err(|error| anyhow::anyhow!("{WEBHOOKS_ALLOW_HOSTS}: {error}"))
    }

    /// The webhooks role's settings: `COMET_WEBHOOKS_*`, `COMET_APP_ID` and `COMET_REGION`
    /// (docs/configuration.md), the defaults otherwise.
    pub fn webhooks(&self) -> Result<comet_webhooks::WebhookSettings> {
        let defaults = comet_webhooks::WebhookSettings::default();
        let timeout = self.millis(WEBHOOKS_TIMEOUT_MS, defaults.timeout)?;
        if timeout > comet_webhooks::MAX_TIMEOUT {
            bail!("{WEBHOOKS_TIMEOUT_MS} may be at most {}", comet_webhooks::MAX_TIMEOUT.as_millis());
        }
        let schedule = match self.get(WEBHOOKS_RETRY_SCHEDULE_MS)? {
            None => defaults.schedule,
            Some(text) => comet_webhooks::RetrySchedule::parse_millis(&text)
                .map_err(|error| anyhow::anyhow!("{WEBHOOKS_RETRY_SCHEDULE_MS}: {error}"))?,
        };
        let count = |name, default: usize| -> Result<usize> {
            usize::try_from(self.positive(name, default as u64)?).with_context(|| format!("{name} is too large"))
        };
        Ok(comet_webhooks::WebhookSettings {
            timeout,
            schedule,
            per_webhook: count(WEBHOOKS_PER_WEBHOOK_CONCURRENCY, defaults.per_webhook)?,
            concurrency: count(WEBHOOKS_CONCURRENCY, defaults.concurrency)?,
            disable_after: self.millis(WEBHOOKS_DISABLE_AFTER_MS, defaults.disable_after)?,
            // A claim outlives the attempt it covers.
            claim: self.millis(WEBHOOKS_CLAIM_MS, defaults.claim.max(timeout * 2))?,
            poll: self.millis(WEBHOOKS_POLL_MS, defaults.poll)?,
            allow: self.webhook_allow_list()?,
            envelope: comet_webhooks::Envelope {
                app_id: self.get(APP_ID)?.unwrap_or_else(|| "comet".to_owned()),
                region: self.get(REGION)?.unwrap_or_else(|| "local".to_owned()),
            },
        })
    }

    /// The moderation role's Custom API (`COMET_MODERATION_CUSTOM_API_*`): its URL, checked by the SSRF guard
    /// with `COMET_WEBHOOKS_ALLOW_HOSTS`, basic auth (the password may be a `_FILE` secret) and the timeout
    /// (default 2 s, at most 15 s). `None` when no URL is set: every Custom API rule's failure policy decides.
    pub fn custom_api(&self) -> Result<Option<comet_moderation::CustomApiConfig>> {
        let Some(url) = self.get(MODERATION_CUSTOM_API_URL)? else { return Ok(None) };
        let guard = self.webhook_guard()?;
        guard.parse(&url).map_err(|error| anyhow::anyhow!("{MODERATION_CUSTOM_API_URL}: {error}"))?;
        let timeout = self.millis(MODERATION_CUSTOM_API_TIMEOUT_MS, comet_moderation::adapter::DEFAULT_TIMEOUT)?;
        if timeout.is_zero() || timeout > comet_webhooks::MAX_TIMEOUT {
            bail!("{MODERATION_CUSTOM_API_TIMEOUT_MS} must be 1 to {}", comet_webhooks::MAX_TIMEOUT.as_millis());
        }
        Ok(Some(comet_moderation::CustomApiConfig {
            url,
            username: self.get(MODERATION_CUSTOM_API_USERNAME)?,
            password: self.get(MODERATION_CUSTOM_API_PASSWORD)?,
            timeout,
            guard,
        }))
    }

    /// How every worker role consumes its events: `COMET_WORKER_CONCURRENCY` (events in hand at once per
    /// replica, one at a time per key) and `COMET_WORKER_SHUTDOWN_GRACE_MS` (how long they may finish after
    /// SIGTERM before the rest is handed back to the group).
    pub fn worker(&self) -> Result<comet_worker::WorkerConfig> {
        let defaults = comet_worker::WorkerConfig::default();
        let concurrency = usize::try_from(self.positive(WORKER_CONCURRENCY, defaults.concurrency as u64)?)
            .with_context(|| format!("{WORKER_CONCURRENCY} is too large"))?;
        let shutdown_grace = self.millis(WORKER_SHUTDOWN_GRACE_MS, defaults.shutdown_grace)?;
        Ok(comet_worker::WorkerConfig { concurrency, shutdown_grace, ..defaults })
    }

    /// The notifications role's settings: `COMET_NOTIFICATIONS_*`, and `COMET_WEBHOOKS_ALLOW_HOSTS` for the
    /// webhook provider (docs/configuration.md).
    pub fn notifications(&self) -> Result<comet_notifications::NotificationSettings> {
        let defaults = comet_notifications::NotificationSettings::default();
        let push_to_online = match self.get(NOTIFICATIONS_PUSH_TO_ONLINE)?.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => bail!("{NOTIFICATIONS_PUSH_TO_ONLINE}=`{other}`: use true or false"),
        };
        let max_group_members = self.positive(NOTIFICATIONS_MAX_GROUP_MEMBERS, defaults.policy.max_group_members)?;
        let url = |name: &str, value: Option<String>| -> Result<Option<String>> {
            match value {
                Some(text) if !(text.starts_with("https://") || text.starts_with("http://")) => {
                    bail!("{name}=`{text}` is not an http:// or https:// URL")
                }
                other => Ok(other),
            }
        };
        let extra_roots = match self.get(NOTIFICATIONS_CA_FILE)? {
            Some(path) => vec![
                std::fs::read_to_string(&path).with_context(|| format!("reading {NOTIFICATIONS_CA_FILE}={path}"))?,
            ],
            None => Vec::new(),
        };
        let count = |name: &str, default: usize| -> Result<usize> {
            usize::try_from(self.positive(name, default as u64)?).with_context(|| format!("{name} is too large"))
        };
        Ok(comet_notifications::NotificationSettings {
            policy: comet_notifications::decision::Policy { push_to_online, max_group_members },
            fcm_url: url(NOTIFICATIONS_FCM_URL, self.get(NOTIFICATIONS_FCM_URL)?)?.unwrap_or(defaults.fcm_url),
            apns_url: url(NOTIFICATIONS_APNS_URL, self.get(NOTIFICATIONS_APNS_URL)?)?,
            extra_roots,
            secrets_dir: self.get(NOTIFICATIONS_SECRETS_DIR)?.map_or(defaults.secrets_dir, PathBuf::from),
            timeout: self.millis(NOTIFICATIONS_TIMEOUT_MS, defaults.timeout)?,
            queue: count(NOTIFICATIONS_QUEUE, defaults.queue)?,
            per_provider: count(NOTIFICATIONS_PER_PROVIDER_CONCURRENCY, defaults.per_provider)?,
            attempts: u32::try_from(self.positive(NOTIFICATIONS_ATTEMPTS, u64::from(defaults.attempts))?)
                .with_context(|| format!("{NOTIFICATIONS_ATTEMPTS} is too large"))?,
            claim: self.millis(NOTIFICATIONS_CLAIM_MS, defaults.claim)?,
            poll: self.millis(NOTIFICATIONS_POLL_MS, defaults.poll)?,
            allow: self.webhook_allow_list()?,
            ..defaults
        })
    }

    /// Where Kafka is (`brokers`, from `COMET_KAFKA_BROKERS`) and how the event topics are created, with this
    /// process's client id.
    pub fn kafka(&self, brokers: String) -> Result<comet_bus::KafkaConfig> {
        Ok(comet_bus::KafkaConfig {
            brokers,
            partitions: self.number(KAFKA_PARTITIONS, 12)?,
            replication_factor: self.number(KAFKA_REPLICATION_FACTOR, 1)?,
            client_id: format!("comet-server-{}", std::process::id()),
        })
    }

    /// The gateway's Redis: `COMET_REDIS_URL` (one `redis://` URL, or comma-separated seed nodes with
    /// `COMET_REDIS_MODE=cluster`), with `COMET_REDIS_PASSWORD` filled into URLs that carry none.
    pub fn redis(&self) -> Result<Option<comet_gateway::RedisTarget>> {
        let Some(url) = self.get(REDIS_URL)? else { return Ok(None) };
        let cluster = match self.get(REDIS_MODE)?.as_deref() {
            None | Some("standalone") => false,
            Some("cluster") => true,
            Some(other) => bail!("{REDIS_MODE}=`{other}`: use standalone or cluster"),
        };
        let urls: Vec<&str> = url.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
        if !cluster && urls.len() != 1 {
            bail!("{REDIS_URL}=`{url}` names several servers: set {REDIS_MODE}=cluster for a Redis Cluster");
        }
        if let Some(bad) = urls.iter().find(|url| !url.starts_with("redis://")) {
            bail!("{REDIS_URL}: `{bad}` is not a redis:// URL (TLS, rediss://, is not supported yet)");
        }
        let password = self.get(REDIS_PASSWORD)?;
        let urls = urls
            .into_iter()
            .map(|url| match &password {
                Some(password) if !url_has_password(url) => with_password(url, password),
                _ => url.to_owned(),
            })
            .collect();
        Ok(Some(comet_gateway::RedisTarget { urls, cluster }))
    }
}

impl Settings {
    /// The limits of the app and admin ports, `COMET_HTTP_*`.
    pub fn http_limits(&self) -> Result<crate::http::Limits> {
        Ok(crate::http::Limits {
            header_timeout: self.millis(HTTP_HEADER_TIMEOUT_MS, std::time::Duration::from_secs(10))?,
            body_timeout: self.millis(HTTP_BODY_TIMEOUT_MS, std::time::Duration::from_secs(30))?,
            idle_timeout: self.millis(HTTP_IDLE_TIMEOUT_MS, std::time::Duration::from_secs(60))?,
            max_connections: usize::try_from(self.positive(HTTP_MAX_CONNECTIONS, 20_000)?)
                .with_context(|| format!("{HTTP_MAX_CONNECTIONS} is too large"))?
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        })
    }

    /// The API's bound on requests in flight and the callers' rates, `COMET_API_*`.
    pub fn admission(&self) -> Result<comet_api::AdmissionLimits> {
        let defaults = comet_api::AdmissionLimits::default();
        let max_in_flight = usize::try_from(self.positive(API_MAX_IN_FLIGHT, defaults.max_in_flight as u64)?)
            .with_context(|| format!("{API_MAX_IN_FLIGHT} is too large"))?;
        let queue_wait = match self.get(API_QUEUE_WAIT_MS)? {
            // 0: refuse at once when every place is taken.
            Some(text) if text == "0" => std::time::Duration::ZERO,
            _ => self.millis(API_QUEUE_WAIT_MS, defaults.queue_wait)?,
        };
        Ok(comet_api::AdmissionLimits {
            max_in_flight,
            queue_wait,
            user_rate: self.rate(API_USER_RATE, API_USER_BURST)?,
            key_rate: self.rate(API_KEY_RATE, API_KEY_BURST)?,
        })
    }

    /// A rate in requests per second (absent or 0: no limit) and its burst (default: two seconds' worth).
    fn rate(&self, rate: &str, burst: &str) -> Result<Option<comet_api::Rate>> {
        let per_second = match self.get(rate)? {
            None => return Ok(None),
            Some(text) => text.parse::<u32>().with_context(|| format!("{rate}=`{text}` is not a whole number"))?,
        };
        if per_second == 0 {
            return Ok(None);
        }
        let burst = self.positive(burst, u64::from(per_second) * 2)?;
        Ok(Some(comet_api::Rate { per_second: f64::from(per_second), burst: burst as f64 }))
    }

    /// How long a stop may take: after it, in-flight work is cut and the process exits 0.
    pub fn shutdown_timeout(&self) -> Result<std::time::Duration> {
        self.millis(SHUTDOWN_TIMEOUT_MS, std::time::Duration::from_secs(30))
    }
}

fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split_once('@').is_some_and(|(credentials, _)| credentials.contains(':'))
}

/// `url` with `password` (percent-encoded) after its user; a URL without a user gets `:password@`.
fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let encoded: String = password
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    match rest.split_once('@') {
        Some((user, host)) => format!("{scheme}://{user}:{encoded}@{host}"),
        None => format!("{scheme}://:{encoded}@{rest}"),
    }
}

/// This machine's name, for the ids that name this process (the relay's lease owner, a gateway node).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_else(|_| "comet".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_inserted_and_escaped() {
        assert_eq!(
            with_password("mysql://comet@tidb:4000/comet", "p@ss w"),
            "mysql://comet:p%40ss%20w@tidb:4000/comet"
        );
        assert_eq!(with_password("redis://redis:6379", "s3cret"), "redis://:s3cret@redis:6379");
        assert!(url_has_password("redis://:pw@redis:6379"));
        assert!(url_has_password("mysql://a:b@h/db"));
        assert!(!url_has_password("mysql://a@h/db"));
    }
}
