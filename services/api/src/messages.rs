//! `/v3/messages` and conversation history.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use comet_model::{Category, ConversationId, Message, MessageEdit, NewMessage, ReceiverType, Uid};
use comet_store::{MessageChange, MessageFilter, MessagePage, Refusal, StoreError};
use serde::Deserialize;

use crate::auth::{Caller, identify};
use crate::body::{Path, Query, RawBody, data, page, parse, per_page};
use crate::groups::{parse_guid, visible_group};
use crate::users::parse_uid;
use crate::{ApiError, AppState, now, views};

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

pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
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
    check_data(category, &request.message_type, &request.data)?;
    check_tags(&request.tags)?;
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
                _ => {
                    return Err(ApiError::not_found(
                        "ERR_UID_NOT_FOUND",
                        format!("receiver `{receiver}` does not exist"),
                    ));
                }
            }
            ConversationId::direct(&sender, &receiver)
        }
        ReceiverType::Group => {
            let guid = parse_guid(&request.receiver)?;
            visible_group(&state, &caller, &guid).await?;
            ConversationId::group(&guid)
        }
    };
    if let Some(parent_id) = &request.parent_id {
        let parent = state.store.get_message(parent_id).await?;
        if parent.is_none_or(|parent| parent.conversation_id != conversation_id) {
            return Err(ApiError::not_found("ERR_PARENT_NOT_FOUND", "parentId names no message of this conversation"));
        }
    }
    let mut message_data = request.data;
    let screened = crate::moderation::screen::screen(
        &state,
        &sender,
        receiver_type,
        &request.receiver,
        &request.message_type,
        &mut message_data,
        crate::moderation::screen::Stage::Send,
    )
    .await?;
    let new_message = NewMessage {
        conversation_id,
        sender,
        receiver: request.receiver,
        receiver_type,
        category,
        message_type: request.message_type,
        data: message_data,
        muid: request.muid,
        parent_id: request.parent_id,
        tags: request.tags,
    };
    let sender = new_message.sender.clone();
    let receiver = new_message.receiver.clone();
    let response = if screened.blocked() {
        blocked(&state, &screened, new_message).await?
    } else if screened.pending() {
        held(&state, &screened, new_message).await?
    } else {
        // Blocks and membership are decided by the store, under the conversation's lock.
        let (message, _created) =
            state.store.send_message(&new_message, now()).await.map_err(|error| send_refused(error, &new_message))?;
        crate::moderation::screen::enqueue(&state, &screened, &message).await?;
        data(views::message(&message))
    };
    let sent = comet_moderation::sender::Sent { sender: &sender, receiver_type, receiver: &receiver };
    crate::moderation::screen::sender_actions(&state, &screened, sent).await;
    Ok(response)
}

/// A send the store refused under the conversation's lock, as the API says it.
fn send_refused(error: StoreError, new_message: &NewMessage) -> ApiError {
    match error {
        StoreError::Refused(Refusal::Blocked) => ApiError::forbidden(
            "ERR_BLOCKED",
            format!("`{}` and `{}` cannot message: one blocked the other", new_message.sender, new_message.receiver),
        ),
        StoreError::Refused(_) => ApiError::forbidden(
            "ERR_NOT_A_MEMBER",
            format!("`{}` is not a member of group `{}`", new_message.sender, new_message.receiver),
        ),
        other => other.into(),
    }
}

/// A message an asynchronous rule must decide: held as `pending` (no seq, no delivery, no history) with its
/// `message.pending` event, and answered to its sender with `data.moderation.status` `pending` and `seq` 0. A
/// retry with the same `muid` answers the message as it stands (committed once approved).
async fn held(
    state: &AppState,
    screened: &crate::moderation::screen::Screened,
    new_message: NewMessage,
) -> Result<Response, ApiError> {
    let (held, created) = state
        .store
        .hold_message(&new_message, &screened.asks(), now())
        .await
        .map_err(|error| send_refused(error, &new_message))?;
    if !created && let Some(committed) = state.store.get_message(&held.message.id).await? {
        return Ok(data(views::message(&committed)));
    }
    if created {
        crate::moderation::screen::enqueue(state, screened, &held.message).await?;
    }
    Ok(data(views::message(&held.message)))
}

/// A message a rule blocked: never committed to the conversation (no seq, no event, no history), queued for
/// review, and answered to its sender as CometChat does, `data.moderation.status` `disapproved` (with `seq` 0).
/// A sender outside the conversation is refused as any send would be.
async fn blocked(
    state: &AppState,
    screened: &crate::moderation::screen::Screened,
    new_message: NewMessage,
) -> Result<Response, ApiError> {
    if !state.store.takes_part(&new_message.conversation_id, &new_message.sender).await? {
        return Err(ApiError::forbidden(
            "ERR_NOT_A_MEMBER",
            format!("`{}` is not a member of group `{}`", new_message.sender, new_message.receiver),
        ));
    }
    let now = now();
    let message = new_message.to_message(uuid::Uuid::now_v7().to_string(), 0, now);
    crate::moderation::screen::enqueue(state, screened, &message).await?;
    Ok(data(views::message(&message)))
}

/// Checks a message's `data`: an object, with `text` for text messages, at most [`MAX_MESSAGE_BYTES`].
fn check_data(category: Category, message_type: &str, data: &serde_json::Value) -> Result<(), ApiError> {
    if !data.is_object() {
        return Err(ApiError::bad_request("ERR_MESSAGE_DATA_INVALID", "data must be a JSON object"));
    }
    if category == Category::Message && message_type == "text" {
        let has_text = data.get("text").and_then(|text| text.as_str()).is_some_and(|text| !text.trim().is_empty());
        if !has_text {
            return Err(ApiError::bad_request("ERR_MESSAGE_TEXT_MISSING", "a text message needs data.text"));
        }
    }
    let size = serde_json::to_vec(data).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size > MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ERR_MESSAGE_TOO_LARGE",
            format!("message data is {size} bytes; the limit is {MAX_MESSAGE_BYTES}"),
        ));
    }
    Ok(())
}

/// At most [`MAX_TAGS`] tags of 1 to 100 bytes.
fn check_tags(tags: &[String]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS || tags.iter().any(|tag| tag.is_empty() || tag.len() > 100) {
        return Err(ApiError::bad_request(
            "ERR_TAGS_INVALID",
            format!("at most {MAX_TAGS} tags of 1 to 100 characters"),
        ));
    }
    Ok(())
}

/// Whether `caller` may read `message`: the app, and those who take part in its conversation (the store's rule).
pub(crate) async fn may_read(state: &AppState, caller: &Caller, message: &Message) -> Result<bool, ApiError> {
    match caller {
        Caller::App => Ok(true),
        Caller::AuthOnly => Ok(false),
        Caller::User(uid) => Ok(state.store.may_read(message, uid).await?),
    }
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let not_found = || ApiError::not_found("ERR_MESSAGE_NOT_FOUND", format!("message `{id}` does not exist"));
    let message = state.store.get_message(&id).await?.ok_or_else(not_found)?;
    if !may_read(&state, &caller, &message).await? {
        return Err(not_found());
    }
    let counts = state.store.reaction_counts(&[message.id.as_str()]).await?;
    Ok(data(views::message_with_reactions(&message, &counts)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct History {
    per_page: Option<u32>,
    after_seq: Option<i64>,
    before_seq: Option<i64>,
    /// `true` leaves deleted messages out.
    hide_deleted: Option<String>,
    /// Unix seconds: only messages sent, edited or deleted since then.
    updated_since: Option<String>,
    /// Only the replies in this message's thread.
    parent_id: Option<String>,
}

fn history_page(query: &History) -> Result<(MessagePage, MessageFilter), ApiError> {
    if query.after_seq.is_some() && query.before_seq.is_some() {
        return Err(ApiError::bad_request("ERR_CURSOR_INVALID", "give afterSeq or beforeSeq, not both"));
    }
    let hide_deleted = match query.hide_deleted.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("ERR_HIDE_DELETED_INVALID", "hideDeleted must be true or false")),
    };
    let updated_since = match query.updated_since.as_deref() {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(seconds) if seconds >= 0 => Some(seconds.saturating_mul(1000)),
            _ => {
                return Err(ApiError::bad_request(
                    "ERR_UPDATED_SINCE_INVALID",
                    "updatedSince must be a time in Unix seconds",
                ));
            }
        },
    };
    if query.parent_id.as_deref().is_some_and(|id| id.is_empty() || id.len() > 64) {
        return Err(ApiError::bad_request("ERR_PARENT_ID_INVALID", "parentId must be a message id"));
    }
    let page =
        MessagePage { after_seq: query.after_seq, before_seq: query.before_seq, limit: per_page(query.per_page)? };
    Ok((page, MessageFilter { hide_deleted, updated_since, parent_id: query.parent_id.clone() }))
}

async fn history_response(state: &AppState, messages: &[Message], limit: u32) -> Result<Response, ApiError> {
    let first = messages.first().map(|message| message.seq);
    let last = messages.last().map(|message| message.seq);
    let full = messages.len() == limit as usize;
    let ids: Vec<&str> = messages.iter().map(|message| message.id.as_str()).collect();
    let counts = state.store.reaction_counts(&ids).await?;
    Ok(page(
        messages.iter().map(|message| views::message_with_reactions(message, &counts)).collect(),
        serde_json::json!({ "cursor": { "firstSeq": first, "lastSeq": last, "full": full }, "perPage": limit }),
    ))
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
    let (page, filter) = history_page(&query)?;
    let messages = state.store.list_messages_filtered(&ConversationId::direct(&me, &other), &page, &filter).await?;
    history_response(&state, &messages, page.limit).await
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
    let (page, filter) = history_page(&query)?;
    let messages = state.store.list_messages_filtered(&ConversationId::group(&guid), &page, &filter).await?;
    history_response(&state, &messages, page.limit).await
}

/// The message `id` if `caller` may read it; otherwise, and when it does not exist, 404.
pub(crate) async fn readable_message(state: &AppState, caller: &Caller, id: &str) -> Result<Message, ApiError> {
    let not_found = || ApiError::not_found("ERR_MESSAGE_NOT_FOUND", format!("message `{id}` does not exist"));
    let message = state.store.get_message(id).await?.ok_or_else(not_found)?;
    if !may_read(state, caller, &message).await? {
        return Err(not_found());
    }
    Ok(message)
}

/// The user acting on a message (`None` for the app). Whether it may change the message is the store's rule,
/// decided in the change's transaction (`comet_store` `access`): its sender, a group's admins and moderators.
fn acting_user(caller: &Caller) -> Result<Option<Uid>, ApiError> {
    caller.full_access()?;
    Ok(match caller {
        Caller::User(uid) => Some(uid.clone()),
        _ => None,
    })
}

fn already_deleted(id: &str) -> ApiError {
    ApiError::conflict("ERR_MESSAGE_DELETED", format!("message `{id}` is deleted and can no longer change"))
}

/// The store's answer to a change, as the API's.
fn changed(id: &str, change: Result<MessageChange, comet_store::StoreError>) -> Result<Message, ApiError> {
    match change {
        Ok(MessageChange::Changed(message)) => Ok(message),
        Ok(MessageChange::AlreadyDeleted(_)) => Err(already_deleted(id)),
        Err(StoreError::NotFound(_)) => {
            Err(ApiError::not_found("ERR_MESSAGE_NOT_FOUND", format!("message `{id}` does not exist")))
        }
        Err(StoreError::Refused(Refusal::NotAllowed)) => Err(ApiError::forbidden(
            "ERR_MESSAGE_NOT_ALLOWED",
            format!("only the sender, the group's admins and moderators, or the app may change message `{id}`"),
        )),
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EditMessage {
    data: Option<serde_json::Value>,
    tags: Option<Vec<String>>,
}

/// `PUT /v3/messages/{id}`: replaces `data` (text, metadata, attachments) and/or `tags`.
pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let request: EditMessage = parse(&body)?;
    if request.data.is_none() && request.tags.is_none() {
        return Err(ApiError::bad_request("ERR_EDIT_EMPTY", "give `data`, `tags` or both"));
    }
    let message = readable_message(&state, &caller, &id).await?;
    if let Some(new_data) = &request.data {
        check_data(message.category, &message.message_type, new_data)?;
    }
    if let Some(tags) = &request.tags {
        check_tags(tags)?;
    }
    let by = acting_user(&caller)?;
    // An edit meets the rules as a send does: a blocked edit is refused and changes nothing.
    let mut new_data = request.data;
    let screened = match new_data.as_mut() {
        Some(new_data) => Some(
            crate::moderation::screen::screen(
                &state,
                &message.sender,
                message.receiver_type,
                &message.receiver,
                &message.message_type,
                new_data,
                crate::moderation::screen::Stage::Edit,
            )
            .await?,
        ),
        None => None,
    };
    if screened.as_ref().is_some_and(crate::moderation::screen::Screened::blocked) {
        return Err(ApiError::bad_request("ERR_MODERATION_BLOCKED", "a moderation rule blocks the edited text"));
    }
    let edit = MessageEdit { data: new_data, tags: request.tags };
    let edited = changed(&id, state.store.edit_message(&id, &edit, by.as_ref(), now()).await)?;
    if let Some(screened) = &screened {
        crate::moderation::screen::enqueue(&state, screened, &edited).await?;
    }
    Ok(data(views::message(&edited)))
}

/// `DELETE /v3/messages/{id}`: a soft delete. The message keeps its place in history with `deletedAt` and
/// `deletedBy` set and its `data` emptied.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    readable_message(&state, &caller, &id).await?;
    let by = acting_user(&caller)?;
    let deleted = changed(&id, state.store.delete_message(&id, by.as_ref(), now()).await)?;
    Ok(data(views::message(&deleted)))
}

/// `GET /v3/messages/{id}/thread`: the replies to a message, with the history's cursor and filters.
pub async fn thread(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<History>,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    caller.full_access()?;
    let parent = readable_message(&state, &caller, &id).await?;
    let (page, mut filter) = history_page(&query)?;
    if filter.parent_id.as_ref().is_some_and(|parent_id| parent_id != &parent.id) {
        return Err(ApiError::bad_request("ERR_PARENT_ID_INVALID", "parentId differs from the thread's message"));
    }
    filter.parent_id = Some(parent.id.clone());
    let messages = state.store.list_messages_filtered(&parent.conversation_id, &page, &filter).await?;
    history_response(&state, &messages, page.limit).await
}
