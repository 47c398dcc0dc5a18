//! `/v3/messages` and conversation history.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use comet_model::{Category, ConversationId, Message, NewMessage, ReceiverType};
use comet_store::MessagePage;
use serde::Deserialize;

use crate::auth::{identify, Caller};
use crate::body::{data, page, parse, per_page, RawBody};
use crate::groups::{parse_guid, visible_group};
use crate::users::parse_uid;
use crate::{now, views, ApiError, AppState};

/// Largest `data` of one message, serialized.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
pub const MAX_TAGS: usize = 25;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendMessage {
    receiver: String,
    receiver_type: String,
    #[serde(default = "default_category")]
    category: String,
    #[serde(rename = "type")]
    message_type: String,
    data: serde_json::Value,
    muid: Option<String>,
    parent_id: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

fn default_category() -> String {
    "message".to_owned()
}

const STANDARD_TYPES: [&str; 6] = ["text", "image", "file", "audio", "video", "custom"];

pub async fn send(State(state): State<AppState>, headers: HeaderMap, RawBody(body): RawBody) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let sender = caller.user()?.clone();
    let request: SendMessage = parse(&body)?;
    let receiver_type = ReceiverType::parse(&request.receiver_type)
        .ok_or_else(|| ApiError::bad_request("ERR_RECEIVER_TYPE_INVALID", "receiverType must be user or group"))?;
    let category = Category::parse(&request.category)
        .ok_or_else(|| ApiError::bad_request("ERR_CATEGORY_INVALID", "category must be message or custom"))?;
    let type_ok = match category {
        Category::Message => STANDARD_TYPES.contains(&request.message_type.as_str()),
        Category::Custom => !request.message_type.is_empty() && request.message_type.len() <= 100,
    };
    if !type_ok {
        return Err(ApiError::bad_request(
            "ERR_MESSAGE_TYPE_INVALID",
            "type must be text, image, file, audio, video or custom (category custom: any name up to 100 characters)",
        ));
    }
    if !request.data.is_object() {
        return Err(ApiError::bad_request("ERR_MESSAGE_DATA_INVALID", "data must be a JSON object"));
    }
    if category == Category::Message && request.message_type == "text" {
        let has_text = request.data.get("text").and_then(|text| text.as_str()).is_some_and(|text| !text.trim().is_empty());
        if !has_text {
            return Err(ApiError::bad_request("ERR_MESSAGE_TEXT_MISSING", "a text message needs data.text"));
        }
    }
    let size = serde_json::to_vec(&request.data).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size > MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ERR_MESSAGE_TOO_LARGE",
            format!("message data is {size} bytes; the limit is {MAX_MESSAGE_BYTES}"),
        ));
    }
    if request.tags.len() > MAX_TAGS || request.tags.iter().any(|tag| tag.is_empty() || tag.len() > 100) {
        return Err(ApiError::bad_request("ERR_TAGS_INVALID", format!("at most {MAX_TAGS} tags of 1 to 100 characters")));
    }
    if let Some(muid) = &request.muid
        && (muid.is_empty() || muid.len() > 100)
    {
        return Err(ApiError::bad_request("ERR_MUID_INVALID", "muid must be 1 to 100 characters"));
    }
    let conversation_id = match receiver_type {
        ReceiverType::User => {
            let receiver = parse_uid(&request.receiver)?;
            match state.store.get_user(&receiver).await? {
                Some(user) if user.deleted_at.is_none() => {}
                _ => return Err(ApiError::not_found("ERR_UID_NOT_FOUND", format!("receiver `{receiver}` does not exist"))),
            }
            if state.store.blocked_either_way(&sender, &receiver).await? {
                return Err(ApiError::forbidden("ERR_BLOCKED", format!("`{sender}` and `{receiver}` cannot message: one blocked the other")));
            }
            ConversationId::direct(&sender, &receiver)
        }
        ReceiverType::Group => {
            let guid = parse_guid(&request.receiver)?;
            visible_group(&state, &caller, &guid).await?;
            if state.store.member(&guid, &sender).await?.is_none() {
                return Err(ApiError::forbidden("ERR_NOT_A_MEMBER", format!("`{sender}` is not a member of group `{guid}`")));
            }
            ConversationId::group(&guid)
        }
    };
    if let Some(parent_id) = &request.parent_id {
        let parent = state.store.get_message(parent_id).await?;
        if parent.is_none_or(|parent| parent.conversation_id != conversation_id) {
            return Err(ApiError::not_found("ERR_PARENT_NOT_FOUND", "parentId names no message of this conversation"));
        }
    }
    let new_message = NewMessage {
        conversation_id,
        sender,
        receiver: request.receiver,
        receiver_type,
        category,
        message_type: request.message_type,
        data: request.data,
        muid: request.muid,
        parent_id: request.parent_id,
        tags: request.tags,
    };
    let (message, _created) = state.store.send_message(&new_message, now()).await?;
    Ok(data(views::message(&message)))
}

/// Whether `caller` may read `message`: the app, either side of a direct conversation, a group's members.
async fn may_read(state: &AppState, caller: &Caller, message: &Message) -> Result<bool, ApiError> {
    match caller {
        Caller::App => Ok(true),
        Caller::AuthOnly => Ok(false),
        Caller::User(uid) => match message.receiver_type {
            ReceiverType::User => Ok(&message.sender == uid || message.receiver == uid.as_str()),
            ReceiverType::Group => {
                let guid = parse_guid(&message.receiver)?;
                Ok(state.store.member(&guid, uid).await?.is_some())
            }
        },
    }
}

pub async fn get(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let not_found = || ApiError::not_found("ERR_MESSAGE_NOT_FOUND", format!("message `{id}` does not exist"));
    let message = state.store.get_message(&id).await?.ok_or_else(not_found)?;
    if !may_read(&state, &caller, &message).await? {
        return Err(not_found());
    }
    Ok(data(views::message(&message)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct History {
    per_page: Option<u32>,
    after_seq: Option<i64>,
    before_seq: Option<i64>,
}

fn history_page(query: &History) -> Result<MessagePage, ApiError> {
    if query.after_seq.is_some() && query.before_seq.is_some() {
        return Err(ApiError::bad_request("ERR_CURSOR_INVALID", "give afterSeq or beforeSeq, not both"));
    }
    Ok(MessagePage { after_seq: query.after_seq, before_seq: query.before_seq, limit: per_page(query.per_page)? })
}

fn history_response(messages: &[Message], limit: u32) -> Response {
    let first = messages.first().map(|message| message.seq);
    let last = messages.last().map(|message| message.seq);
    let full = messages.len() == limit as usize;
    page(
        messages.iter().map(views::message).collect(),
        serde_json::json!({ "cursor": { "firstSeq": first, "lastSeq": last, "full": full }, "perPage": limit }),
    )
}

/// `GET /v3/users/{uid}/messages`: the conversation between the acting user and `uid`.
pub async fn direct_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Query(query): Query<History>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let me = caller.user()?.clone();
    let other = parse_uid(&uid)?;
    let page = history_page(&query)?;
    let messages = state.store.list_messages(&ConversationId::direct(&me, &other), &page).await?;
    Ok(history_response(&messages, page.limit))
}

/// `GET /v3/groups/{guid}/messages`: members (and the app) only.
pub async fn group_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    Query(query): Query<History>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let guid = parse_guid(&guid)?;
    visible_group(&state, &caller, &guid).await?;
    if let Caller::User(uid) = &caller
        && state.store.member(&guid, uid).await?.is_none()
    {
        return Err(ApiError::forbidden("ERR_NOT_A_MEMBER", format!("`{uid}` is not a member of group `{guid}`")));
    }
    let page = history_page(&query)?;
    let messages = state.store.list_messages(&ConversationId::group(&guid), &page).await?;
    Ok(history_response(&messages, page.limit))
}
