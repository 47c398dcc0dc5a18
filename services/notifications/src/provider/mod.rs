//! The push providers behind one trait: FCM HTTP v1 ([`fcm`]), APNs over HTTP/2 ([`apns`]) and the webhook
//! provider ([`webhook`]). A provider turns one [`Push`] into one request and its answer into an [`Answer`],
//! which drives the push's state: delivered, the token gone (deleted), try again later, or failed for good.

pub mod apns;
pub mod fcm;
pub mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use apns::{Apns, ApnsSettings};
pub use fcm::{Fcm, FcmSettings, ServiceAccount};
pub use webhook::{WebhookProvider, WebhookProviderSettings};

/// One push to one device, as stored in a push row's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Push {
    /// The push row's id: the webhook provider's `webhook-id`.
    pub id: String,
    pub uid: String,
    pub token: String,
    /// `ios`, `ios_voip`, `android`, `web`.
    pub platform: String,
    pub title: String,
    pub body: String,
    /// The recipient's unread count.
    pub badge: Option<i64>,
    /// Stable per message: an edit or a delete replaces the push, a duplicate collapses into it.
    pub collapse_id: String,
    /// String values only (FCM's `data` takes nothing else).
    pub data: BTreeMap<String, String>,
}

/// What a provider said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Delivered {
        status: u16,
    },
    /// The token is invalid or unregistered: delete it.
    TokenGone {
        status: u16,
        reason: String,
    },
    /// Throttled, down or failing for now: try again, not before `after` when the provider said so.
    Retry {
        status: Option<u16>,
        reason: String,
        after: Option<Duration>,
    },
    /// Refused for good (a bad request, bad credentials).
    Failed {
        status: Option<u16>,
        reason: String,
    },
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Delivered { status } | Answer::TokenGone { status, .. } => Some(*status),
            Answer::Retry { status, .. } | Answer::Failed { status, .. } => *status,
        }
    }

    /// A transport error (no answer): retried.
    pub(crate) fn unreachable(error: &reqwest::Error) -> Answer {
        let reason = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connect"
        } else {
            "transport"
        };
        Answer::Retry { status: None, reason: reason.to_owned(), after: None }
    }

    /// The metrics' and the log's reason label.
    pub fn reason(&self) -> &str {
        match self {
            Answer::Delivered { .. } => "delivered",
            Answer::TokenGone { reason, .. } | Answer::Retry { reason, .. } | Answer::Failed { reason, .. } => reason,
        }
    }
}

/// A push provider.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// `fcm`, `apns` or `webhook`: the metrics' `provider` label.
    fn kind(&self) -> &'static str;
    fn send<'a>(&'a self, push: &'a Push) -> BoxFuture<'a, Answer>;
}

/// Why a provider could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the service account: {0}")]
    ServiceAccount(String),
    #[error("the key: {0}")]
    Key(#[from] crate::jwt::KeyError),
    #[error("the URL `{0}` is not valid")]
    Url(String),
    #[error("the webhook URL: {0}")]
    Guard(#[from] comet_webhooks::GuardError),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The answer's `Retry-After` (seconds).
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(comet_webhooks::schedule::retry_after)
}

/// What a provider that did not accept a push answered: its status, `Retry-After` and the start of its body.
pub(crate) struct Refusal {
    pub status: u16,
    pub after: Option<Duration>,
    pub body: serde_json::Value,
}

/// Sends a push: `Err` with the answer when that settles it (accepted, or the provider unreachable), `Ok` with
/// the refusal for the provider's own reading of its error codes.
pub(crate) async fn send_push(request: reqwest::RequestBuilder) -> Result<Refusal, Answer> {
    let response = request.send().await.map_err(|error| Answer::unreachable(&error))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Err(Answer::Delivered { status });
    }
    let after = retry_after(&response);
    Ok(Refusal { status, after, body: error_body(response).await })
}

/// At most this much of an error body is read.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The start of a response's body, for its error fields.
pub(crate) async fn error_body(mut response: reqwest::Response) -> serde_json::Value {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY {
            return serde_json::Value::Null;
        }
    }
    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
}
