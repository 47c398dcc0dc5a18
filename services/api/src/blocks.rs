//! `/v3/users/{uid}/blockedusers`: block, unblock and list the users `uid` blocked. Messages between a user
//! and someone it blocked (or who blocked it) are refused with `ERR_BLOCKED`.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::Uid;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::identify;
use crate::body::{Path, Query, RawBody, data, keyed_page, parse, per_page};
use crate::users::{may_act_for, parse_uid, uid_not_found};
use crate::{ApiError, AppState, now, views};

/// Most uids one block or unblock request may name.
pub const MAX_BLOCKED_UIDS: usize = 25;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BlockedUids {
    blocked_uids: Vec<String>,
}

/// The request's uids, parsed and deduplicated; 400 when there are none, too many, or one is malformed.
fn blocked_uids(body: &[u8]) -> Result<BTreeSet<Uid>, ApiError> {
    let request: BlockedUids = parse(body)?;
    if request.blocked_uids.is_empty() || request.blocked_uids.len() > MAX_BLOCKED_UIDS {
        return Err(ApiError::bad_request(
            "ERR_BLOCKED_UIDS_INVALID",
            format!("blockedUids must list 1 to {MAX_BLOCKED_UIDS} uids"),
        ));
    }
    request.blocked_uids.iter().map(|raw| parse_uid(raw)).collect()
}

/// The blocker named in the path, after checking that the caller may act for it and that it exists.
async fn blocker(state: &AppState, headers: &HeaderMap, raw: &str) -> Result<Uid, ApiError> {
    let caller = identify(state, headers).await?;
    let uid = parse_uid(raw)?;
    may_act_for(&caller, &uid)?;
    match state.store.get_user(&uid).await? {
        Some(user) if user.deleted_at.is_none() => Ok(uid),
        _ => Err(uid_not_found(&uid)),
    }
}

fn failure(code: &str, message: String) -> Value {
    json!({ "success": false, "error": { "code": code, "message": message } })
}

/// `POST /v3/users/{uid}/blockedusers` with `{"blockedUids": […]}`: a result per uid.
pub async fn block(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let blocker = blocker(&state, &headers, &uid).await?;
    let targets = blocked_uids(&body)?;
    let mut results = Map::new();
    let mut to_block = Vec::new();
    for target in targets {
        if target == blocker {
            results.insert(target.to_string(), failure("ERR_BLOCK_SELF", "a user cannot block itself".to_owned()));
            continue;
        }
        match state.store.get_user(&target).await? {
            Some(user) if user.deleted_at.is_none() => to_block.push(target),
            _ => {
                let message = format!("user `{target}` does not exist");
                results.insert(target.to_string(), failure("ERR_UID_NOT_FOUND", message));
            }
        }
    }
    state.store.block_users(&blocker, &to_block, now()).await?;
    for target in to_block {
        results.insert(target.to_string(), json!({ "success": true }));
    }
    Ok(data(Value::Object(results)))
}

/// `DELETE /v3/users/{uid}/blockedusers` with `{"blockedUids": […]}`: unblocking a user that was not blocked
/// (or no longer exists) succeeds too.
pub async fn unblock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let blocker = blocker(&state, &headers, &uid).await?;
    let targets: Vec<Uid> = blocked_uids(&body)?.into_iter().collect();
    state.store.unblock_users(&blocker, &targets, now()).await?;
    let results = targets.iter().map(|target| (target.to_string(), json!({ "success": true }))).collect();
    Ok(data(Value::Object(results)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListBlocked {
    per_page: Option<u32>,
    /// The last uid of the previous page.
    after: Option<String>,
}

/// `GET /v3/users/{uid}/blockedusers`: the users `uid` blocked, by uid, paged like `GET /v3/users`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Query(query): Query<ListBlocked>,
) -> Result<Response, ApiError> {
    let blocker = blocker(&state, &headers, &uid).await?;
    let limit = per_page(query.per_page)?;
    let after = query.after.as_deref().map(parse_uid).transpose()?;
    let users = state.store.list_blocked_users(&blocker, after.as_ref(), limit).await?;
    Ok(keyed_page(&users, limit, views::user, |user| user.uid.to_string()))
}
