//! Firebase Cloud Messaging, HTTP v1 API.
//!
//! - Authentication: the service account's RS256-signed JWT assertion (`iss` the account's `client_email`,
//!   `scope` firebase.messaging, `aud` its `token_uri`, one hour) exchanged at `token_uri` for an OAuth 2 access
//!   token (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`), cached until a minute before it expires;
//!   concurrent sends wait for the one exchange in flight.
//! - Send: `POST {base}/v1/projects/{project_id}/messages:send` with `{"message": {token, notification, data,
//!   android, apns}}`; `data` holds strings only. The collapse id is Android's `collapse_key` and notification
//!   `tag` and the APNs `apns-collapse-id`, so an edit or delete replaces the push.
//! - Answers: `UNREGISTERED` (404) and `SENDER_ID_MISMATCH` delete the token; `QUOTA_EXCEEDED` (429),
//!   `UNAVAILABLE` (503) and `INTERNAL` (500) are retried honouring `Retry-After`; 401 drops the cached access
//!   token and is retried once a new one is fetched; other answers fail the push.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use comet_model::Millis;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Answer, Provider, ProviderError, Push, Refusal, retry_after, send_push};
use crate::clock::Clock;
use crate::jwt::Rs256;

/// Google's endpoint; operators behind a proxy (and the tests) set another.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// An access token is renewed this long before Google says it expires.
const RENEW_BEFORE_MS: Millis = 60_000;

/// The fields of a service-account JSON file the provider uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    pub fn parse(json: &str) -> Result<ServiceAccount, ProviderError> {
        serde_json::from_str(json).map_err(|error| {
            // serde's message names the field, never its value.
            ProviderError::ServiceAccount(format!("not a service-account JSON file: {}", error.classify_message()))
        })
    }
}

trait ClassifyMessage {
    fn classify_message(&self) -> &'static str;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a field is missing or has the wrong type",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
            serde_json::error::Category::Io => "unreadable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FcmSettings {
    pub base_url: String,
    pub timeout: Duration,
}

impl Default for FcmSettings {
    fn default() -> FcmSettings {
        FcmSettings { base_url: DEFAULT_BASE_URL.to_owned(), timeout: Duration::from_secs(10) }
    }
}

#[derive(Debug)]
struct AccessToken {
    token: String,
    renew_at: Millis,
}

/// One FCM project's sender.
#[derive(Debug)]
pub struct Fcm {
    client: reqwest::Client,
    account: ServiceAccount,
    signer: Rs256,
    send_url: String,
    clock: Arc<dyn Clock>,
    access: Mutex<Option<AccessToken>>,
    exchanges: AtomicU64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: i64,
}

impl Fcm {
    pub fn new(account: ServiceAccount, settings: &FcmSettings, clock: Arc<dyn Clock>) -> Result<Fcm, ProviderError> {
        let signer = Rs256::from_pem(&account.private_key)?;
        let base = settings.base_url.trim_end_matches('/');
        reqwest::Url::parse(base).map_err(|_| ProviderError::Url(base.to_owned()))?;
        reqwest::Url::parse(&account.token_uri).map_err(|_| ProviderError::Url(account.token_uri.clone()))?;
        let send_url = format!("{base}/v1/projects/{}/messages:send", account.project_id);
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("comet-server-notifications/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Fcm { client, account, signer, send_url, clock, access: Mutex::new(None), exchanges: AtomicU64::new(0) })
    }

    /// How many times an access token was fetched.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// The cached access token, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, Answer> {
        let mut access = self.access.lock().await;
        let now = self.clock.now();
        if let Some(cached) = access.as_ref().filter(|cached| cached.renew_at > now) {
            return Ok(cached.token.clone());
        }
        let seconds = now / 1000;
        let claims = json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": seconds,
            "exp": seconds + 3600,
        });
        let assertion = self
            .signer
            .sign(&json!({"alg": "RS256", "typ": "JWT"}), &claims)
            .map_err(|error| Answer::Failed { status: None, reason: format!("signing: {error}") })?;
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let response = self
            .client
            .post(&self.account.token_uri)
            .form(&[("grant_type", GRANT_TYPE), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|error| Answer::unreachable(&error))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let after = retry_after(&response);
            return Err(match status {
                429 | 500..=599 => Answer::Retry { status: Some(status), reason: "token_endpoint".to_owned(), after },
                _ => Answer::Failed { status: Some(status), reason: "token_refused".to_owned() },
            });
        }
        let answer: TokenAnswer = response.json().await.map_err(|_| Answer::Retry {
            status: Some(status),
            reason: "token_answer".to_owned(),
            after: None,
        })?;
        let renew_at = now + answer.expires_in.saturating_mul(1000) - RENEW_BEFORE_MS;
        *access = Some(AccessToken { token: answer.access_token.clone(), renew_at });
        Ok(answer.access_token)
    }

    fn message(push: &Push) -> Value {
        let mut message = json!({
            "token": push.token,
            "notification": {"title": push.title, "body": push.body},
            "data": push.data,
            "android": {
                "collapse_key": push.collapse_id,
                "priority": "high",
                "notification": {"tag": push.collapse_id},
            },
            "apns": {
                "headers": {"apns-collapse-id": push.collapse_id},
                "payload": {"aps": {}},
            },
        });
        if let Some(badge) = push.badge {
            message["android"]["notification"]["notification_count"] = json!(badge);
            message["apns"]["payload"]["aps"]["badge"] = json!(badge);
        }
        json!({ "message": message })
    }

    async fn deliver(&self, push: &Push) -> Answer {
        let token = match self.access_token().await {
            Ok(token) => token,
            Err(answer) => return answer,
        };
        let request = self.client.post(&self.send_url).bearer_auth(token).json(&Fcm::message(push));
        let Refusal { status, after, body } = match send_push(request).await {
            Ok(refusal) => refusal,
            Err(answer) => return answer,
        };
        let code = error_code(&body);
        match (status, code.as_deref()) {
            (_, Some("UNREGISTERED" | "SENDER_ID_MISMATCH")) | (404, _) => {
                Answer::TokenGone { status, reason: code.unwrap_or_else(|| "not_found".to_owned()).to_lowercase() }
            }
            (401, _) => {
                *self.access.lock().await = None;
                Answer::Retry { status: Some(status), reason: "unauthenticated".to_owned(), after: None }
            }
            (429 | 500..=599, _) => Answer::Retry {
                status: Some(status),
                reason: code.unwrap_or_else(|| "unavailable".to_owned()).to_lowercase(),
                after,
            },
            _ => Answer::Failed {
                status: Some(status),
                reason: code.unwrap_or_else(|| "refused".to_owned()).to_lowercase(),
            },
        }
    }
}

/// FCM's error code: the `FcmError` detail's `errorCode`, else the error's `status`.
fn error_code(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    let detail = error.get("details").and_then(Value::as_array).and_then(|details| {
        details.iter().find_map(|detail| detail.get("errorCode").and_then(Value::as_str).map(str::to_owned))
    });
    detail.or_else(|| error.get("status").and_then(Value::as_str).map(str::to_owned))
}

impl Provider for Fcm {
    fn kind(&self) -> &'static str {
        "fcm"
    }

    fn send<'a>(&'a self, push: &'a Push) -> BoxFuture<'a, Answer> {
        Box::pin(self.deliver(push))
    }
}
