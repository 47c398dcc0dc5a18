//! Apple Push Notification service, the HTTP/2 provider API with token-based authentication.
//!
//! - Authentication: an ES256 provider token signed with the team's `.p8` key (header `kid` = key id, claims
//!   `iss` = team id, `iat`), sent as `authorization: bearer …`. Apple refuses tokens older than an hour and
//!   asks that they be renewed at most every 20 minutes: one token serves every request until it is
//!   [`TOKEN_LIFETIME_MS`] old, then the next request signs a new one (the clock is injected, so tests move it).
//! - Send: `POST {base}/3/device/{token}` over HTTP/2 with `apns-topic` (the bundle id; `.voip` appended for
//!   VoIP tokens), `apns-push-type` (`alert` or `voip`), `apns-collapse-id` (stable per message: an edit or a
//!   delete replaces the push), `apns-priority: 10`; body `{"aps": {"alert": {title, body}, "badge", "sound"}}`
//!   plus the data fields.
//! - Answers: 410 (`Unregistered`), 400 `BadDeviceToken` and `DeviceTokenNotForTopic` delete the token; 429,
//!   500 and 503 are retried (with `Retry-After` when sent); 403 `ExpiredProviderToken` drops the token and
//!   retries; anything else fails the push with Apple's `reason`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use comet_model::Millis;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Answer, Provider, ProviderError, Push, Refusal, send_push};
use crate::clock::Clock;
use crate::jwt::Es256;

pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";
/// A provider token is re-signed once it is this old (Apple: not more often than every 20 minutes, never older
/// than 60).
pub const TOKEN_LIFETIME_MS: Millis = 50 * 60 * 1000;

#[derive(Clone)]
pub struct ApnsSettings {
    /// The `.p8` key's PEM text.
    pub key_pem: String,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id: the `apns-topic`.
    pub topic: String,
    /// Where requests go: [`PRODUCTION_URL`], [`SANDBOX_URL`], or an operator's proxy.
    pub base_url: String,
    pub timeout: Duration,
    /// Extra trusted roots (PEM), for a proxy with its own CA and for tests.
    pub extra_roots: Vec<String>,
}

impl std::fmt::Debug for ApnsSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ApnsSettings")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("topic", &self.topic)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct ProviderToken {
    token: String,
    issued_at: Millis,
}

/// One APNs key's sender.
#[derive(Debug)]
pub struct Apns {
    client: reqwest::Client,
    signer: Es256,
    key_id: String,
    team_id: String,
    topic: String,
    base_url: String,
    clock: Arc<dyn Clock>,
    token: Mutex<Option<ProviderToken>>,
    signings: AtomicU64,
}

impl Apns {
    pub fn new(settings: &ApnsSettings, clock: Arc<dyn Clock>) -> Result<Apns, ProviderError> {
        let signer = Es256::from_pem(&settings.key_pem)?;
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&base_url).map_err(|_| ProviderError::Url(base_url.clone()))?;
        let mut builder = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("comet-server-notifications/", env!("CARGO_PKG_VERSION")));
        for root in &settings.extra_roots {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes())?);
        }
        Ok(Apns {
            client: builder.build()?,
            signer,
            key_id: settings.key_id.clone(),
            team_id: settings.team_id.clone(),
            topic: settings.topic.clone(),
            base_url,
            clock,
            token: Mutex::new(None),
            signings: AtomicU64::new(0),
        })
    }

    /// How many provider tokens were signed.
    pub fn signings(&self) -> u64 {
        self.signings.load(Ordering::Relaxed)
    }

    async fn provider_token(&self) -> Result<String, Answer> {
        let mut token = self.token.lock().await;
        let now = self.clock.now();
        if let Some(current) = token.as_ref().filter(|current| now - current.issued_at < TOKEN_LIFETIME_MS) {
            return Ok(current.token.clone());
        }
        let signed = self
            .signer
            .sign(&json!({"alg": "ES256", "kid": self.key_id}), &json!({"iss": self.team_id, "iat": now / 1000}))
            .map_err(|error| Answer::Failed { status: None, reason: format!("signing: {error}") })?;
        self.signings.fetch_add(1, Ordering::Relaxed);
        *token = Some(ProviderToken { token: signed.clone(), issued_at: now });
        Ok(signed)
    }

    fn payload(push: &Push) -> Value {
        let mut aps = json!({"alert": {"title": push.title, "body": push.body}, "sound": "default"});
        if let Some(badge) = push.badge {
            aps["badge"] = json!(badge);
        }
        let mut payload = json!({ "aps": aps });
        for (key, value) in &push.data {
            if key != "aps" {
                payload[key] = json!(value);
            }
        }
        payload
    }

    async fn deliver(&self, push: &Push) -> Answer {
        let token = match self.provider_token().await {
            Ok(token) => token,
            Err(answer) => return answer,
        };
        let voip = push.platform == "ios_voip";
        let topic = if voip { format!("{}.voip", self.topic) } else { self.topic.clone() };
        let url = format!("{}/3/device/{}", self.base_url, push.token);
        let request = self
            .client
            .post(url)
            .header(reqwest::header::AUTHORIZATION, format!("bearer {token}"))
            .header("apns-topic", topic)
            .header("apns-push-type", if voip { "voip" } else { "alert" })
            .header("apns-collapse-id", push.collapse_id.as_str())
            .header("apns-priority", "10")
            .json(&Apns::payload(push));
        let Refusal { status, after, body } = match send_push(request).await {
            Ok(refusal) => refusal,
            Err(answer) => return answer,
        };
        let reason = body.get("reason").and_then(Value::as_str).unwrap_or("unknown").to_owned();
        match (status, reason.as_str()) {
            (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => Answer::TokenGone { status, reason },
            (403, "ExpiredProviderToken") => {
                *self.token.lock().await = None;
                Answer::Retry { status: Some(status), reason, after: None }
            }
            (429 | 500 | 503, _) => Answer::Retry { status: Some(status), reason, after },
            _ => Answer::Failed { status: Some(status), reason },
        }
    }
}

impl Provider for Apns {
    fn kind(&self) -> &'static str {
        "apns"
    }

    fn send<'a>(&'a self, push: &'a Push) -> BoxFuture<'a, Answer> {
        Box::pin(self.deliver(push))
    }
}
