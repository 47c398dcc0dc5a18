//! `/v3/moderation/…` (issue #15): rules (every edit a revision), lists (with a CSV import), the review queues
//! and the audit log, for the full-access key as the app only; and users' reports of messages
//! (`POST /v3/messages/{id}/flagged`), for anyone who may read the message. Every moderator action is written
//! to the audit log with who (the key's fingerprint), what and when. Nothing is written when a request is
//! refused: a rule or list is checked, and the whole set it would make compiled, before it is stored.

pub mod lists;
pub mod queues;
pub mod rules;
pub(crate) mod screen;

use axum::http::HeaderMap;
use comet_model::auth::{API_KEY_HEADER, token_hash};
use comet_moderation::spec::{ListSpec, RuleSpec};
use comet_moderation::{Engine, SpecError};
use comet_store::AuditEntry;
use serde_json::Value;

use crate::auth::{Caller, identify};
use crate::{ApiError, AppState, now};

/// Who acts, for the audit log: the app, named by its key's fingerprint (never the key).
#[derive(Debug, Clone)]
pub(crate) struct Moderator(String);

/// The app itself, or 403: moderation is the app's business.
pub(crate) async fn moderator(state: &AppState, headers: &HeaderMap) -> Result<Moderator, ApiError> {
    match identify(state, headers).await? {
        Caller::App => {
            let key = headers.get(API_KEY_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
            let fingerprint: String = token_hash(key).chars().take(12).collect();
            Ok(Moderator(format!("key:{fingerprint}")))
        }
        other => {
            other.full_access()?;
            Err(ApiError::forbidden(
                "ERR_NOT_ALLOWED",
                "users may not manage moderation: use the full-access key without onBehalfOf",
            ))
        }
    }
}

impl Moderator {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes one moderator action to the audit log (and, for a rule or list, recompiles this process's rules).
pub(crate) async fn audit(
    state: &AppState,
    who: &Moderator,
    action: &str,
    target_kind: &str,
    target_id: &str,
    detail: Value,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        actor: who.0.clone(),
        action: action.to_owned(),
        target_kind: target_kind.to_owned(),
        target_id: target_id.to_owned(),
        detail: detail.to_string(),
        at: now(),
    };
    state.moderation.store().append_audit(&entry).await?;
    // This process applies its own change at once; the others at their next poll.
    if matches!(target_kind, "rule" | "list")
        && let Err(error) = state.moderation.refresh().await
    {
        tracing::warn!(error = %error, "the moderation rules could not be reloaded after a change; the poll retries");
    }
    Ok(())
}

/// A refused rule or list, with its stable code.
pub(crate) fn refused(error: SpecError) -> ApiError {
    let code = match &error {
        SpecError::Limit { .. } => "ERR_MODERATION_LIMIT",
        SpecError::Invalid { .. } => "ERR_MODERATION_INVALID",
        SpecError::UnknownList { .. } => "ERR_MODERATION_UNKNOWN_LIST",
        SpecError::ListKind { .. } => "ERR_MODERATION_LIST_KIND",
        SpecError::Pattern { .. } => "ERR_MODERATION_PATTERN",
    };
    ApiError::bad_request(code, error.to_string())
}

/// The stored rules and lists with `rule` and `list` put in place of (or beside) the stored ones with their
/// ids, and `removed_list` left out, compiled: the set the change would leave must hold together.
pub(crate) async fn check_set(
    state: &AppState,
    rule: Option<&RuleSpec>,
    list: Option<&ListSpec>,
    removed_list: Option<&str>,
) -> Result<(), ApiError> {
    let store = state.moderation.store();
    let mut rules: Vec<RuleSpec> = store.rules().await?.into_iter().map(|stored| stored.spec).collect();
    let mut lists: Vec<ListSpec> = store.lists().await?.into_iter().map(|stored| stored.spec).collect();
    if let Some(rule) = rule {
        rules.retain(|stored| stored.id != rule.id);
        rules.push(rule.clone());
    }
    if let Some(list) = list {
        lists.retain(|stored| stored.id != list.id);
        lists.push(list.clone());
    }
    if let Some(removed) = removed_list {
        lists.retain(|stored| stored.id != removed);
    }
    match Engine::compile(&rules, &lists) {
        Ok(_) => Ok(()),
        Err(SpecError::UnknownList { rule, list }) if removed_list == Some(list.as_str()) => Err(ApiError::conflict(
            "ERR_MODERATION_LIST_IN_USE",
            format!("list `{list}` is used by rule `{rule}`: change the rule first"),
        )),
        Err(error) => Err(refused(error)),
    }
}

/// Reads a body whose `id` comes from the path: absent (taken from the path) or equal to it.
pub(crate) fn with_path_id(body: &[u8], id: &str) -> Result<Vec<u8>, ApiError> {
    let mut value: Value = crate::body::parse(body)?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::bad_request("ERR_BODY_INVALID", "request body: expected a JSON object"));
    };
    match object.get("id") {
        None => {
            object.insert("id".to_owned(), Value::from(id));
        }
        Some(Value::String(given)) if given == id => {}
        Some(_) => {
            return Err(ApiError::bad_request("ERR_MODERATION_INVALID", format!("id: the path names `{id}`")));
        }
    }
    serde_json::to_vec(&value).map_err(|error| ApiError::Internal(error.to_string()))
}

/// A stored rule or list as the API shows it: the spec's fields with its revision and times.
fn stored_view<T: serde::Serialize>(stored: &comet_moderation::Stored<T>) -> Value {
    let mut view = serde_json::to_value(&stored.spec).unwrap_or_default();
    view["revision"] = serde_json::json!(stored.revision);
    view["createdAt"] = serde_json::json!(seconds(stored.created_at));
    view["updatedAt"] = serde_json::json!(seconds(stored.updated_at));
    view
}

fn seconds(millis: comet_model::Millis) -> i64 {
    millis.div_euclid(1000)
}
