//! `/v3/webhooks`: the management API of webhooks (the full-access key, as the app, only), with CometChat's
//! fields and limits, plus comet-server's own: the signing secret and its rotation, the delivery log and replay.
//!
//! A webhook's `password` and its secrets are never shown; the secret is returned once, by the creation or the
//! rotation that made it.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::Millis;
use comet_store::{Delivery, DeliveryAttempt, DeliveryFilter, StoreError, WebhookRecord};
use comet_webhooks::guard::{GuardError, MAX_URL_CHARS};
use comet_webhooks::signature::new_secret;
use comet_webhooks::{MAX_WEBHOOKS, Trigger, WebhookConfigs};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, identify};
use crate::body::{Query, RawBody, data, page, parse, per_page};
use crate::{ApiError, AppState, now};

/// Longest webhook id and name (CometChat's limits).
pub const MAX_WEBHOOK_ID_CHARS: usize = 50;
/// Longest Basic auth username or password.
const MAX_CREDENTIAL_CHARS: usize = 255;
/// Most trigger ids one request may name.
const MAX_TRIGGER_IDS: usize = 50;
/// The default and the longest overlap of a rotated-out secret.
const DEFAULT_OVERLAP_SECONDS: i64 = 24 * 3600;
const MAX_OVERLAP_SECONDS: i64 = 7 * 24 * 3600;

/// The app itself, or 403: webhooks are the app's configuration.
async fn app(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match identify(state, headers).await? {
        Caller::App => Ok(()),
        Caller::AuthOnly => Caller::AuthOnly.full_access(),
        Caller::User(uid) => Err(ApiError::forbidden(
            "ERR_NOT_ALLOWED",
            format!("`{uid}` may not manage webhooks: use the full-access key without onBehalfOf"),
        )),
    }
}

/// Webhook configurations, through the one interface both implementations (MongoDB, relational) provide.
fn configs(state: &AppState) -> &dyn WebhookConfigs {
    state.webhooks.as_ref()
}

fn webhook_not_found(id: &str) -> ApiError {
    ApiError::not_found("ERR_WEBHOOK_NOT_FOUND", format!("webhook `{id}` does not exist"))
}

/// The webhook named in the path, after checking the caller.
async fn webhook(state: &AppState, headers: &HeaderMap, id: &str) -> Result<WebhookRecord, ApiError> {
    app(state, headers).await?;
    configs(state).get(id).await?.ok_or_else(|| webhook_not_found(id))
}

fn seconds(millis: Millis) -> i64 {
    millis.div_euclid(1000)
}

fn view(webhook: &WebhookRecord) -> Value {
    json!({
        "id": webhook.id,
        "name": webhook.name,
        "webhookURL": webhook.url,
        "url": webhook.url,
        "enabled": webhook.enabled,
        "useBasicAuth": webhook.use_basic_auth,
        "username": webhook.username,
        "triggers": webhook.triggers,
        "failingSince": webhook.failing_since.map(seconds),
        "disabledReason": webhook.disabled_reason,
        "createdAt": seconds(webhook.created_at),
        "updatedAt": seconds(webhook.updated_at),
    })
}

fn delivery_view(delivery: &Delivery) -> Value {
    json!({
        "id": delivery.id,
        "eventId": delivery.event_id,
        "trigger": delivery.trigger,
        "state": delivery.state.as_str(),
        "attempts": delivery.attempts,
        "nextAttemptAt": seconds(delivery.next_attempt_at),
        "lastStatus": delivery.last_status,
        "lastError": delivery.last_error,
        "createdAt": seconds(delivery.created_at),
        "finishedAt": delivery.finished_at.map(seconds),
    })
}

fn attempt_view(attempt: &DeliveryAttempt) -> Value {
    json!({
        "attempt": attempt.attempt,
        "attemptedAt": seconds(attempt.attempted_at),
        "status": attempt.status,
        "latencyMs": attempt.latency_ms,
        "response": attempt.response,
        "error": attempt.error,
    })
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_WEBHOOK_ID_CHARS
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "ERR_WEBHOOK_ID_INVALID",
            format!("id must be 1 to {MAX_WEBHOOK_ID_CHARS} letters, digits, `-` or `_`"),
        ))
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    crate::names::display_name(name, MAX_WEBHOOK_ID_CHARS).map(|_| ()).map_err(|_| {
        ApiError::bad_request(
            "ERR_WEBHOOK_NAME_INVALID",
            format!(
                "name must be 1 to {MAX_WEBHOOK_ID_CHARS} characters, not only white space, without control characters"
            ),
        )
    })
}

/// The URL checked by the SSRF guard (syntax, scheme, no credentials, no private address).
async fn check_url(state: &AppState, url: &str) -> Result<(), ApiError> {
    match state.config.webhook_guard.check(url).await {
        Ok(_) => Ok(()),
        Err(error @ GuardError::Forbidden { .. }) => {
            Err(ApiError::bad_request("ERR_WEBHOOK_URL_FORBIDDEN", error.to_string()))
        }
        Err(error) => Err(ApiError::bad_request(
            "ERR_WEBHOOK_URL_INVALID",
            format!("webhookURL (at most {MAX_URL_CHARS} characters): {error}"),
        )),
    }
}

/// Basic auth needs a username and a password, each at most 255 characters.
fn check_basic_auth(webhook: &WebhookRecord) -> Result<(), ApiError> {
    let fits = |value: &Option<String>| value.as_ref().is_none_or(|text| text.chars().count() <= MAX_CREDENTIAL_CHARS);
    let given = |value: &Option<String>| value.as_ref().is_some_and(|text| !text.is_empty());
    if !fits(&webhook.username) || !fits(&webhook.password) {
        return Err(ApiError::bad_request(
            "ERR_WEBHOOK_BASIC_AUTH_INVALID",
            format!("username and password may be at most {MAX_CREDENTIAL_CHARS} characters"),
        ));
    }
    if webhook.use_basic_auth && !(given(&webhook.username) && given(&webhook.password)) {
        return Err(ApiError::bad_request(
            "ERR_WEBHOOK_BASIC_AUTH_INVALID",
            "useBasicAuth needs a username and a password",
        ));
    }
    Ok(())
}

/// Trigger names parsed; an unknown one is refused by name.
fn triggers(names: &[String]) -> Result<BTreeSet<Trigger>, ApiError> {
    names
        .iter()
        .map(|name| {
            Trigger::parse(name).ok_or_else(|| {
                ApiError::bad_request("ERR_TRIGGER_INVALID", format!("`{name}` is not a trigger comet-server delivers"))
            })
        })
        .collect()
}

fn trigger_names(triggers: &BTreeSet<Trigger>) -> Vec<String> {
    let mut names: Vec<String> = triggers.iter().map(|trigger| trigger.as_str().to_owned()).collect();
    names.sort();
    names
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateWebhook {
    id: String,
    name: String,
    #[serde(rename = "webhookURL", alias = "url")]
    webhook_url: String,
    enabled: Option<bool>,
    use_basic_auth: Option<bool>,
    username: Option<String>,
    password: Option<String>,
    triggers: Option<Vec<String>>,
}

/// `POST /v3/webhooks`: registers a webhook; the answer carries its `signingSecret`, shown this once.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    let request: CreateWebhook = parse(&body)?;
    check_id(&request.id)?;
    check_name(&request.name)?;
    let triggers = triggers(request.triggers.as_deref().unwrap_or_default())?;
    let now = now();
    let secret = new_secret().map_err(|error| ApiError::Internal(error.to_string()))?;
    let webhook = WebhookRecord {
        enabled: request.enabled.unwrap_or(true),
        use_basic_auth: request.use_basic_auth.unwrap_or(false),
        username: request.username,
        password: request.password,
        ..WebhookRecord::new(request.id, request.name, request.webhook_url, trigger_names(&triggers), secret, now)
    };
    check_basic_auth(&webhook)?;
    check_url(&state, &webhook.url).await?;
    match configs(&state).create(&webhook, MAX_WEBHOOKS).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::bad_request(
                "ERR_WEBHOOKS_LIMIT_REACHED",
                format!("an app may have at most {MAX_WEBHOOKS} webhooks; delete one first"),
            ));
        }
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "ERR_WEBHOOK_ALREADY_EXISTS",
                format!("a webhook with id `{}` exists", webhook.id),
            ));
        }
        Err(error) => return Err(error.into()),
    }
    let mut shown = view(&webhook);
    shown["signingSecret"] = Value::from(webhook.secret);
    Ok(data(shown))
}

/// `GET /v3/webhooks`: every webhook, by id (at most 25, so one page).
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    let webhooks = configs(&state).list().await?;
    Ok(data(Value::Array(webhooks.iter().map(view).collect())))
}

/// `GET /v3/webhooks/{webhookId}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(data(view(&webhook(&state, &headers, &id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateWebhook {
    name: Option<String>,
    #[serde(rename = "webhookURL", alias = "url")]
    webhook_url: Option<String>,
    enabled: Option<bool>,
    use_basic_auth: Option<bool>,
    username: Option<String>,
    password: Option<String>,
}

/// `PUT /v3/webhooks/{webhookId}`: changes the fields given. Enabling a disabled webhook starts its failure
/// window afresh.
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let mut webhook = webhook(&state, &headers, &id).await?;
    let request: UpdateWebhook = parse(&body)?;
    if let Some(name) = request.name {
        check_name(&name)?;
        webhook.name = name;
    }
    if let Some(url) = request.webhook_url {
        check_url(&state, &url).await?;
        webhook.url = url;
    }
    if let Some(enabled) = request.enabled {
        if enabled && !webhook.enabled {
            webhook.failing_since = None;
            webhook.disabled_reason = None;
        }
        webhook.enabled = enabled;
    }
    webhook.use_basic_auth = request.use_basic_auth.unwrap_or(webhook.use_basic_auth);
    webhook.username = request.username.or(webhook.username);
    webhook.password = request.password.or(webhook.password);
    check_basic_auth(&webhook)?;
    webhook.updated_at = now();
    if !configs(&state).save(&webhook).await? {
        return Err(webhook_not_found(&id));
    }
    Ok(data(view(&webhook)))
}

/// `DELETE /v3/webhooks/{webhookId}`: the webhook, its pending deliveries and its log.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    if !configs(&state).delete(&id).await? {
        return Err(webhook_not_found(&id));
    }
    Ok(data(json!({ "success": true })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TriggerIds {
    trigger_ids: Vec<String>,
}

fn trigger_ids(body: &[u8]) -> Result<BTreeSet<Trigger>, ApiError> {
    let request: TriggerIds = parse(body)?;
    if request.trigger_ids.is_empty() || request.trigger_ids.len() > MAX_TRIGGER_IDS {
        return Err(ApiError::bad_request(
            "ERR_TRIGGER_IDS_INVALID",
            format!("triggerIds must list 1 to {MAX_TRIGGER_IDS} triggers"),
        ));
    }
    triggers(&request.trigger_ids)
}

fn triggers_view(webhook: &WebhookRecord) -> Response {
    let items = webhook.triggers.iter().map(|trigger| json!({ "trigger": trigger, "webhookId": webhook.id }));
    data(Value::Array(items.collect()))
}

/// Adds (`add`) or removes the request's triggers and saves the webhook.
async fn change_triggers(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    add: bool,
) -> Result<Response, ApiError> {
    let mut webhook = webhook(state, headers, id).await?;
    let named = trigger_ids(body)?;
    let mut current = triggers(&webhook.triggers)?;
    if add {
        current.extend(named);
    } else {
        current.retain(|trigger| !named.contains(trigger));
    }
    webhook.triggers = trigger_names(&current);
    webhook.updated_at = now();
    if !configs(state).save(&webhook).await? {
        return Err(webhook_not_found(id));
    }
    Ok(triggers_view(&webhook))
}

/// `POST /v3/webhooks/{webhookId}/triggers` with `{"triggerIds": […]}`: the webhook's triggers afterwards.
pub async fn add_triggers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    change_triggers(&state, &headers, &id, &body, true).await
}

/// `DELETE /v3/webhooks/{webhookId}/triggers` with `{"triggerIds": […]}`: removing one not set succeeds.
pub async fn remove_triggers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    change_triggers(&state, &headers, &id, &body, false).await
}

/// `GET /v3/webhooks/{webhookId}/triggers`.
pub async fn list_triggers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(triggers_view(&webhook(&state, &headers, &id).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rotate {
    overlap_seconds: Option<i64>,
}

/// `POST /v3/webhooks/{webhookId}/secret/rotate`: a new secret, shown this once; the old one keeps signing
/// beside it for `overlapSeconds` (default a day, at most a week; 0 ends it now).
pub async fn rotate_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    webhook(&state, &headers, &id).await?;
    let request: Rotate = if body.is_empty() { Rotate::default() } else { parse(&body)? };
    let overlap = request.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        return Err(ApiError::bad_request(
            "ERR_OVERLAP_INVALID",
            format!("overlapSeconds must be 0 to {MAX_OVERLAP_SECONDS}"),
        ));
    }
    let now = now();
    let until = now + overlap * 1000;
    let secret = new_secret().map_err(|error| ApiError::Internal(error.to_string()))?;
    if !configs(&state).rotate(&id, &secret, until, now).await? {
        return Err(webhook_not_found(&id));
    }
    Ok(data(json!({ "signingSecret": secret, "previousSecretExpiresAt": seconds(until) })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListDeliveries {
    per_page: Option<u32>,
    /// Unix seconds: deliveries made since then (inclusive).
    since: Option<i64>,
    /// Unix seconds: deliveries made until then (inclusive).
    until: Option<i64>,
    /// The previous page's `meta.pagination.next`.
    before: Option<i64>,
}

/// `GET /v3/webhooks/{webhookId}/deliveries`: the delivery log, newest first.
pub async fn list_deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ListDeliveries>,
) -> Result<Response, ApiError> {
    webhook(&state, &headers, &id).await?;
    let limit = per_page(query.per_page)?;
    let (since, until) = range(query.since, query.until)?;
    let filter = DeliveryFilter { since: Some(since), until: Some(until), before: query.before };
    let deliveries = state.store.webhook_deliveries(&id, filter, limit).await?;
    let next = if deliveries.len() == limit as usize { deliveries.last().map(|last| last.created_at) } else { None };
    let items = deliveries.iter().map(delivery_view).collect();
    Ok(page(items, json!({ "pagination": { "perPage": limit, "next": next } })))
}

/// `since`/`until` (Unix seconds, both optional) as a millisecond range; 400 when it is empty or negative.
fn range(since: Option<i64>, until: Option<i64>) -> Result<(Millis, Millis), ApiError> {
    let since = since.unwrap_or(0);
    let until = until.unwrap_or(i64::MAX / 1000);
    if since < 0 || until < since {
        return Err(ApiError::bad_request("ERR_RANGE_INVALID", "since and until are Unix seconds with since <= until"));
    }
    Ok((since.saturating_mul(1000), until.saturating_mul(1000).saturating_add(999)))
}

/// `GET /v3/webhooks/{webhookId}/deliveries/{deliveryId}`: one delivery, its payload and every attempt.
pub async fn get_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    webhook(&state, &headers, &id).await?;
    let (delivery, attempts) = state.store.webhook_delivery(&id, &delivery_id).await?.ok_or_else(|| {
        ApiError::not_found("ERR_DELIVERY_NOT_FOUND", format!("webhook `{id}` has no delivery `{delivery_id}`"))
    })?;
    let mut shown = delivery_view(&delivery);
    shown["payload"] = serde_json::from_str(&delivery.payload).unwrap_or(Value::String(delivery.payload.clone()));
    shown["attemptLog"] = Value::Array(attempts.iter().map(attempt_view).collect());
    Ok(data(shown))
}

/// `POST /v3/webhooks/{webhookId}/deliveries/{deliveryId}/replay`: sends it again now, with the same
/// `webhook-id` and a fresh retry schedule.
pub async fn replay_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    webhook(&state, &headers, &id).await?;
    let replayed = state.store.replay_webhook_deliveries(&id, Some(&delivery_id), 0, 0, now()).await?;
    if replayed == 0 {
        return Err(ApiError::not_found(
            "ERR_DELIVERY_NOT_FOUND",
            format!("webhook `{id}` has no delivery `{delivery_id}`"),
        ));
    }
    Ok(data(json!({ "replayed": replayed })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplayRange {
    since: i64,
    until: Option<i64>,
}

/// `POST /v3/webhooks/{webhookId}/deliveries/replay` with `{"since", "until"}` (Unix seconds): every
/// delivery made in that range, again.
pub async fn replay_range(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    webhook(&state, &headers, &id).await?;
    let request: ReplayRange = parse(&body)?;
    let (since, until) = range(Some(request.since), request.until)?;
    let replayed = state.store.replay_webhook_deliveries(&id, None, since, until, now()).await?;
    Ok(data(json!({ "replayed": replayed })))
}
