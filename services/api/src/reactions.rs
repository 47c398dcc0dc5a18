//! `/v3/messages/{id}/reactions`: add, remove and list reactions. Whoever may read a message may react to it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_store::{ReactionChange, StoreError};
use serde::Deserialize;

use crate::auth::identify;
use crate::body::{Path, Query, data, page, per_page};
use crate::messages::readable_message;
use crate::users::parse_uid;
use crate::{ApiError, AppState, now, views};

/// Longest reaction, in characters: an emoji sequence or a name such as `thumbsup`.
pub const MAX_REACTION_CHARS: usize = 64;

/// A reaction as given in the path: 1 to 64 characters, no whitespace or control characters.
fn parse_reaction(raw: &str) -> Result<&str, ApiError> {
    let length = raw.chars().count();
    if length == 0 || length > MAX_REACTION_CHARS || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::bad_request(
            "ERR_REACTION_INVALID",
            format!("a reaction is 1 to {MAX_REACTION_CHARS} characters (an emoji or a name) without spaces"),
        ));
    }
    Ok(raw)
}

async fn change(state: &AppState, headers: &HeaderMap, id: &str, raw: &str, add: bool) -> Result<Response, ApiError> {
    let caller = identify(state, headers).await?;
    let uid = caller.user()?.clone();
    let reaction = parse_reaction(raw)?;
    let message = readable_message(state, &caller, id).await?;
    let outcome = if add {
        state.store.add_reaction(&message.id, &uid, reaction, now()).await
    } else {
        state.store.remove_reaction(&message.id, &uid, reaction, now()).await
    };
    match outcome {
        Ok(ReactionChange::Changed(_) | ReactionChange::Unchanged) => {}
        Ok(ReactionChange::MessageDeleted) => {
            return Err(ApiError::conflict("ERR_MESSAGE_DELETED", format!("message `{id}` is deleted")));
        }
        // Not found, or no longer readable by the acting user (it left the group since the read above).
        Err(StoreError::NotFound(_) | StoreError::Refused(_)) => {
            return Err(ApiError::not_found("ERR_MESSAGE_NOT_FOUND", format!("message `{id}` does not exist")));
        }
        Err(other) => return Err(other.into()),
    }
    let counts = state.store.reaction_counts(&[message.id.as_str()]).await?;
    Ok(data(views::message_with_reactions(&message, &counts)))
}

/// `POST /v3/messages/{id}/reactions/{reaction}`: adds the acting user's reaction; adding it again is a no-op.
pub async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, reaction)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change(&state, &headers, &id, &reaction, true).await
}

/// `DELETE /v3/messages/{id}/reactions/{reaction}`: removes the acting user's reaction, if there.
pub async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, reaction)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change(&state, &headers, &id, &reaction, false).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListReactions {
    per_page: Option<u32>,
    /// Only this reaction.
    reaction: Option<String>,
    /// The cursor: the `reaction` and `uid` of the previous page's last item.
    after_reaction: Option<String>,
    after_uid: Option<String>,
}

/// `GET /v3/messages/{id}/reactions`: who reacted how, ordered by reaction then uid, with the count of each
/// reaction in `meta.reactions`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ListReactions>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let limit = per_page(query.per_page)?;
    let only = query.reaction.as_deref().map(parse_reaction).transpose()?;
    let after_uid = query.after_uid.as_deref().map(parse_uid).transpose()?;
    let after = match (query.after_reaction.as_deref(), after_uid.as_ref()) {
        (Some(reaction), Some(uid)) => Some((parse_reaction(reaction)?, uid)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request("ERR_CURSOR_INVALID", "give afterReaction and afterUid together"));
        }
    };
    let message = readable_message(&state, &caller, &id).await?;
    let reactions = state.store.list_reactions(&message.id, only, after, limit).await?;
    let counts = state.store.reaction_counts(&[message.id.as_str()]).await?;
    let next = match reactions.last() {
        Some(last) if reactions.len() == limit as usize => {
            serde_json::json!({ "afterReaction": last.reaction, "afterUid": last.uid })
        }
        _ => serde_json::Value::Null,
    };
    let summary: Vec<serde_json::Value> =
        counts.iter().map(|count| serde_json::json!({ "reaction": count.reaction, "count": count.count })).collect();
    Ok(page(
        reactions.iter().map(views::reaction).collect(),
        serde_json::json!({ "reactions": summary, "pagination": { "perPage": limit, "next": next } }),
    ))
}
