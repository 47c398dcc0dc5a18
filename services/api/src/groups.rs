//! `/v3/groups`: create, get, and members.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::{Departure, Group, GroupChanges, GroupType, Guid, NewGroup, NewMember, PasswordChange, Scope, Uid};
use serde::Deserialize;

use crate::auth::{Caller, identify};
use crate::body::{Path, Query, RawBody, data, keyed_page, parse, per_page, search_key};
use crate::names::valid_name;
use crate::users::parse_uid;
use crate::{ApiError, AppState, now, views};

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

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let request: CreateGroup = parse(&body)?;
    let guid = parse_guid(&request.guid)?;
    let group_type = GroupType::parse(&request.group_type)
        .ok_or_else(|| ApiError::bad_request("ERR_GROUP_TYPE_INVALID", "type must be public, private or password"))?;
    let name = valid_name(&request.name)?;
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
        (Caller::User(uid), Some(raw)) if raw != uid.as_str() => {
            return Err(ApiError::forbidden(
                "ERR_NOT_ALLOWED",
                "a user may only create groups it owns; the app key may name any owner",
            ));
        }
        (_, Some(raw)) => parse_uid(raw)?,
        (_, None) => {
            return Err(ApiError::bad_request("ERR_OWNER_MISSING", "give `owner` or act onBehalfOf the owner"));
        }
    };
    if !matches!(state.store.get_user(&owner).await?, Some(user) if user.deleted_at.is_none()) {
        return Err(ApiError::not_found("ERR_UID_NOT_FOUND", format!("owner `{owner}` does not exist")));
    }
    let new_group = NewGroup {
        guid,
        name,
        group_type,
        password_hash,
        description: request.description,
        icon: request.icon,
        owner,
        metadata: request.metadata,
    };
    let group = state.store.create_group(&new_group, now()).await.map_err(|error| match error {
        comet_store::StoreError::Conflict(_) => ApiError::conflict(
            "ERR_GUID_ALREADY_EXISTS",
            format!("a group with guid `{}` already exists", new_group.guid),
        ),
        other => other.into(),
    })?;
    Ok(data(views::group(&group)))
}

/// The group, if the caller may see it: the app always, members always, anyone for public groups. A user
/// banned from the group is refused with 403 `ERR_BANNED`, so it can neither read nor post.
pub async fn visible_group(state: &AppState, caller: &Caller, guid: &Guid) -> Result<Group, ApiError> {
    let not_found = || ApiError::not_found("ERR_GUID_NOT_FOUND", format!("group `{guid}` does not exist"));
    let group = state.store.get_group(guid).await?.ok_or_else(not_found)?;
    if let Caller::User(uid) = caller
        && state.store.is_banned(guid, uid).await?
    {
        return Err(banned(uid, guid));
    }
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

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> Result<Response, ApiError> {
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
    if let (Caller::User(uid), None) = (&caller, caller_scope) {
        return join(&state, &guid, uid, &request).await;
    }
    let wants_admins = !request.admins.is_empty();
    match caller_scope {
        Some(Scope::Admin) => {}
        Some(Scope::Moderator) if !wants_admins => {}
        _ => {
            return Err(ApiError::forbidden(
                "ERR_GROUP_NOT_ALLOWED",
                "only the group's admins and moderators may add members",
            ));
        }
    }
    let total = request.admins.len() + request.moderators.len() + request.participants.len();
    if total == 0 || total > 100 {
        return Err(ApiError::bad_request(
            "ERR_MEMBERS_INVALID",
            "give 1 to 100 uids in admins, moderators or participants",
        ));
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
                Err(error) => {
                    serde_json::json!({ "success": false, "error": { "code": "ERR_UID_INVALID", "message": error.to_string() } })
                }
                Ok(uid) if state.store.is_banned(&guid, &uid).await? => {
                    serde_json::json!({ "success": false, "error": { "code": "ERR_BANNED", "message": format!("`{uid}` is banned from group `{guid}`") } })
                }
                Ok(uid) => match state.store.get_user(&uid).await? {
                    Some(user) if user.deleted_at.is_none() => {
                        to_add.push(NewMember { uid, scope });
                        serde_json::json!({ "success": true })
                    }
                    _ => {
                        serde_json::json!({ "success": false, "error": { "code": "ERR_UID_NOT_FOUND", "message": format!("user `{raw}` does not exist") } })
                    }
                },
            };
            scope_results.insert(raw.clone(), outcome);
        }
        results.insert(key.to_owned(), serde_json::Value::Object(scope_results));
    }
    state.store.add_members(&guid, &to_add, now()).await?;
    Ok(data(serde_json::Value::Object(results)))
}

/// A user that is not a member adding itself, alone, as a participant of a public group: it joins
/// (`group.member_joined`, the `group_member_joined` webhook). Anything else a non-member asks is refused.
async fn join(state: &AppState, guid: &Guid, uid: &Uid, request: &AddMembers) -> Result<Response, ApiError> {
    let itself = request.admins.is_empty()
        && request.moderators.is_empty()
        && request.participants.len() == 1
        && request.participants[0] == uid.as_str();
    let public = state.store.get_group(guid).await?.is_some_and(|group| group.group_type == GroupType::Public);
    if !itself || !public {
        return Err(ApiError::forbidden(
            "ERR_GROUP_NOT_ALLOWED",
            "only the group's admins and moderators may add members; a user may join a public group by adding itself",
        ));
    }
    state.store.join_group(guid, uid, now()).await?;
    Ok(data(serde_json::json!({ "participants": { uid.as_str(): { "success": true } } })))
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
    Ok(keyed_page(&members, limit, views::member, |member| member.uid.to_string()))
}

fn banned(uid: &Uid, guid: &Guid) -> ApiError {
    ApiError::forbidden("ERR_BANNED", format!("`{uid}` is banned from group `{guid}`"))
}

fn not_allowed(message: impl Into<String>) -> ApiError {
    ApiError::forbidden("ERR_GROUP_NOT_ALLOWED", message)
}

fn owner_protected(guid: &Guid) -> ApiError {
    ApiError::forbidden("ERR_GROUP_OWNER", format!("the owner of group `{guid}` can't be removed, banned or demoted"))
}

/// The scope the caller acts with in a group: the app acts as an admin; a user with its membership's scope, or
/// `None` when it is not a member.
async fn acting_scope(state: &AppState, caller: &Caller, guid: &Guid) -> Result<Option<Scope>, ApiError> {
    match caller {
        Caller::App => Ok(Some(Scope::Admin)),
        Caller::User(uid) => Ok(state.store.member(guid, uid).await?.map(|member| member.scope)),
        Caller::AuthOnly => Ok(None),
    }
}

/// Refuses callers below `needed` in the group.
async fn require_scope(
    state: &AppState,
    caller: &Caller,
    guid: &Guid,
    needed: Scope,
    what: &str,
) -> Result<Scope, ApiError> {
    match acting_scope(state, caller, guid).await? {
        Some(scope) if scope >= needed => Ok(scope),
        _ => Err(not_allowed(format!("only the group's {what} may do this"))),
    }
}

/// An existing, not deleted user named in the path.
async fn existing_user(state: &AppState, raw: &str) -> Result<Uid, ApiError> {
    let uid = parse_uid(raw)?;
    match state.store.get_user(&uid).await? {
        Some(user) if user.deleted_at.is_none() => Ok(uid),
        _ => Err(ApiError::not_found("ERR_UID_NOT_FOUND", format!("user `{uid}` does not exist"))),
    }
}

fn success(message: String) -> Response {
    data(serde_json::json!({ "success": true, "message": message }))
}

/// Whether a caller acting with `actor` may remove or ban a member whose scope is `target` (`None`: not a
/// member). Admins act on anyone; moderators on participants and non-members only.
fn outranks(actor: Scope, target: Option<Scope>) -> bool {
    match actor {
        Scope::Admin => true,
        Scope::Moderator => matches!(target, None | Some(Scope::Participant)),
        Scope::Participant => false,
    }
}

/// `POST /v3/groups/{guid}/bannedusers/{uid}`: admins and moderators (moderators only participants). The user
/// stops being a member and can't be added back, post or read until unbanned. Banning twice is a no-op.
pub async fn ban(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((guid, uid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    let group = visible_group(&state, &caller, &guid).await?;
    let actor = require_scope(&state, &caller, &guid, Scope::Moderator, "admins and moderators").await?;
    let uid = existing_user(&state, &uid).await?;
    if uid == group.owner {
        return Err(owner_protected(&guid));
    }
    let target = state.store.member(&guid, &uid).await?.map(|member| member.scope);
    if !outranks(actor, target) {
        return Err(not_allowed("moderators may only ban participants"));
    }
    state.store.ban_member(&guid, &uid, now()).await?;
    Ok(success(format!("`{uid}` is banned from group `{guid}`")))
}

/// `DELETE /v3/groups/{guid}/bannedusers/{uid}`: admins and moderators. The user may then be added again.
pub async fn unban(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((guid, uid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    visible_group(&state, &caller, &guid).await?;
    require_scope(&state, &caller, &guid, Scope::Moderator, "admins and moderators").await?;
    let uid = parse_uid(&uid)?;
    if !state.store.unban_member(&guid, &uid, now()).await? {
        return Err(ApiError::not_found("ERR_NOT_BANNED", format!("`{uid}` is not banned from group `{guid}`")));
    }
    Ok(success(format!("`{uid}` is no longer banned from group `{guid}`")))
}

/// `GET /v3/groups/{guid}/bannedusers`: admins and moderators; paged by uid like the members.
pub async fn list_bans(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    Query(query): Query<ListMembers>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    visible_group(&state, &caller, &guid).await?;
    require_scope(&state, &caller, &guid, Scope::Moderator, "admins and moderators").await?;
    let limit = per_page(query.per_page)?;
    let after = query.after.as_deref().map(parse_uid).transpose()?;
    let bans = state.store.list_bans(&guid, after.as_ref(), limit).await?;
    Ok(keyed_page(&bans, limit, views::ban, |ban| ban.uid.to_string()))
}

/// `DELETE /v3/groups/{guid}/members/{uid}`: a member leaves (uid = the caller) or is kicked (admins, and
/// moderators for participants). The owner can do neither.
pub async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((guid, uid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    let group = visible_group(&state, &caller, &guid).await?;
    let uid = parse_uid(&uid)?;
    let leaving = matches!(&caller, Caller::User(me) if *me == uid);
    let departure = if leaving {
        Departure::Left
    } else {
        let actor = require_scope(&state, &caller, &guid, Scope::Moderator, "admins and moderators").await?;
        let target = state.store.member(&guid, &uid).await?.map(|member| member.scope);
        if !outranks(actor, target) {
            return Err(not_allowed("moderators may only kick participants"));
        }
        Departure::Kicked
    };
    if uid == group.owner {
        return Err(owner_protected(&guid));
    }
    if !state.store.remove_member(&guid, &uid, departure, now()).await? {
        return Err(ApiError::not_found("ERR_MEMBER_NOT_FOUND", format!("`{uid}` is not a member of group `{guid}`")));
    }
    let message = match departure {
        Departure::Left => format!("`{uid}` left group `{guid}`"),
        Departure::Kicked => format!("`{uid}` was kicked from group `{guid}`"),
    };
    Ok(success(message))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeScope {
    scope: String,
}

/// `PUT /v3/groups/{guid}/members/{uid}` with `{"scope"}`: admins only; the owner stays an admin.
pub async fn change_scope(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((guid, uid)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    let uid = parse_uid(&uid)?;
    let request: ChangeScope = parse(&body)?;
    let scope = Scope::parse(&request.scope)
        .ok_or_else(|| ApiError::bad_request("ERR_SCOPE_INVALID", "scope must be admin, moderator or participant"))?;
    let group = visible_group(&state, &caller, &guid).await?;
    require_scope(&state, &caller, &guid, Scope::Admin, "admins").await?;
    if uid == group.owner && scope != Scope::Admin {
        return Err(owner_protected(&guid));
    }
    let member = state.store.change_scope(&guid, &uid, scope, now()).await?.ok_or_else(|| {
        ApiError::not_found("ERR_MEMBER_NOT_FOUND", format!("`{uid}` is not a member of group `{guid}`"))
    })?;
    Ok(data(views::member(&member)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateGroup {
    name: Option<String>,
    description: Option<String>,
    icon: Option<String>,
    metadata: Option<serde_json::Value>,
    #[serde(rename = "type")]
    group_type: Option<String>,
    password: Option<String>,
}

/// `PUT /v3/groups/{guid}`: admins (and the app). Fields left out stay as they are; a group that becomes a
/// password group needs a password, and only password groups take one.
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    let request: UpdateGroup = parse(&body)?;
    let group_type = request
        .group_type
        .as_deref()
        .map(|raw| {
            GroupType::parse(raw).ok_or_else(|| {
                ApiError::bad_request("ERR_GROUP_TYPE_INVALID", "type must be public, private or password")
            })
        })
        .transpose()?;
    let name = request.name.as_deref().map(valid_name).transpose()?;
    let nothing = name.is_none()
        && request.description.is_none()
        && request.icon.is_none()
        && request.metadata.is_none()
        && group_type.is_none()
        && request.password.is_none();
    if nothing {
        return Err(ApiError::bad_request(
            "ERR_NOTHING_TO_UPDATE",
            "give at least one of name, description, icon, metadata, type, password",
        ));
    }
    let current = visible_group(&state, &caller, &guid).await?;
    require_scope(&state, &caller, &guid, Scope::Admin, "admins").await?;
    let becomes = group_type.unwrap_or(current.group_type);
    let password = match (becomes, request.password.as_deref()) {
        (GroupType::Password, Some(password)) if !password.is_empty() => PasswordChange::Set(hash_password(password)?),
        (GroupType::Password, Some(_)) => {
            return Err(ApiError::bad_request("ERR_GROUP_PASSWORD_MISSING", "a password group needs a password"));
        }
        (GroupType::Password, None) if current.group_type == GroupType::Password => PasswordChange::Keep,
        (GroupType::Password, None) => {
            return Err(ApiError::bad_request("ERR_GROUP_PASSWORD_MISSING", "a password group needs a password"));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request("ERR_GROUP_PASSWORD_UNEXPECTED", "only password groups take a password"));
        }
        (_, None) => PasswordChange::Clear,
    };
    let changes = GroupChanges {
        name,
        description: request.description,
        icon: request.icon,
        metadata: request.metadata,
        group_type,
        password,
    };
    let group = state.store.update_group(&guid, &changes, now()).await?;
    Ok(data(views::group(&group)))
}

/// `DELETE /v3/groups/{guid}`: admins (the owner is one) and the app. Soft: the group disappears from every
/// read and list, its guid stays taken.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    visible_group(&state, &caller, &guid).await?;
    require_scope(&state, &caller, &guid, Scope::Admin, "admins").await?;
    state.store.delete_group(&guid, now()).await?;
    Ok(success(format!("group `{guid}` is deleted")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListGroups {
    per_page: Option<u32>,
    after: Option<String>,
    search_key: Option<String>,
}

/// `GET /v3/groups`: the app sees every group; a user public groups and its own, minus groups that banned it.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListGroups>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let limit = per_page(query.per_page)?;
    let after = query.after.as_deref().map(parse_guid).transpose()?;
    let search = search_key(query.search_key.as_deref())?;
    let viewer = match &caller {
        Caller::User(uid) => Some(uid),
        _ => None,
    };
    let groups = state.store.list_groups(viewer, search, after.as_ref(), limit).await?;
    Ok(keyed_page(&groups, limit, views::group, |group| group.guid.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferOwnership {
    uid: String,
}

/// `PATCH /v3/groups/{guid}/owner` with `{"uid"}` (CometChat's "transfer group ownership"): the owner (or the
/// app) hands the group to one of its members, who becomes an admin; the previous owner stays a member.
pub async fn transfer_ownership(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    let request: TransferOwnership = parse(&body)?;
    let uid = parse_uid(&request.uid)?;
    let group = visible_group(&state, &caller, &guid).await?;
    if matches!(&caller, Caller::User(actor) if *actor != group.owner) {
        return Err(ApiError::forbidden("ERR_GROUP_NOT_ALLOWED", "only the group's owner may transfer its ownership"));
    }
    let group = state.store.transfer_ownership(&guid, &uid, now()).await?.ok_or_else(|| {
        ApiError::not_found("ERR_MEMBER_NOT_FOUND", format!("`{uid}` is not a member of group `{guid}`"))
    })?;
    Ok(data(views::group(&group)))
}
