//! Who is calling: a full-access API key (optionally acting `onBehalfOf` a user), an auth-only key, or an
//! end user's auth token.

use axum::http::{HeaderMap, StatusCode};
use comet_model::Uid;
use comet_model::auth::{API_KEY_HEADER, AUTH_TOKEN_HEADER, ON_BEHALF_OF_HEADER, identity_value, token_hash};

use crate::{ApiError, AppState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Full-access key without `onBehalfOf`: the application itself.
    App,
    /// A user: an auth token, or a full-access key with `onBehalfOf`.
    User(Uid),
    /// The auth-only key: may create users and auth tokens, nothing else.
    AuthOnly,
}

impl Caller {
    /// The acting user, or 400 when the request needs one and the app key came without `onBehalfOf`.
    pub fn user(&self) -> Result<&Uid, ApiError> {
        match self {
            Caller::User(uid) => Ok(uid),
            Caller::App => Err(ApiError::bad_request(
                "ERR_ON_BEHALF_OF_MISSING",
                "this request acts as a user: send the `onBehalfOf: <uid>` header with the API key",
            )),
            Caller::AuthOnly => Err(auth_only_refused()),
        }
    }

    /// Refuses the auth-only key.
    pub fn full_access(&self) -> Result<(), ApiError> {
        match self {
            Caller::AuthOnly => Err(auth_only_refused()),
            _ => Ok(()),
        }
    }
}

fn auth_only_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "ERR_AUTH_ONLY_KEY",
        "the auth-only API key may only create users and auth tokens; use the full-access key",
    )
}

/// A new auth token: 32 bytes from the OS CSPRNG (two UUIDv4s), hex.
pub fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The value of an identity header, `None` when absent; malformed or repeated: 400 (`auth::identity_value`).
fn identity_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    identity_value(headers.get_all(name).iter().map(|value| value.as_bytes()))
        .map_err(|problem| header_invalid(name, &problem.to_string()))
}

fn header_invalid(name: &str, problem: &str) -> ApiError {
    ApiError::bad_request("ERR_HEADER_INVALID", format!("the `{name}` header {problem}"))
}

/// Compares secrets in constant time for equal lengths.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller, charged one request against its rate (`admission`).
pub async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let caller = resolve(state, headers).await?;
    state.admission.charge(&caller)?;
    Ok(caller)
}

async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    // Every identity header is read (and a malformed one refused) before any is used.
    let api_key = identity_header(headers, API_KEY_HEADER)?;
    let on_behalf_of = identity_header(headers, ON_BEHALF_OF_HEADER)?;
    let auth_token = identity_header(headers, AUTH_TOKEN_HEADER)?;
    if let Some(key) = api_key {
        if state.config.full_keys.iter().any(|full| same_secret(full, key)) {
            return match on_behalf_of {
                None => Ok(Caller::App),
                Some(raw) => {
                    let uid =
                        Uid::parse(raw).map_err(|error| ApiError::bad_request("ERR_UID_INVALID", error.to_string()))?;
                    match state.store.get_user(&uid).await? {
                        Some(user) if user.deleted_at.is_none() => Ok(Caller::User(uid)),
                        _ => Err(ApiError::not_found(
                            "ERR_UID_NOT_FOUND",
                            format!("onBehalfOf user `{uid}` does not exist"),
                        )),
                    }
                }
            };
        }
        if state.config.auth_keys.iter().any(|auth| same_secret(auth, key)) {
            return Ok(Caller::AuthOnly);
        }
        return Err(ApiError::unauthorized("ERR_API_KEY_INVALID", "the API key is not valid"));
    }
    if let Some(token) = auth_token {
        return match state.store.user_for_token(&token_hash(token)).await? {
            Some(uid) => Ok(Caller::User(uid)),
            None => Err(ApiError::unauthorized("ERR_AUTH_TOKEN_INVALID", "the auth token is not valid")),
        };
    }
    Err(ApiError::unauthorized(
        "ERR_AUTH_MISSING",
        "send an `apikey` header (server to server) or an `authtoken` header (end users)",
    ))
}
