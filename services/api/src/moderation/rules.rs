//! `/v3/moderation/rules`: CRUD, every edit a new revision, and the revisions.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_moderation::Revision;
use comet_moderation::spec::{MAX_RULES, RuleSpec};
use comet_store::StoreError;
use serde_json::{Value, json};

use super::{audit, check_set, moderator, refused, seconds, stored_view, with_path_id};
use crate::body::{Path, RawBody, data, parse};
use crate::{ApiError, AppState, now};

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("ERR_MODERATION_RULE_NOT_FOUND", format!("rule `{id}` does not exist"))
}

fn revision_view(revision: &Revision) -> Value {
    json!({
        "revision": revision.revision,
        "rule": revision.rule,
        "deleted": revision.rule.is_none(),
        "changedBy": revision.changed_by,
        "changedAt": seconds(revision.changed_at),
    })
}

/// `POST /v3/moderation/rules`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let who = moderator(&state, &headers).await?;
    let rule: RuleSpec = parse(&body)?;
    rule.check().map_err(refused)?;
    check_set(&state, Some(&rule), None, None).await?;
    let now = now();
    match state.moderation.store().create_rule(&rule, who.as_str(), now, MAX_RULES).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::bad_request(
                "ERR_MODERATION_LIMIT",
                format!("an app may have at most {MAX_RULES} rules; delete one first"),
            ));
        }
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("ERR_MODERATION_RULE_EXISTS", format!("rule `{}` exists", rule.id)));
        }
        Err(error) => return Err(error.into()),
    }
    audit(&state, &who, "rule.create", "rule", &rule.id, json!({ "rule": rule })).await?;
    let stored = state.moderation.store().rule(&rule.id).await?.ok_or_else(|| not_found(&rule.id))?;
    Ok(data(stored_view(&stored)))
}

/// `GET /v3/moderation/rules`: every rule (at most 25, one page).
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    moderator(&state, &headers).await?;
    let rules = state.moderation.store().rules().await?;
    Ok(data(Value::Array(rules.iter().map(stored_view).collect())))
}

/// `GET /v3/moderation/rules/{ruleId}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    moderator(&state, &headers).await?;
    let stored = state.moderation.store().rule(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(data(stored_view(&stored)))
}

/// `PUT /v3/moderation/rules/{ruleId}`: the whole rule again (its `id` may be left out); a new revision.
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let who = moderator(&state, &headers).await?;
    let rule: RuleSpec = parse(&with_path_id(&body, &id)?)?;
    rule.check().map_err(refused)?;
    if state.moderation.store().rule(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    check_set(&state, Some(&rule), None, None).await?;
    let Some(revision) = state.moderation.store().update_rule(&rule, who.as_str(), now()).await? else {
        return Err(not_found(&id));
    };
    audit(&state, &who, "rule.update", "rule", &id, json!({ "revision": revision, "rule": rule })).await?;
    let stored = state.moderation.store().rule(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(data(stored_view(&stored)))
}

/// `DELETE /v3/moderation/rules/{ruleId}`: the deletion is the rule's last revision.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = moderator(&state, &headers).await?;
    if !state.moderation.store().delete_rule(&id, who.as_str(), now()).await? {
        return Err(not_found(&id));
    }
    audit(&state, &who, "rule.delete", "rule", &id, json!({})).await?;
    Ok(data(json!({ "success": true, "message": format!("rule `{id}` deleted") })))
}

/// `GET /v3/moderation/rules/{ruleId}/revisions`: oldest first, also of a deleted rule.
pub async fn revisions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    moderator(&state, &headers).await?;
    let revisions = state.moderation.store().revisions(&id).await?;
    if revisions.is_empty() {
        return Err(not_found(&id));
    }
    Ok(data(Value::Array(revisions.iter().map(revision_view).collect())))
}
