//! The webhook provider: one signed POST per recipient and device to the operator's endpoint, which pushes
//! through whatever it likes. The body is the push as JSON (`id`, `uid`, `token`, `platform`, `title`, `body`,
//! `badge`, `collapseId`, `data`); the headers are Standard Webhooks' (`webhook-id` = the push's stable id,
//! `webhook-timestamp`, `webhook-signature` with the provider's `whsec_` secret), through the webhooks role's
//! SSRF-guarded client (the operator's `COMET_WEBHOOKS_ALLOW_HOSTS` admits private receivers).
//!
//! Answers: 2xx delivered; 410 means the receiver forgot the token (deleted); 429 and 5xx are retried with
//! `Retry-After`; anything else fails the push.

use std::sync::Arc;
use std::time::Duration;

use comet_webhooks::Guard;
use comet_webhooks::signature::signature_header;
use futures::future::BoxFuture;

use super::{Answer, Provider, ProviderError, Push, retry_after};
use crate::clock::Clock;

#[derive(Clone)]
pub struct WebhookProviderSettings {
    pub url: String,
    /// The `whsec_` signing secret.
    pub secret: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookProviderSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("WebhookProviderSettings").field("url", &self.url).finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct WebhookProvider {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: String,
    clock: Arc<dyn Clock>,
}

impl WebhookProvider {
    pub fn new(
        settings: &WebhookProviderSettings,
        guard: &Guard,
        clock: Arc<dyn Clock>,
    ) -> Result<WebhookProvider, ProviderError> {
        let url = guard.parse(&settings.url)?;
        let client = guard
            .client_builder()
            .timeout(settings.timeout)
            .user_agent(concat!("comet-server-notifications/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebhookProvider { client, url, secret: settings.secret.clone(), clock })
    }

    async fn deliver(&self, push: &Push) -> Answer {
        let body = match serde_json::to_vec(push) {
            Ok(body) => body,
            Err(error) => return Answer::Failed { status: None, reason: format!("encoding: {error}") },
        };
        let timestamp = self.clock.now().div_euclid(1000);
        let signature = match signature_header([self.secret.as_str()], &push.id, timestamp, &body) {
            Ok(signature) => signature,
            Err(error) => return Answer::Failed { status: None, reason: error.to_string() },
        };
        let request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", push.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Answer::unreachable(&error),
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => Answer::Delivered { status },
            410 => Answer::TokenGone { status, reason: "gone".to_owned() },
            429 | 500..=599 => {
                Answer::Retry { status: Some(status), reason: format!("http_{status}"), after: retry_after(&response) }
            }
            _ => Answer::Failed { status: Some(status), reason: format!("http_{status}") },
        }
    }
}

impl Provider for WebhookProvider {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, push: &'a Push) -> BoxFuture<'a, Answer> {
        Box::pin(self.deliver(push))
    }
}
