//! `/v3/users`: create, list, get, update, delete and restore, and auth tokens.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::auth::{API_KEY_HEADER, token_hash};
use comet_model::{NewUser, Uid, UserUpdate};
use comet_store::StoreError;
use serde::Deserialize;

use crate::auth::{Caller, identify, new_token};
use crate::body::{Path, Query, RawBody, data, keyed_page, parse, per_page, search_key};
use crate::names::valid_name;
use crate::{ApiError, AppState, now, views};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateUser {
    uid: String,
    name: String,
    avatar: Option<String>,
    link: Option<String>,
    role: Option<String>,
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    with_auth_token: bool,
}

pub fn parse_uid(raw: &str) -> Result<Uid, ApiError> {
    Uid::parse(raw).map_err(|error| ApiError::bad_request("ERR_UID_INVALID", error.to_string()))
}

/// 404 for a uid that names no user (or a deleted one, where the request needs a live user).
pub fn uid_not_found(uid: &Uid) -> ApiError {
    ApiError::not_found("ERR_UID_NOT_FOUND", format!("user `{uid}` does not exist"))
}

/// Allows the app, and a user acting for itself; refuses another user (403 `ERR_NOT_ALLOWED`) and the
/// auth-only key.
pub fn may_act_for(caller: &Caller, uid: &Uid) -> Result<(), ApiError> {
    caller.full_access()?;
    match caller {
        Caller::User(acting) if acting != uid => Err(ApiError::forbidden(
            "ERR_NOT_ALLOWED",
            format!("`{acting}` may not act for user `{uid}`: a user may only act for itself"),
        )),
        _ => Ok(()),
    }
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    identify(&state, &headers).await?;
    // Users are created server to server, with an API key (full access or auth-only), never by an end user.
    if !headers.contains_key(API_KEY_HEADER) {
        return Err(ApiError::forbidden("ERR_NOT_ALLOWED", "creating users needs an API key, not a user's auth token"));
    }
    let request: CreateUser = parse(&body)?;
    let uid = parse_uid(&request.uid)?;
    let new_user = NewUser {
        uid,
        name: valid_name(&request.name)?,
        avatar: request.avatar,
        link: request.link,
        role: request.role,
        metadata: request.metadata,
    };
    let user = state.store.create_user(&new_user, now()).await.map_err(|error| match error {
        comet_store::StoreError::Conflict(_) => {
            ApiError::conflict("ERR_UID_ALREADY_EXISTS", format!("a user with uid `{}` already exists", new_user.uid))
        }
        other => other.into(),
    })?;
    let mut view = views::user(&user);
    if request.with_auth_token {
        let token = new_token();
        state.store.create_auth_token(&user.uid, &token_hash(&token), now()).await?;
        if let Some(object) = view.as_object_mut() {
            object.insert("authToken".to_owned(), serde_json::Value::from(token));
        }
    }
    Ok(data(view))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListUsers {
    per_page: Option<u32>,
    search_key: Option<String>,
    /// The last uid of the previous page.
    after: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListUsers>,
) -> Result<Response, ApiError> {
    identify(&state, &headers).await?.full_access()?;
    let limit = per_page(query.per_page)?;
    let after = query.after.as_deref().map(parse_uid).transpose()?;
    let search = search_key(query.search_key.as_deref())?;
    let users = state.store.list_users(search, after.as_ref(), limit).await?;
    Ok(keyed_page(&users, limit, views::user, |user| user.uid.to_string()))
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    identify(&state, &headers).await?.full_access()?;
    let uid = parse_uid(&uid)?;
    match state.store.get_user(&uid).await? {
        Some(user) => Ok(data(views::user(&user))),
        None => Err(ApiError::not_found("ERR_UID_NOT_FOUND", format!("user `{uid}` does not exist"))),
    }
}

pub async fn create_auth_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let uid = parse_uid(&uid)?;
    if let Caller::User(acting) = &caller
        && acting != &uid
    {
        return Err(ApiError::forbidden("ERR_NOT_ALLOWED", "a user may only create auth tokens for itself"));
    }
    match state.store.get_user(&uid).await? {
        Some(user) if user.deleted_at.is_none() => {}
        _ => return Err(ApiError::not_found("ERR_UID_NOT_FOUND", format!("user `{uid}` does not exist"))),
    }
    let token = new_token();
    let created = now();
    let stored = state.store.create_auth_token(&uid, &token_hash(&token), created).await?;
    Ok(data(serde_json::json!({ "uid": uid, "authToken": token, "id": stored.id, "createdAt": created / 1000 })))
}

/// The fields `unset` may clear.
const UNSETTABLE: [&str; 4] = ["avatar", "link", "role", "metadata"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateUser {
    name: Option<String>,
    avatar: Option<String>,
    link: Option<String>,
    role: Option<String>,
    metadata: Option<serde_json::Value>,
    /// Fields to clear: any of `avatar`, `link`, `role`, `metadata`.
    #[serde(default)]
    unset: Vec<String>,
}

/// The update a request asks for: a field given is set, a field named in `unset` is cleared.
fn user_update(request: UpdateUser) -> Result<UserUpdate, ApiError> {
    for field in &request.unset {
        if !UNSETTABLE.contains(&field.as_str()) {
            return Err(ApiError::bad_request(
                "ERR_UNSET_INVALID",
                format!("unset may name {}; not `{field}`", UNSETTABLE.join(", ")),
            ));
        }
    }
    let unsets = |field: &str| request.unset.iter().any(|unset| unset == field);
    let change = |field: &str, value: Option<String>| -> Result<Option<Option<String>>, ApiError> {
        match (value, unsets(field)) {
            (Some(_), true) => {
                Err(ApiError::bad_request("ERR_UNSET_INVALID", format!("`{field}` is both set and unset")))
            }
            (Some(value), false) => Ok(Some(Some(value))),
            (None, true) => Ok(Some(None)),
            (None, false) => Ok(None),
        }
    };
    let metadata = match (request.metadata, unsets("metadata")) {
        (Some(_), true) => {
            return Err(ApiError::bad_request("ERR_UNSET_INVALID", "`metadata` is both set and unset"));
        }
        (Some(metadata), false) => Some(Some(metadata)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let update = UserUpdate {
        name: request.name.as_deref().map(valid_name).transpose()?,
        avatar: change("avatar", request.avatar)?,
        link: change("link", request.link)?,
        role: change("role", request.role)?,
        metadata,
    };
    if update.is_empty() {
        return Err(ApiError::bad_request(
            "ERR_UPDATE_EMPTY",
            "give at least one of name, avatar, link, role, metadata, unset",
        ));
    }
    Ok(update)
}

/// `PUT /v3/users/{uid}`: the app, or the user itself (which may not change its own role).
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let uid = parse_uid(&uid)?;
    may_act_for(&caller, &uid)?;
    let update = user_update(parse(&body)?)?;
    if update.role.is_some() && caller != Caller::App {
        return Err(ApiError::forbidden("ERR_NOT_ALLOWED", "only the app (API key without onBehalfOf) changes roles"));
    }
    let user = state.store.update_user(&uid, &update, now()).await.map_err(|error| match error {
        StoreError::NotFound(_) => uid_not_found(&uid),
        other => other.into(),
    })?;
    Ok(data(views::user(&user)))
}

/// `DELETE /v3/users/{uid}`: soft delete by the app or the user itself; `PUT /v3/users/{uid}/restore` undoes it.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let uid = parse_uid(&uid)?;
    may_act_for(&caller, &uid)?;
    let user = state.store.delete_user(&uid, now()).await.map_err(|error| match error {
        StoreError::NotFound(_) => uid_not_found(&uid),
        other => other.into(),
    })?;
    Ok(data(views::user(&user)))
}

/// `PUT /v3/users/{uid}/restore`: the app only (a deleted user cannot sign in).
pub async fn restore(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let uid = parse_uid(&uid)?;
    caller.full_access()?;
    if caller != Caller::App {
        return Err(ApiError::forbidden("ERR_NOT_ALLOWED", "only the app (API key without onBehalfOf) restores users"));
    }
    match state.store.get_user(&uid).await? {
        None => return Err(uid_not_found(&uid)),
        Some(user) if user.deleted_at.is_none() => {
            return Err(ApiError::conflict("ERR_USER_NOT_DELETED", format!("user `{uid}` is not deleted")));
        }
        Some(_) => {}
    }
    let user = state.store.restore_user(&uid, now()).await.map_err(|error| match error {
        // Restored (or removed) by someone else in between.
        StoreError::NotFound(_) => ApiError::conflict("ERR_USER_NOT_DELETED", format!("user `{uid}` is not deleted")),
        other => other.into(),
    })?;
    Ok(data(views::user(&user)))
}

/// `GET /v3/users/{uid}/auth_tokens`: each token's id and creation time, never the token.
pub async fn list_auth_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let uid = parse_uid(&uid)?;
    may_act_for(&caller, &uid)?;
    if state.store.get_user(&uid).await?.is_none() {
        return Err(uid_not_found(&uid));
    }
    let tokens = state.store.list_auth_tokens(&uid).await?;
    Ok(data(tokens.iter().map(views::auth_token).collect()))
}

/// `DELETE /v3/users/{uid}/auth_tokens/{id}`: the token stops signing in at once.
pub async fn revoke_auth_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((uid, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let uid = parse_uid(&uid)?;
    may_act_for(&caller, &uid)?;
    state.store.revoke_auth_token(&uid, &id, now()).await.map_err(|error| match error {
        StoreError::NotFound(_) => {
            ApiError::not_found("ERR_AUTH_TOKEN_NOT_FOUND", format!("user `{uid}` has no auth token `{id}`"))
        }
        other => other.into(),
    })?;
    Ok(data(serde_json::json!({ "success": true, "id": id })))
}
