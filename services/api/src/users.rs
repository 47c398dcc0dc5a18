//! `/v3/users`: create, list, get, and auth tokens.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::{NewUser, Uid};
use serde::Deserialize;

use crate::auth::{identify, new_token, token_hash, Caller};
use crate::body::{data, page, parse, per_page, RawBody};
use crate::{now, views, ApiError, AppState};

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

pub async fn create(State(state): State<AppState>, headers: HeaderMap, RawBody(body): RawBody) -> Result<Response, ApiError> {
    identify(&state, &headers).await?;
    let request: CreateUser = parse(&body)?;
    let uid = parse_uid(&request.uid)?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("ERR_NAME_INVALID", "name must be 1 to 100 characters"));
    }
    let new_user = NewUser {
        uid,
        name: name.to_owned(),
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
    let users = state.store.list_users(query.search_key.as_deref(), after.as_ref(), limit).await?;
    let next = if users.len() == limit as usize { users.last().map(|user| user.uid.to_string()) } else { None };
    let items = users.iter().map(views::user).collect();
    Ok(page(items, serde_json::json!({ "pagination": { "perPage": limit, "next": next } })))
}

pub async fn get(State(state): State<AppState>, headers: HeaderMap, Path(uid): Path<String>) -> Result<Response, ApiError> {
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
    state.store.create_auth_token(&uid, &token_hash(&token), created).await?;
    Ok(data(serde_json::json!({ "uid": uid, "authToken": token, "createdAt": created / 1000 })))
}
