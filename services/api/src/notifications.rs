//! `/v3/notifications`: push tokens, preferences and mutes of the calling user (an auth token, or the
//! full-access key with `onBehalfOf`: only ever the caller's own), and the app's providers, defaults and
//! decision log (the full-access key, as the app, only).
//!
//! Providers name their credentials by reference (secret file names in `COMET_NOTIFICATIONS_SECRETS_DIR`), so a
//! view never holds a credential; a push token is shown to its owner only by its last characters.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::{ConversationId, ConversationKind, Guid, Millis, Uid};
use comet_notifications::preferences::{Defaults, Effective, Preferences, Quiet};
use comet_notifications::registry::is_secret_name;
use comet_notifications::{MAX_TOKENS_PER_USER, PreferenceStore, ProviderConfig, is_valid_token, token_hash};
use comet_store::{LogEntry, LogFilter, ProviderRecord, PushToken, StoreError, TokenRegistration};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, identify};
use crate::body::{Path, Query, RawBody, data, page, parse, per_page};
use crate::{ApiError, AppState, now};

/// Platforms a token may be registered for.
const PLATFORMS: [&str; 4] = ["ios", "ios_voip", "android", "web"];
/// Longest session id and provider id.
const MAX_ID_CHARS: usize = 100;
/// The longest mute: ten years.
const MAX_MUTE_MS: Millis = 10 * 365 * 24 * 3600 * 1000;

/// A request body that must be a JSON object (serde reads a struct from an array too: `[null, null]` would be an
/// empty preference document).
fn parse_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some() && first != Some(&b'{') {
        return Err(ApiError::bad_request("ERR_BODY_INVALID", "the body must be a JSON object"));
    }
    parse(bytes)
}

fn preferences(state: &AppState) -> &dyn PreferenceStore {
    state.notifications.as_ref()
}

/// The acting user.
async fn user(state: &AppState, headers: &HeaderMap) -> Result<Uid, ApiError> {
    Ok(identify(state, headers).await?.user()?.clone())
}

/// The app itself, or 403.
async fn app(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match identify(state, headers).await? {
        Caller::App => Ok(()),
        Caller::AuthOnly => Caller::AuthOnly.full_access(),
        Caller::User(uid) => Err(ApiError::forbidden(
            "ERR_NOT_ALLOWED",
            format!("`{uid}` may not manage push providers, defaults or the log: use the full-access key"),
        )),
    }
}

fn seconds(millis: Millis) -> i64 {
    millis.div_euclid(1000)
}

fn check_id(id: &str, code: &'static str, what: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(code, format!("{what} must be 1 to {MAX_ID_CHARS} letters, digits, `-`, `_` or `.`")))
    }
}

fn token_view(token: &PushToken) -> Value {
    let shown: String = token.token.chars().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
    json!({
        "id": token.id,
        "platform": token.platform,
        "providerId": token.provider_id,
        "sessionId": token.session,
        "tokenEnd": shown,
        "createdAt": seconds(token.created_at),
        "updatedAt": seconds(token.updated_at),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterToken {
    token: String,
    platform: String,
    session_id: String,
    provider_id: Option<String>,
}

fn provider_not_found(id: &str) -> ApiError {
    ApiError::not_found("ERR_PUSH_PROVIDER_NOT_FOUND", format!("push provider `{id}` does not exist"))
}

/// `POST /v3/notifications/tokens`: the calling user's token for one session (replacing the session's earlier
/// token; a token another user registered moves to this one).
pub async fn register_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    let request: RegisterToken = parse_object(&body)?;
    if !is_valid_token(&request.token) {
        return Err(ApiError::bad_request(
            "ERR_PUSH_TOKEN_INVALID",
            format!(
                "token must be 1 to {} visible ASCII characters without `/`, `?`, `#` or `%`",
                comet_notifications::MAX_TOKEN_CHARS
            ),
        ));
    }
    if !PLATFORMS.contains(&request.platform.as_str()) {
        return Err(ApiError::bad_request(
            "ERR_PUSH_PLATFORM_INVALID",
            format!("platform must be one of {}", PLATFORMS.join(", ")),
        ));
    }
    check_id(&request.session_id, "ERR_PUSH_SESSION_INVALID", "sessionId")?;
    let providers = state.store.list_push_providers().await?;
    let provider = match &request.provider_id {
        Some(id) => providers.iter().find(|provider| provider.id == *id).ok_or_else(|| provider_not_found(id))?,
        None => providers.iter().find(|provider| provider.is_default).ok_or_else(|| {
            ApiError::not_found("ERR_PUSH_PROVIDER_NOT_FOUND", "no provider given and no default provider configured")
        })?,
    };
    if provider.kind == "apns" && !request.platform.starts_with("ios") {
        return Err(ApiError::bad_request(
            "ERR_PUSH_PLATFORM_INVALID",
            format!("provider `{}` is APNs: the platform must be ios or ios_voip", provider.id),
        ));
    }
    let at = now();
    let token = PushToken {
        id: comet_model::new_id(),
        uid,
        session: request.session_id,
        platform: request.platform,
        provider_id: provider.id.clone(),
        token_hash: token_hash(&request.token),
        token: request.token,
        created_at: at,
        updated_at: at,
    };
    match state.store.register_push_token(&token, MAX_TOKENS_PER_USER).await? {
        TokenRegistration::Saved(saved) => Ok(data(token_view(&saved))),
        TokenRegistration::TooMany => Err(ApiError::bad_request(
            "ERR_PUSH_TOKENS_LIMIT_REACHED",
            format!("a user may have at most {MAX_TOKENS_PER_USER} push tokens; delete one first"),
        )),
    }
}

/// `GET /v3/notifications/tokens`: the calling user's tokens.
pub async fn list_tokens(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    let tokens = state.store.push_tokens_of(std::slice::from_ref(&uid)).await?;
    Ok(data(Value::Array(tokens.iter().map(token_view).collect())))
}

/// `DELETE /v3/notifications/tokens/{tokenId}`: one of the calling user's tokens.
pub async fn delete_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    if state.store.delete_push_token(&uid, &id).await? {
        Ok(data(json!({ "success": true })))
    } else {
        Err(ApiError::not_found("ERR_PUSH_TOKEN_NOT_FOUND", format!("`{uid}` has no push token `{id}`")))
    }
}

async fn defaults(state: &AppState) -> Result<Defaults, ApiError> {
    Ok(preferences(state).defaults().await?.unwrap_or_default())
}

fn effective_view(effective: &Effective, quiet_hours: Option<&comet_notifications::preferences::QuietHours>) -> Value {
    json!({
        "dnd": effective.dnd,
        "privacy": effective.privacy,
        "mentionBypass": effective.mention_bypass,
        "reactions": effective.reactions,
        "quietHours": quiet_hours,
    })
}

async fn preferences_view(state: &AppState, uid: &Uid) -> Result<Value, ApiError> {
    let defaults = defaults(state).await?;
    let mine = preferences(state)
        .preferences_of(std::slice::from_ref(uid))
        .await?
        .into_iter()
        .next()
        .map(|(_, preferences)| preferences)
        .unwrap_or_default();
    let effective = Effective::of(&defaults, &mine);
    let quiet = match (&mine.quiet_hours, defaults.user_may_override.quiet_hours) {
        (Some(hours), true) => Some(hours),
        _ => defaults.quiet_hours.as_ref(),
    };
    Ok(json!({
        "preferences": mine,
        "effective": effective_view(&effective, quiet),
        "userMayOverride": defaults.user_may_override,
    }))
}

/// `GET /v3/notifications/preferences`: the calling user's choices, what is in force, and what it may change.
pub async fn get_preferences(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    Ok(data(preferences_view(&state, &uid).await?))
}

fn check_quiet(hours: Option<&comet_notifications::preferences::QuietHours>) -> Result<(), ApiError> {
    match hours {
        Some(hours) => Quiet::parse(hours)
            .map(|_| ())
            .map_err(|error| ApiError::bad_request("ERR_QUIET_HOURS_INVALID", error.to_string())),
        None => Ok(()),
    }
}

/// `PUT /v3/notifications/preferences`: replaces the calling user's choices (unset fields follow the defaults);
/// a field the admin did not let users override is refused by name.
pub async fn put_preferences(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    let request: Preferences = parse_object(&body)?;
    check_quiet(request.quiet_hours.as_ref())?;
    let may = defaults(&state).await?.user_may_override;
    let locked = [
        ("dnd", request.dnd.is_some() && !may.dnd),
        ("privacy", request.privacy.is_some() && !may.privacy),
        ("mentionBypass", request.mention_bypass.is_some() && !may.mention_bypass),
        ("reactions", request.reactions.is_some() && !may.reactions),
        ("quietHours", request.quiet_hours.is_some() && !may.quiet_hours),
    ];
    if let Some((name, _)) = locked.iter().find(|(_, refused)| *refused) {
        return Err(ApiError::forbidden(
            "ERR_PREFERENCE_LOCKED",
            format!("`{name}` is set by the app for everyone (its default has userMayOverride false)"),
        ));
    }
    preferences(&state).save_preferences(&uid, &request, now()).await?;
    Ok(data(preferences_view(&state, &uid).await?))
}

/// `DELETE /v3/notifications/preferences`: forgets the calling user's choices and mutes.
pub async fn reset_preferences(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    preferences(&state).reset_preferences(&uid).await?;
    Ok(data(preferences_view(&state, &uid).await?))
}

/// The conversation of the caller with `receiver`, checked: the user exists, or the group exists and the caller
/// is a member. Decided from what the path names, never from a display id.
async fn conversation(
    state: &AppState,
    uid: &Uid,
    receiver_type: &str,
    receiver: &str,
) -> Result<ConversationId, ApiError> {
    match receiver_type {
        "user" => {
            let other =
                Uid::parse(receiver).map_err(|error| ApiError::bad_request("ERR_UID_INVALID", error.to_string()))?;
            match state.store.get_user(&other).await? {
                Some(found) if found.deleted_at.is_none() => Ok(ConversationId::direct(uid, &other)),
                _ => Err(ApiError::not_found("ERR_UID_NOT_FOUND", format!("user `{other}` does not exist"))),
            }
        }
        "group" => {
            let guid =
                Guid::parse(receiver).map_err(|error| ApiError::bad_request("ERR_GUID_INVALID", error.to_string()))?;
            if state.store.member(&guid, uid).await?.is_none() {
                return Err(ApiError::not_found(
                    "ERR_GUID_NOT_FOUND",
                    format!("`{uid}` is not a member of a group `{guid}`"),
                ));
            }
            Ok(ConversationId::group(&guid))
        }
        _ => Err(ApiError::bad_request("ERR_RECEIVER_TYPE_INVALID", "receiverType must be user or group")),
    }
}

fn mute_view(uid: &Uid, key: &str, until: Millis) -> Value {
    let (receiver, receiver_type) = match ConversationId::from_key(key).map(|id| id.kind().clone()) {
        Ok(ConversationKind::Group(guid)) => (guid.as_str().to_owned(), "group"),
        Ok(ConversationKind::Direct { low, high }) => {
            let other = if low == *uid { high } else { low };
            (other.as_str().to_owned(), "user")
        }
        Err(_) => (key.to_owned(), "unknown"),
    };
    json!({ "receiver": receiver, "receiverType": receiver_type, "until": seconds(until) })
}

/// `GET /v3/notifications/mutes`: the calling user's mutes still running.
pub async fn list_mutes(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    let mutes = preferences(&state).mutes(&uid, now()).await?;
    Ok(data(Value::Array(mutes.iter().map(|(key, until)| mute_view(&uid, key, *until)).collect())))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Mute {
    /// Until when, in seconds since the epoch.
    until: i64,
}

/// `PUT /v3/notifications/mutes/{receiverType}/{receiver}`: mutes a conversation until a time.
pub async fn mute(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((receiver_type, receiver)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    let request: Mute = parse_object(&body)?;
    let conversation = conversation(&state, &uid, &receiver_type, &receiver).await?;
    let at = now();
    let until = request.until.saturating_mul(1000);
    if until <= at || until - at > MAX_MUTE_MS {
        return Err(ApiError::bad_request(
            "ERR_MUTE_INVALID",
            "until must be a time in the future (seconds since the epoch), at most ten years ahead",
        ));
    }
    preferences(&state).mute(&uid, conversation.key(), until).await?;
    Ok(data(mute_view(&uid, conversation.key(), until)))
}

/// `DELETE /v3/notifications/mutes/{receiverType}/{receiver}`.
pub async fn unmute(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((receiver_type, receiver)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let uid = user(&state, &headers).await?;
    let conversation = conversation(&state, &uid, &receiver_type, &receiver).await?;
    if preferences(&state).unmute(&uid, conversation.key()).await? {
        Ok(data(json!({ "success": true })))
    } else {
        Err(ApiError::not_found("ERR_MUTE_NOT_FOUND", "this conversation is not muted"))
    }
}

fn provider_view(record: &ProviderRecord) -> Value {
    let mut view = serde_json::from_str::<Value>(&record.body).unwrap_or_else(|_| json!({ "kind": record.kind }));
    view["id"] = json!(record.id);
    view["isDefault"] = json!(record.is_default);
    view["createdAt"] = json!(seconds(record.created_at));
    view["updatedAt"] = json!(seconds(record.updated_at));
    view
}

/// A provider's settings from a request body: `isDefault` and the kind's fields (`id` is taken out first).
fn provider_config(state: &AppState, mut body: Value) -> Result<(ProviderConfig, Option<bool>), ApiError> {
    let is_default = match body.as_object_mut().and_then(|object| object.remove("isDefault")) {
        None => None,
        Some(Value::Bool(flag)) => Some(flag),
        Some(_) => return Err(ApiError::bad_request("ERR_BODY_INVALID", "isDefault must be true or false")),
    };
    let config: ProviderConfig = serde_json::from_value(body)
        .map_err(|error| ApiError::bad_request("ERR_PUSH_PROVIDER_INVALID", error.to_string()))?;
    if let Some(bad) = config.secrets().into_iter().find(|name| !is_secret_name(name)) {
        return Err(ApiError::bad_request(
            "ERR_PUSH_PROVIDER_INVALID",
            format!("`{bad}` is not a secret name: a file name in the secrets folder (letters, digits, `.`, `_`, `-`)"),
        ));
    }
    match &config {
        ProviderConfig::Webhook { url, .. } => {
            state
                .config
                .webhook_guard
                .parse(url)
                .map_err(|error| ApiError::bad_request("ERR_PUSH_PROVIDER_INVALID", format!("url: {error}")))?;
        }
        ProviderConfig::Apns { key_id, team_id, bundle_id, .. } => {
            for (name, value) in [("keyId", key_id), ("teamId", team_id), ("bundleId", bundle_id)] {
                check_id(value, "ERR_PUSH_PROVIDER_INVALID", name)?;
            }
        }
        ProviderConfig::Fcm { .. } => {}
    }
    Ok((config, is_default))
}

/// `POST /v3/notifications/providers`: registers an FCM, APNs or webhook provider.
pub async fn create_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    let mut body: Value = parse_object(&body)?;
    let id = match body.as_object_mut().and_then(|object| object.remove("id")) {
        Some(Value::String(id)) => id,
        _ => return Err(ApiError::bad_request("ERR_PUSH_PROVIDER_INVALID", "id (a string) is required")),
    };
    check_id(&id, "ERR_PUSH_PROVIDER_INVALID", "id")?;
    let (config, is_default) = provider_config(&state, body)?;
    let at = now();
    let record = ProviderRecord {
        id,
        kind: config.kind().to_owned(),
        is_default: is_default.unwrap_or(false),
        body: serde_json::to_string(&config).map_err(|error| ApiError::Internal(error.to_string()))?,
        created_at: at,
        updated_at: at,
    };
    match state.store.create_push_provider(&record).await {
        Ok(()) => Ok(data(provider_view(&record))),
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
            "ERR_PUSH_PROVIDER_ALREADY_EXISTS",
            format!("a push provider with id `{}` exists", record.id),
        )),
        Err(error) => Err(error.into()),
    }
}

/// `GET /v3/notifications/providers`.
pub async fn list_providers(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    let providers = state.store.list_push_providers().await?;
    Ok(data(Value::Array(providers.iter().map(provider_view).collect())))
}

async fn provider(state: &AppState, id: &str) -> Result<ProviderRecord, ApiError> {
    let providers = state.store.list_push_providers().await?;
    providers.into_iter().find(|provider| provider.id == id).ok_or_else(|| provider_not_found(id))
}

/// `GET /v3/notifications/providers/{providerId}`.
pub async fn get_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    Ok(data(provider_view(&provider(&state, &id).await?)))
}

/// `PUT /v3/notifications/providers/{providerId}`: replaces its settings (and whether it is the default).
pub async fn update_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    let mut record = provider(&state, &id).await?;
    let body: Value = parse_object(&body)?;
    let (config, is_default) = provider_config(&state, body)?;
    record.kind = config.kind().to_owned();
    record.is_default = is_default.unwrap_or(record.is_default);
    record.body = serde_json::to_string(&config).map_err(|error| ApiError::Internal(error.to_string()))?;
    record.updated_at = now().max(record.updated_at + 1);
    if !state.store.save_push_provider(&record).await? {
        return Err(provider_not_found(&id));
    }
    Ok(data(provider_view(&record)))
}

/// `DELETE /v3/notifications/providers/{providerId}`: with the tokens registered with it.
pub async fn delete_provider(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    if state.store.delete_push_provider(&id).await? {
        Ok(data(json!({ "success": true })))
    } else {
        Err(provider_not_found(&id))
    }
}

/// `GET /v3/notifications/defaults`: the app's defaults and which of them users may override.
pub async fn get_defaults(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    Ok(data(json!(defaults(&state).await?)))
}

/// `PUT /v3/notifications/defaults`: replaces them.
pub async fn put_defaults(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    let request: Defaults = parse_object(&body)?;
    check_quiet(request.quiet_hours.as_ref())?;
    preferences(&state).save_defaults(&request, now()).await?;
    Ok(data(json!(request)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListLog {
    uid: Option<String>,
    outcome: Option<String>,
    message_id: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    since: Option<i64>,
    /// Milliseconds since the epoch, exclusive: the `next` of the previous page.
    before: Option<i64>,
    per_page: Option<u32>,
}

fn log_view(entry: &LogEntry) -> Value {
    json!({
        "id": entry.id,
        "eventId": entry.event_id,
        "messageId": entry.message_id,
        "uid": entry.uid,
        "providerId": entry.provider_id,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "status": entry.status,
        "collapseId": entry.collapse_id,
        "at": entry.at,
    })
}

/// `GET /v3/notifications/log`: decisions newest first (kept 14 days), filtered.
pub async fn list_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListLog>,
) -> Result<Response, ApiError> {
    app(&state, &headers).await?;
    let limit = per_page(query.per_page)?;
    if let Some(outcome) = &query.outcome
        && !matches!(outcome.as_str(), "sent" | "failed" | "skipped")
    {
        return Err(ApiError::bad_request("ERR_LOG_FILTER_INVALID", "outcome must be sent, failed or skipped"));
    }
    let filter = LogFilter {
        uid: query.uid,
        outcome: query.outcome,
        message_id: query.message_id,
        since: query.since,
        before: query.before,
        limit,
    };
    let entries = state.store.notification_log(&filter).await?;
    let next = if entries.len() == limit as usize { entries.last().map(|entry| entry.at) } else { None };
    Ok(page(entries.iter().map(log_view).collect(), json!({ "pagination": { "perPage": limit, "next": next } })))
}
