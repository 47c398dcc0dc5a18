//! The review queues (`blocked-messages`, `flagged-messages`, `reviewed-messages`), a moderator's decision on
//! a queued message, users' reports (`POST /v3/messages/{id}/flagged`) and the audit log.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use comet_model::{Category, ConversationId, Guid, Message, Millis, ReceiverType, Uid};
use comet_store::{ReviewFilter, ReviewItem, ReviewQueue, ReviewStatus, StoreError, UserReport};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{audit, moderator, seconds};
use crate::auth::identify;
use crate::body::{Path, Query, RawBody, data, page, parse, per_page};
use crate::{ApiError, AppState, now};

/// The reasons a user may give for a report (CometChat's flag reasons, as ids).
pub const REASONS: [&str; 8] = ["spam", "harassment", "hate", "sexual", "violence", "self_harm", "scam", "other"];
/// The longest `ruleId` or `sender` a queue is filtered by (the longest id).
const MAX_FILTER_CHARS: usize = 100;
/// The longest remark of a report, in characters.
pub const MAX_REMARK_CHARS: usize = 1000;

fn view(item: &ReviewItem) -> Value {
    json!({
        "id": item.id,
        "queue": item.queue.as_str(),
        "messageId": item.message_id,
        "conversationId": item.conversation,
        "sender": item.sender,
        "receiverType": item.receiver_type,
        "receiver": item.receiver,
        "text": item.text,
        "maskedText": item.masked,
        "ruleId": item.rule_id,
        "source": if item.rule_id.is_some() { "rule" } else { "report" },
        "status": item.status.as_str(),
        "createdAt": seconds(item.created_at),
        "reviewedBy": item.reviewed_by,
        "reviewedAt": item.reviewed_at.map(seconds),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueQuery {
    per_page: Option<u32>,
    /// Unix seconds, inclusive.
    from: Option<i64>,
    /// Unix seconds, inclusive.
    to: Option<i64>,
    rule_id: Option<String>,
    sender: Option<String>,
    /// The previous page's `meta.pagination.next`.
    before: Option<i64>,
}

fn millis(seconds: i64, field: &str) -> Result<Millis, ApiError> {
    seconds
        .checked_mul(1000)
        .filter(|millis| *millis >= 0)
        .ok_or_else(|| ApiError::bad_request("ERR_QUERY_INVALID", format!("{field} must be Unix seconds")))
}

async fn queue(
    state: &AppState,
    headers: &HeaderMap,
    query: QueueQuery,
    queue: Option<ReviewQueue>,
    reviewed: bool,
) -> Result<Response, ApiError> {
    moderator(state, headers).await?;
    let limit = per_page(query.per_page)?;
    for (field, value) in [("ruleId", &query.rule_id), ("sender", &query.sender)] {
        if value.as_ref().is_some_and(|value| value.chars().count() > MAX_FILTER_CHARS) {
            return Err(ApiError::bad_request(
                "ERR_QUERY_INVALID",
                format!("{field} may be at most {MAX_FILTER_CHARS} characters"),
            ));
        }
    }
    let filter = ReviewFilter {
        queue,
        reviewed: Some(reviewed),
        since: query.from.map(|from| millis(from, "from")).transpose()?,
        // `to` names a second: every millisecond of it is in.
        until: query.to.map(|to| millis(to, "to").map(|until| until.saturating_add(999))).transpose()?,
        rule_id: query.rule_id,
        sender: query.sender,
        before: query.before,
        limit,
    };
    let items = state.moderation.store().review_items(&filter).await?;
    let next = if items.len() == limit as usize { items.last().map(|item| item.created_at) } else { None };
    Ok(page(items.iter().map(view).collect(), json!({ "pagination": { "perPage": limit, "next": next } })))
}

/// `GET /v3/moderation/blocked-messages`: blocked messages waiting for review, newest first.
pub async fn blocked(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Result<Response, ApiError> {
    queue(&state, &headers, query, Some(ReviewQueue::Blocked), false).await
}

/// `GET /v3/moderation/flagged-messages`: flagged messages (by rules or reports) waiting for review.
pub async fn flagged(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Result<Response, ApiError> {
    queue(&state, &headers, query, Some(ReviewQueue::Flagged), false).await
}

/// `GET /v3/moderation/reviewed-messages`: messages of both queues a moderator decided.
pub async fn reviewed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Result<Response, ApiError> {
    queue(&state, &headers, query, None, true).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Decision {
    /// `approved` or `rejected`.
    status: String,
}

async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    queue: ReviewQueue,
    id: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let who = moderator(state, headers).await?;
    let decision: Decision = parse(body)?;
    let status = match decision.status.as_str() {
        "approved" => ReviewStatus::Approved,
        "rejected" => ReviewStatus::Rejected,
        _ => return Err(ApiError::bad_request("ERR_MODERATION_STATUS_INVALID", "status must be approved or rejected")),
    };
    let not_found =
        || ApiError::not_found("ERR_MODERATION_REVIEW_NOT_FOUND", format!("no {} message `{id}`", queue.as_str()));
    let item =
        state.moderation.store().review_item(id).await?.filter(|item| item.queue == queue).ok_or_else(not_found)?;
    if item.status != ReviewStatus::Pending {
        return Err(ApiError::conflict("ERR_MODERATION_ALREADY_REVIEWED", format!("`{id}` was reviewed already")));
    }
    if queue == ReviewQueue::Blocked && status == ReviewStatus::Approved {
        deliver_approved(state, &item, &who).await?;
    }
    if !state.moderation.store().decide(id, status, who.as_str(), now()).await? {
        return Err(ApiError::conflict("ERR_MODERATION_ALREADY_REVIEWED", format!("`{id}` was reviewed already")));
    }
    audit(
        state,
        &who,
        &format!("review.{}", status.as_str()),
        "review",
        id,
        json!({ "queue": queue.as_str(), "messageId": item.message_id }),
    )
    .await?;
    let item = state.moderation.store().review_item(id).await?.ok_or_else(not_found)?;
    Ok(data(view(&item)))
}

/// A blocked message a moderator approves is delivered: committed to its conversation now, as a send on its
/// sender's behalf, with its id, the next seq and the time of approval (`comet_store` `commit_approved`). A
/// message an asynchronous rule held keeps everything it was sent with; one the send path blocked is rebuilt
/// from its queue entry (a text message: its text, nothing else). Refused (409) when the sender may no longer
/// send there; a message committed already (a second approval racing this one) is not committed again.
async fn deliver_approved(state: &AppState, item: &ReviewItem, who: &super::Moderator) -> Result<(), ApiError> {
    let message = match state.store.held_message(&item.message_id).await? {
        Some(held) => held.message,
        None => rebuilt(item)?,
    };
    match state.store.commit_approved(&message, who.as_str(), now()).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(StoreError::Refused(refusal)) => Err(ApiError::conflict(
            "ERR_MODERATION_UNDELIVERABLE",
            format!("`{}` cannot be delivered now: {refusal}", item.message_id),
        )),
        Err(error) => Err(error.into()),
    }
}

/// The text message a blocked queue entry stands for; its conversation is decided from its sender, receiver
/// and receiver type (never from the display id).
fn rebuilt(item: &ReviewItem) -> Result<Message, ApiError> {
    let corrupt = || ApiError::Internal(format!("review item `{}` names no conversation", item.id));
    let sender = Uid::parse(&item.sender).map_err(|_| corrupt())?;
    let receiver_type = ReceiverType::parse(&item.receiver_type).ok_or_else(corrupt)?;
    let conversation_id = match receiver_type {
        ReceiverType::User => ConversationId::direct(&sender, &Uid::parse(&item.receiver).map_err(|_| corrupt())?),
        ReceiverType::Group => ConversationId::group(&Guid::parse(&item.receiver).map_err(|_| corrupt())?),
    };
    Ok(Message {
        id: item.message_id.clone(),
        conversation_id,
        seq: 0,
        sender,
        receiver: item.receiver.clone(),
        receiver_type,
        category: Category::Message,
        message_type: "text".to_owned(),
        data: json!({ "text": item.text }),
        muid: None,
        parent_id: None,
        tags: Vec::new(),
        sent_at: item.created_at,
        updated_at: item.created_at,
        edited_at: None,
        deleted_at: None,
        edited_by: None,
        deleted_by: None,
    })
}

/// `PATCH /v3/moderation/blocked-messages/{id}` `{status}`.
pub async fn decide_blocked(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    decide(&state, &headers, ReviewQueue::Blocked, &id, &body).await
}

/// `PATCH /v3/moderation/flagged-messages/{id}` `{status}`.
pub async fn decide_flagged(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    decide(&state, &headers, ReviewQueue::Flagged, &id, &body).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Report {
    reason_id: String,
    remark: Option<String>,
}

/// `POST /v3/messages/{id}/flagged`: a user reports a message they may read; it joins the flagged queue
/// (once, however many report it). The app itself reports with `onBehalfOf`.
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let caller = identify(&state, &headers).await?;
    let reporter = caller.user()?.clone();
    let request: Report = parse(&body)?;
    if !REASONS.contains(&request.reason_id.as_str()) {
        return Err(ApiError::bad_request(
            "ERR_MODERATION_REASON_INVALID",
            format!("reasonId must be one of {}", REASONS.join(", ")),
        ));
    }
    if request.remark.as_ref().is_some_and(|remark| remark.chars().count() > MAX_REMARK_CHARS) {
        return Err(ApiError::bad_request(
            "ERR_MODERATION_REMARK_INVALID",
            format!("remark may be at most {MAX_REMARK_CHARS} characters"),
        ));
    }
    let not_found = || ApiError::not_found("ERR_MESSAGE_NOT_FOUND", format!("message `{id}` does not exist"));
    let message = state.store.get_message(&id).await?.ok_or_else(not_found)?;
    if !crate::messages::may_read(&state, &caller, &message).await? {
        return Err(not_found());
    }
    let now = now();
    let report = UserReport {
        id: uuid::Uuid::now_v7().to_string(),
        message_id: message.id.clone(),
        reporter: reporter.to_string(),
        reason_id: request.reason_id,
        remark: request.remark,
        created_at: now,
    };
    match state.moderation.store().add_report(&report).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("ERR_MODERATION_ALREADY_REPORTED", format!("you reported `{id}` already")));
        }
        Err(error) => return Err(error.into()),
    }
    let item = ReviewItem {
        id: uuid::Uuid::now_v7().to_string(),
        queue: ReviewQueue::Flagged,
        message_id: message.id.clone(),
        conversation: message.conversation_id.to_string(),
        sender: message.sender.to_string(),
        receiver_type: message.receiver_type.as_str().to_owned(),
        receiver: message.receiver.clone(),
        text: message.data.get("text").and_then(Value::as_str).unwrap_or_default().to_owned(),
        masked: None,
        rule_id: None,
        status: ReviewStatus::Pending,
        created_at: now,
        reviewed_by: None,
        reviewed_at: None,
    };
    state.moderation.store().enqueue(&item).await?;
    Ok(data(json!({
        "id": report.id,
        "messageId": report.message_id,
        "reasonId": report.reason_id,
        "remark": report.remark,
        "createdAt": seconds(report.created_at),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    per_page: Option<u32>,
    /// The previous page's `meta.pagination.next`.
    before: Option<i64>,
}

/// `GET /v3/moderation/audit`: every moderator action, newest first.
pub async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    moderator(&state, &headers).await?;
    let limit = per_page(query.per_page)?;
    let entries = state.moderation.store().audit(query.before, limit).await?;
    let next = if entries.len() == limit as usize { entries.last().map(|entry| entry.at) } else { None };
    let views = entries
        .iter()
        .map(|entry| {
            json!({
                "id": entry.id,
                "actor": entry.actor,
                "action": entry.action,
                "targetKind": entry.target_kind,
                "targetId": entry.target_id,
                "detail": serde_json::from_str::<Value>(&entry.detail).unwrap_or(Value::Null),
                "at": seconds(entry.at),
            })
        })
        .collect();
    Ok(page(views, json!({ "pagination": { "perPage": limit, "next": next } })))
}
