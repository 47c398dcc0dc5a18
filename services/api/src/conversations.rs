//! Conversations as the acting user sees them: receipts (read and delivered positions), resetting the unread
//! count, and the list of the user's conversations with their last message and unread count.
//!
//! Routes follow CometChat's v3 shape: `/users/{uid}/conversation/…` names the direct conversation between the
//! acting user and `uid`, `/groups/{guid}/conversation/…` a group's. Only participants mark: either side of a
//! direct conversation, a group's members.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::{ConversationId, Uid};
use comet_store::{ConversationCursor, ConversationSummary, ConversationWith, Receipt, ReceiptKind, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, identify};
use crate::body::{Path, Query, RawBody, data, page, parse, per_page};
use crate::groups::{parse_guid, visible_group};
use crate::users::{may_act_for, parse_uid, uid_not_found};
use crate::{ApiError, AppState, now, views};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Mark {
    /// Up to which message; the newest when absent.
    message_id: Option<String>,
}

/// The optional `{"messageId": …}` body: an empty body marks up to the newest message.
fn mark_target(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mark: Mark = parse(body)?;
    if mark.message_id.as_deref().is_some_and(|id| id.is_empty() || id.len() > 64) {
        return Err(ApiError::bad_request("ERR_MESSAGE_ID_INVALID", "messageId must be a message id"));
    }
    Ok(mark.message_id)
}

/// The direct conversation between the acting user and `uid`, with the acting user.
async fn direct(state: &AppState, caller: &Caller, uid: &str) -> Result<(ConversationId, Uid), ApiError> {
    let me = caller.user()?.clone();
    let other = parse_uid(uid)?;
    if state.store.get_user(&other).await?.is_none() {
        return Err(uid_not_found(&other));
    }
    Ok((ConversationId::direct(&me, &other), me))
}

/// A group's conversation, with the acting user, who must be a member.
async fn group(state: &AppState, caller: &Caller, guid: &str) -> Result<(ConversationId, Uid), ApiError> {
    let me = caller.user()?.clone();
    let guid = parse_guid(guid)?;
    visible_group(state, caller, &guid).await?;
    if state.store.member(&guid, &me).await?.is_none() {
        return Err(ApiError::forbidden("ERR_NOT_A_MEMBER", format!("`{me}` is not a member of group `{guid}`")));
    }
    Ok((ConversationId::group(&guid), me))
}

async fn mark(
    state: &AppState,
    conversation: &ConversationId,
    uid: &Uid,
    kind: ReceiptKind,
    message_id: Option<&str>,
) -> Result<Response, ApiError> {
    match state.store.mark_conversation(conversation, uid, kind, message_id, now()).await {
        Ok(receipt) => Ok(data(receipt_view(&receipt))),
        Err(StoreError::NotFound("conversation")) => Err(ApiError::not_found(
            "ERR_CONVERSATION_NOT_FOUND",
            format!("conversation `{conversation}` has no messages yet"),
        )),
        Err(StoreError::NotFound(_)) => Err(ApiError::not_found(
            "ERR_MESSAGE_NOT_FOUND",
            format!("messageId names no message of conversation `{conversation}`"),
        )),
        Err(other) => Err(other.into()),
    }
}

fn receipt_view(receipt: &Receipt) -> Value {
    json!({
        "success": true,
        "conversationId": receipt.conversation_id,
        "uid": receipt.uid,
        "deliveredSeq": receipt.delivered_seq,
        "readSeq": receipt.read_seq,
        "lastSeq": receipt.last_seq,
        "unreadMessageCount": receipt.unread(),
        "changed": receipt.moved,
    })
}

/// `POST /v3/users/{uid}/conversation/read`: the acting user read its conversation with `uid` up to
/// `messageId` (or the newest message).
pub async fn read_direct(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let target = mark_target(&body)?;
    let (conversation, me) = direct(&state, &caller, &uid).await?;
    mark(&state, &conversation, &me, ReceiptKind::Read, target.as_deref()).await
}

/// `POST /v3/users/{uid}/conversation/delivered`.
pub async fn delivered_direct(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let target = mark_target(&body)?;
    let (conversation, me) = direct(&state, &caller, &uid).await?;
    mark(&state, &conversation, &me, ReceiptKind::Delivered, target.as_deref()).await
}

/// `DELETE /v3/users/{uid}/conversation`: resets the unread count (reads up to the newest message).
pub async fn reset_direct(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let (conversation, me) = direct(&state, &caller, &uid).await?;
    mark(&state, &conversation, &me, ReceiptKind::Read, None).await
}

/// `POST /v3/groups/{guid}/conversation/read`.
pub async fn read_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let target = mark_target(&body)?;
    let (conversation, me) = group(&state, &caller, &guid).await?;
    mark(&state, &conversation, &me, ReceiptKind::Read, target.as_deref()).await
}

/// `POST /v3/groups/{guid}/conversation/delivered`.
pub async fn delivered_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let target = mark_target(&body)?;
    let (conversation, me) = group(&state, &caller, &guid).await?;
    mark(&state, &conversation, &me, ReceiptKind::Delivered, target.as_deref()).await
}

/// `DELETE /v3/groups/{guid}/conversation`: resets the unread count of a group conversation.
pub async fn reset_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let (conversation, me) = group(&state, &caller, &guid).await?;
    mark(&state, &conversation, &me, ReceiptKind::Read, None).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListConversations {
    per_page: Option<u32>,
    /// `meta.pagination.next` of the previous page.
    cursor: Option<String>,
}

/// A cursor as sent back: `<last activity in ms>:<conversation key>` (opaque to clients).
fn parse_cursor(raw: &str) -> Result<ConversationCursor, ApiError> {
    let invalid = || ApiError::bad_request("ERR_CURSOR_INVALID", "cursor must be a `meta.pagination.next` value");
    let (at, id) = raw.split_once(':').ok_or_else(invalid)?;
    let last_at = at.parse::<i64>().map_err(|_| invalid())?;
    let conversation_id = ConversationId::from_key(id).map_err(|_| invalid())?;
    Ok(ConversationCursor { last_at, conversation_id })
}

/// `GET /v3/users/{uid}/conversations`: the user's conversations (the user itself or the app may ask), newest
/// activity first, each with the other user or the group, the last message and the unread count.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Query(query): Query<ListConversations>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let uid = parse_uid(&uid)?;
    may_act_for(&caller, &uid)?;
    if state.store.get_user(&uid).await?.is_none() {
        return Err(uid_not_found(&uid));
    }
    let limit = per_page(query.per_page)?;
    let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let conversations = state.store.list_conversations(&uid, after.as_ref(), limit).await?;
    let mut items = Vec::with_capacity(conversations.len());
    for conversation in &conversations {
        items.push(conversation_view(&state, conversation).await?);
    }
    let next = match conversations.last() {
        Some(last) if conversations.len() == limit as usize => {
            let cursor = last.cursor();
            Value::from(format!("{}:{}", cursor.last_at, cursor.conversation_id.key()))
        }
        _ => Value::Null,
    };
    Ok(page(items, json!({ "pagination": { "perPage": limit, "next": next } })))
}

async fn conversation_view(state: &AppState, conversation: &ConversationSummary) -> Result<Value, ApiError> {
    let (conversation_type, with) = match &conversation.with {
        ConversationWith::User(other) => {
            let user = state.store.get_user(other).await?;
            ("user", user.as_ref().map_or_else(|| json!({ "uid": other }), views::user))
        }
        ConversationWith::Group(guid) => {
            let group = state.store.get_group(guid).await?;
            ("group", group.as_ref().map_or_else(|| json!({ "guid": guid }), views::group))
        }
    };
    Ok(json!({
        "conversationId": conversation.conversation_id,
        "conversationType": conversation_type,
        "conversationWith": with,
        "lastMessage": conversation.last_message.as_ref().map(views::message),
        "unreadMessageCount": conversation.unread(),
        "deliveredSeq": conversation.delivered_seq,
        "readSeq": conversation.read_seq,
        "updatedAt": conversation.last_at.div_euclid(1000),
    }))
}
