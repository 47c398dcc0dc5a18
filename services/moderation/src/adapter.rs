//! The Custom API adapter (CometChat's contract): a POST of the message and up to 10 earlier messages of its
//! conversation as plain text, with basic auth when configured, answered within the timeout (2 s) by
//! `{"isMatchingCondition": bool, "confidence": 0..1, "reason"?: string}`. Every request goes through the
//! SSRF-guarded client of `comet-webhooks` (the operator's allow-list admits private hosts); at most 2 KiB of
//! the answer is read.

use std::time::Duration;

use comet_model::Message;
use comet_webhooks::{Guard, GuardError, guarded_client, read_at_most};
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};

/// How long one request may take, connecting to the end of the answer (CometChat's 2 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of an answer read.
pub const MAX_ANSWER_BYTES: usize = 2048;

/// Where the Custom API is and how to reach it (the operator's settings).
#[derive(Clone)]
pub struct CustomApiConfig {
    pub url: String,
    pub username: Option<String>,
    /// Never printed (`Debug` leaves it out).
    pub password: Option<String>,
    pub timeout: Duration,
    pub guard: Guard,
}

impl std::fmt::Debug for CustomApiConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CustomApiConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The adapter's answer, as the contract has it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub is_matching_condition: bool,
    pub confidence: f64,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Why a request did not give an answer; `category` is the metrics' label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("no Custom API is configured (COMET_MODERATION_CUSTOM_API_URL)")]
    NotConfigured,
    #[error("refused by the SSRF guard: {0}")]
    Refused(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("the answer is not the contract's: {0}")]
    Answer(String),
}

impl AdapterError {
    pub fn category(&self) -> &'static str {
        match self {
            AdapterError::NotConfigured => "not_configured",
            AdapterError::Refused(_) => "refused",
            AdapterError::Timeout(_) => "timeout",
            AdapterError::Connect(_) => "connect",
            AdapterError::Status(status) if *status >= 500 => "status_5xx",
            AdapterError::Status(_) => "status_other",
            AdapterError::Answer(_) => "answer",
        }
    }

    /// Every category, for metrics that show zeros.
    pub const CATEGORIES: [&'static str; 7] =
        ["not_configured", "refused", "timeout", "connect", "status_5xx", "status_other", "answer"];
}

/// The Custom API client.
#[derive(Debug, Clone)]
pub struct CustomApi {
    config: Option<CustomApiConfig>,
    client: reqwest::Client,
}

impl CustomApi {
    /// A client for `config` (`None`: none configured, every ask fails with `NotConfigured` and the rules'
    /// failure policies decide).
    pub fn new(config: Option<CustomApiConfig>) -> Result<CustomApi, reqwest::Error> {
        let (guard, timeout) = match &config {
            Some(config) => (config.guard.clone(), config.timeout),
            None => (Guard::default(), DEFAULT_TIMEOUT),
        };
        let client = guarded_client(&guard, concat!("comet-server-moderation/", env!("CARGO_PKG_VERSION")), timeout)?;
        Ok(CustomApi { config, client })
    }

    /// The request body: the message in full, and the earlier messages' text, oldest first.
    pub fn request(message: &Message, context: &[Message]) -> Value {
        let text = |message: &Message| message.data.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
        json!({
            "message": {
                "id": message.id,
                "conversationId": message.conversation_id.display_id(),
                "sender": message.sender,
                "receiver": message.receiver,
                "receiverType": message.receiver_type.as_str(),
                "category": message.category.as_str(),
                "type": message.message_type,
                "data": message.data,
                "sentAt": message.sent_at.div_euclid(1000),
            },
            "contextMessages": context.iter().map(text).collect::<Vec<_>>(),
        })
    }

    /// Asks about `message`.
    pub async fn ask(&self, message: &Message, context: &[Message]) -> Result<Answer, AdapterError> {
        let Some(config) = &self.config else { return Err(AdapterError::NotConfigured) };
        let url =
            config.guard.parse(&config.url).map_err(|error: GuardError| AdapterError::Refused(error.to_string()))?;
        let mut request = self
            .client
            .post(url)
            .timeout(config.timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(Self::request(message, context).to_string());
        if let Some(username) = &config.username {
            request = request.basic_auth(username, config.password.as_deref());
        }
        let failed = |error: reqwest::Error| {
            if error.is_timeout() {
                AdapterError::Timeout(config.timeout)
            } else if let Some(guard) = guard_error(&error) {
                AdapterError::Refused(guard)
            } else {
                AdapterError::Connect(without_url(&error))
            }
        };
        let mut response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(AdapterError::Status(status));
        }
        let (body, read_error) = read_at_most(&mut response, MAX_ANSWER_BYTES).await;
        if let Some(error) = read_error {
            return Err(failed(error));
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|error| AdapterError::Answer(error.to_string()))?;
        if !(0.0..=1.0).contains(&answer.confidence) {
            return Err(AdapterError::Answer(format!("confidence {} is outside 0 to 1", answer.confidence)));
        }
        Ok(answer)
    }
}

/// The guard's refusal inside a client error (a name that resolved to a forbidden address).
fn guard_error(error: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(guard) = cause.downcast_ref::<GuardError>() {
            return Some(guard.to_string());
        }
        source = cause.source();
    }
    None
}

/// A client error's causes, without the URL (which the operator configured, but keep logs plain).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() { "the request failed".to_owned() } else { text }
}
