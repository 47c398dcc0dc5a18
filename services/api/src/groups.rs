//! `/v3/groups`: create, get, and members.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::{Group, GroupType, Guid, NewGroup, NewMember, Scope, Uid};
use serde::Deserialize;

use crate::auth::{identify, Caller};
use crate::body::{data, page, parse, per_page, RawBody};
use crate::users::parse_uid;
use crate::{now, views, ApiError, AppState};

pub fn parse_guid(raw: &str) -> Result<Guid, ApiError> {
    Guid::parse(raw).map_err(|error| ApiError::bad_request("ERR_GUID_INVALID", error.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateGroup {
    guid: String,
    name: String,
    #[serde(rename = "type")]
    group_type: String,
    password: Option<String>,
    description: Option<String>,
    icon: Option<String>,
    metadata: Option<serde_json::Value>,
    /// Required with the bare API key; defaults to the `onBehalfOf` user.
    owner: Option<String>,
}

fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt_bytes = uuid::Uuid::new_v4();
    let salt = SaltString::encode_b64(salt_bytes.as_bytes()).map_err(|error| ApiError::Internal(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| ApiError::Internal(error.to_string()))
}

pub async fn create(State(state): State<AppState>, headers: HeaderMap, RawBody(body): RawBody) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let request: CreateGroup = parse(&body)?;
    let guid = parse_guid(&request.guid)?;
    let group_type = GroupType::parse(&request.group_type).ok_or_else(|| {
        ApiError::bad_request("ERR_GROUP_TYPE_INVALID", "type must be public, private or password")
    })?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("ERR_NAME_INVALID", "name must be 1 to 100 characters"));
    }
    let password_hash = match (group_type, request.password.as_deref()) {
        (GroupType::Password, Some(password)) if !password.is_empty() => Some(hash_password(password)?),
        (GroupType::Password, _) => {
            return Err(ApiError::bad_request("ERR_GROUP_PASSWORD_MISSING", "a password group needs a password"));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request("ERR_GROUP_PASSWORD_UNEXPECTED", "only password groups take a password"));
        }
        _ => None,
    };
    let owner = match (&caller, request.owner.as_deref()) {
        (Caller::User(uid), None) => uid.clone(),
        (_, Some(raw)) => parse_uid(raw)?,
        (_, None) => return Err(ApiError::bad_request("ERR_OWNER_MISSING", "give `owner` or act onBehalfOf the owner")),
    };
    if !matches!(state.store.get_user(&owner).await?, Some(user) if user.deleted_at.is_none()) {
        return Err(ApiError::not_found("ERR_UID_NOT_FOUND", format!("owner `{owner}` does not exist")));
    }
    let new_group = NewGroup {
        guid,
        name: name.to_owned(),
        group_type,
        password_hash,
        description: request.description,
        icon: request.icon,
        owner,
        metadata: request.metadata,
    };
    let group = state.store.create_group(&new_group, now()).await.map_err(|error| match error {
        comet_store::StoreError::Conflict(_) => {
            ApiError::conflict("ERR_GUID_ALREADY_EXISTS", format!("a group with guid `{}` already exists", new_group.guid))
        }
        other => other.into(),
    })?;
    Ok(data(views::group(&group)))
}

/// The group, if the caller may see it: the app always, members always, anyone for public groups.
pub async fn visible_group(state: &AppState, caller: &Caller, guid: &Guid) -> Result<Group, ApiError> {
    let not_found = || ApiError::not_found("ERR_GUID_NOT_FOUND", format!("group `{guid}` does not exist"));
    let group = state.store.get_group(guid).await?.ok_or_else(not_found)?;
    match caller {
        Caller::App => Ok(group),
        Caller::User(_) if group.group_type == GroupType::Public => Ok(group),
        Caller::User(uid) => match state.store.member(guid, uid).await? {
            Some(_) => Ok(group),
            None => Err(not_found()),
        },
        Caller::AuthOnly => Err(not_found()),
    }
}

pub async fn get(State(state): State<AppState>, headers: HeaderMap, Path(guid): Path<String>) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    let group = visible_group(&state, &caller, &guid).await?;
    Ok(data(views::group(&group)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMembers {
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    moderators: Vec<String>,
    #[serde(default)]
    participants: Vec<String>,
}

/// Adds members in bulk. The app and the group's admins and moderators may add; moderators may not add admins.
pub async fn add_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    let request: AddMembers = parse(&body)?;
    visible_group(&state, &caller, &guid).await?;
    let caller_scope = match &caller {
        Caller::User(uid) => state.store.member(&guid, uid).await?.map(|member| member.scope),
        _ => Some(Scope::Admin),
    };
    let wants_admins = !request.admins.is_empty();
    match caller_scope {
        Some(Scope::Admin) => {}
        Some(Scope::Moderator) if !wants_admins => {}
        _ => return Err(ApiError::forbidden("ERR_GROUP_NOT_ALLOWED", "only the group's admins and moderators may add members")),
    }
    let total = request.admins.len() + request.moderators.len() + request.participants.len();
    if total == 0 || total > 100 {
        return Err(ApiError::bad_request("ERR_MEMBERS_INVALID", "give 1 to 100 uids in admins, moderators or participants"));
    }
    let mut results = serde_json::Map::new();
    let mut to_add = Vec::new();
    for (scope, list, key) in [
        (Scope::Admin, &request.admins, "admins"),
        (Scope::Moderator, &request.moderators, "moderators"),
        (Scope::Participant, &request.participants, "participants"),
    ] {
        let mut scope_results = serde_json::Map::new();
        for raw in list {
            let outcome = match Uid::parse(raw) {
                Err(error) => serde_json::json!({ "success": false, "error": { "code": "ERR_UID_INVALID", "message": error.to_string() } }),
                Ok(uid) => match state.store.get_user(&uid).await? {
                    Some(user) if user.deleted_at.is_none() => {
                        to_add.push(NewMember { uid, scope });
                        serde_json::json!({ "success": true })
                    }
                    _ => serde_json::json!({ "success": false, "error": { "code": "ERR_UID_NOT_FOUND", "message": format!("user `{raw}` does not exist") } }),
                },
            };
            scope_results.insert(raw.clone(), outcome);
        }
        results.insert(key.to_owned(), serde_json::Value::Object(scope_results));
    }
    state.store.add_members(&guid, &to_add, now()).await?;
    Ok(data(serde_json::Value::Object(results)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListMembers {
    per_page: Option<u32>,
    after: Option<String>,
}

pub async fn list_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    Query(query): Query<ListMembers>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    visible_group(&state, &caller, &guid).await?;
    let limit = per_page(query.per_page)?;
    let after = query.after.as_deref().map(parse_uid).transpose()?;
    let members = state.store.list_members(&guid, after.as_ref(), limit).await?;
    let next = if members.len() == limit as usize { members.last().map(|member| member.uid.to_string()) } else { None };
    Ok(page(members.iter().map(views::member).collect(), serde_json::json!({ "pagination": { "perPage": limit, "next": next } })))
}
