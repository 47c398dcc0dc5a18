//! The engine in the send path, before the message is committed or delivered (docs/api.md, "Moderation in
//! the send path"). Only `text` messages are checked. A client cannot set `data.moderation`: it is removed
//! and, while any rule is enabled, set to what the rules decided.
//!
//! - `block` (CometChat's behaviour for a synchronous rule): the send answers 200 with the message as the
//!   sender sent it, `data.moderation.status` `disapproved` and `seq` 0. It is not committed to the
//!   conversation, so no recipient's socket, no history and no webhook ever sees it; it waits in the blocked
//!   queue.
//! - `mask`: recipients and history get the text with the matched spans replaced by `*`; the original is kept
//!   for moderators only (the `masked` queue, decided by the rule, listed with the reviewed messages).
//! - `flag`: delivered as sent and queued for review.
//! - a rule with a Custom API condition whose filters hold (and no rule blocked): the message is held as
//!   `pending` (`comet_store` `hold_message`): the send answers 200 with `data.moderation.status` `pending`
//!   and `seq` 0, and the moderation role decides it later.

use comet_model::{Message, ReceiverType, Uid};
use comet_moderation::{Action, Receiver, Sender, Verdict};
use comet_store::{ReviewItem, ReviewQueue, ReviewStatus};
use serde_json::{Value, json};

use crate::{ApiError, AppState, now};

/// Whether a message is sent or an edit of a delivered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Send,
    Edit,
}

/// What the rules decided for one message about to be sent.
#[derive(Debug)]
pub(crate) struct Screened {
    verdict: Verdict,
    /// The text as the sender wrote it, when the rules looked at one.
    original: Option<String>,
}

impl Screened {
    pub(crate) fn blocked(&self) -> bool {
        self.verdict.blocked()
    }

    /// True when an asynchronous rule must decide: the message is held as `pending`.
    pub(crate) fn pending(&self) -> bool {
        self.verdict.pending()
    }

    /// What the moderation role must ask, as stored with the held message.
    pub(crate) fn asks(&self) -> Value {
        serde_json::to_value(&self.verdict.asks).unwrap_or_default()
    }

    fn first_rule(&self, action: Action) -> Option<String> {
        self.verdict.matches.iter().find(|matched| matched.action == action).map(|matched| matched.rule_id.clone())
    }
}

/// Runs the rules on `data` (a message from `sender` to `receiver`): removes a client's `data.moderation`,
/// masks `data.text` when a `mask` rule matched, and sets `data.moderation.status`.
pub(crate) async fn screen(
    state: &AppState,
    sender: &Uid,
    receiver_type: ReceiverType,
    receiver: &str,
    message_type: &str,
    data: &mut Value,
    stage: Stage,
) -> Result<Screened, ApiError> {
    if let Some(object) = data.as_object_mut() {
        object.remove("moderation");
    }
    let engine = state.moderation.engine();
    let text = data.get("text").and_then(Value::as_str).filter(|_| message_type == "text").map(str::to_owned);
    let (Some(text), true) = (text, engine.enabled_rules() > 0) else {
        return Ok(Screened { verdict: Verdict::default(), original: None });
    };
    let role = if engine.filters_on_role() {
        state.store.get_user(sender).await?.and_then(|user| user.role).unwrap_or_else(|| "default".to_owned())
    } else {
        String::new()
    };
    let mut verdict = state.moderation.moderate(
        &engine,
        &comet_moderation::Message {
            text: &text,
            sender: Sender { uid: sender.as_str(), role: &role, tags: &[] },
            receiver: Receiver { kind: receiver_type, id: receiver, tags: &[] },
        },
    );
    if stage == Stage::Edit {
        // An edited message is delivered already: nothing can hold it, so only the synchronous rules apply.
        verdict.asks.clear();
    }
    let status = if verdict.blocked() {
        "disapproved"
    } else if verdict.pending() {
        "pending"
    } else {
        "approved"
    };
    if !verdict.blocked()
        && let Some(masked) = verdict.masked(&text)
    {
        data["text"] = Value::from(masked);
    }
    if let Some(object) = data.as_object_mut() {
        object.insert("moderation".to_owned(), json!({ "status": status }));
    }
    Ok(Screened { verdict, original: Some(text) })
}

/// Carries out the sender actions of the rules that matched (kick, ban, block), once the send is answered
/// (`comet_moderation::sender`); a refused send never gets here.
pub(crate) async fn sender_actions(state: &AppState, screened: &Screened, sent: comet_moderation::sender::Sent<'_>) {
    let actions = screened.verdict.sender_actions();
    if !actions.is_empty() {
        comet_moderation::sender::apply(&state.store, &actions, sent, now()).await;
    }
}

/// Queues what the rules asked for once the message is decided: the blocked queue for a blocked message
/// (its id is the one the sender got), the masked original and the flagged queue for a committed one.
pub(crate) async fn enqueue(state: &AppState, screened: &Screened, message: &Message) -> Result<(), ApiError> {
    let Some(original) = &screened.original else { return Ok(()) };
    let now = now();
    let sent_text = if screened.blocked() { None } else { message.data.get("text").and_then(Value::as_str) };
    let message_id = message.id.as_str();
    let item = |queue: ReviewQueue, rule_id: Option<String>, status: ReviewStatus| ReviewItem {
        id: format!("{}-{message_id}", queue.as_str()),
        queue,
        message_id: message_id.to_owned(),
        conversation: message.conversation_id.to_string(),
        sender: message.sender.to_string(),
        receiver_type: message.receiver_type.as_str().to_owned(),
        receiver: message.receiver.clone(),
        text: original.clone(),
        masked: sent_text.filter(|sent| sent != original).map(str::to_owned),
        reviewed_by: (status != ReviewStatus::Pending).then(|| format!("rule:{}", rule_id.clone().unwrap_or_default())),
        reviewed_at: (status != ReviewStatus::Pending).then_some(now),
        rule_id,
        status,
        created_at: now,
    };
    let store = state.moderation.store();
    if screened.blocked() {
        store.enqueue(&item(ReviewQueue::Blocked, screened.first_rule(Action::Block), ReviewStatus::Pending)).await?;
        return Ok(());
    }
    if let Some(rule) = screened.first_rule(Action::Mask) {
        store.enqueue(&item(ReviewQueue::Masked, Some(rule), ReviewStatus::Approved)).await?;
    }
    if let Some(rule) = screened.first_rule(Action::Flag) {
        store.enqueue(&item(ReviewQueue::Flagged, Some(rule), ReviewStatus::Pending)).await?;
    }
    Ok(())
}
