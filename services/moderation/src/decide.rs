//! The moderation role's handler on the worker base: a `message.pending` event becomes one decision of the held
//! message (docs/api.md, "Asynchronous rules").
//!
//! ```text
//! message.pending → held row still pending? → Custom API (context messages) → rules' thresholds and actions
//!   → decide_held: approved (committed, message.sent) | disapproved — and message.moderated, one transaction
//! ```
//!
//! Exactly once: the store changes a held message only while it is `pending`, in the transaction that writes its
//! events. A role killed before that commit leaves the event uncommitted for the group, so it is handed out
//! again and decided then; killed after, the redelivery finds it decided and does nothing. The adapter may be
//! asked twice; the message is decided once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use comet_model::{Event, EventType, Message, now_millis};
use comet_store::{
    Decided, HeldDecision, HeldMessage, HeldStatus, MessageFilter, MessagePage, ReviewItem, ReviewQueue, ReviewStatus,
    Store,
};
use comet_worker::{Handler, LatencyHistogram, Outcome};
use futures::future::BoxFuture;
use serde_json::Value;

use crate::adapter::{AdapterError, Answer, CustomApi};
use crate::engine::Ask;
use crate::spec::{Action, FailurePolicy, SenderAction};
use crate::storage::ModerationStore;

/// Seconds: a Custom API answers within 2 s, a decision (from the send) within a few.
const LATENCY_BOUNDS: [f64; 10] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 30.0];

/// The role's counters.
#[derive(Debug)]
pub struct DecisionMetrics {
    approved: AtomicU64,
    disapproved: AtomicU64,
    /// Adapter failures by [`AdapterError::category`].
    failures: Mutex<BTreeMap<&'static str, u64>>,
    /// One Custom API request.
    adapter: LatencyHistogram,
    /// From the send (the held message's time) to the decision's commit.
    decision: LatencyHistogram,
}

impl Default for DecisionMetrics {
    fn default() -> DecisionMetrics {
        DecisionMetrics {
            approved: AtomicU64::new(0),
            disapproved: AtomicU64::new(0),
            failures: Mutex::new(AdapterError::CATEGORIES.iter().map(|category| (*category, 0)).collect()),
            adapter: LatencyHistogram::new(&LATENCY_BOUNDS),
            decision: LatencyHistogram::new(&LATENCY_BOUNDS),
        }
    }
}

impl DecisionMetrics {
    /// Decisions so far, approved and disapproved.
    pub fn decided(&self) -> (u64, u64) {
        (self.approved.load(Ordering::Relaxed), self.disapproved.load(Ordering::Relaxed))
    }

    /// Prometheus text; `pending` is the count of held messages waiting (read from the store by the caller).
    pub fn render(&self, pending: Option<i64>) -> String {
        let mut text = String::new();
        let name = "comet_moderation_decisions_total";
        let _ = writeln!(text, "# HELP {name} Held messages the moderation role decided.\n# TYPE {name} counter");
        let (approved, disapproved) = self.decided();
        let _ =
            writeln!(text, "{name}{{status=\"approved\"}} {approved}\n{name}{{status=\"disapproved\"}} {disapproved}");
        let name = "comet_moderation_adapter_failures_total";
        let _ = writeln!(text, "# HELP {name} Custom API requests that gave no answer, by why.\n# TYPE {name} counter");
        for (category, count) in self.failures.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(text, "{name}{{category=\"{category}\"}} {count}");
        }
        self.adapter.render(&mut text, "comet_moderation_adapter_seconds", "One Custom API request.", "");
        self.decision.render(
            &mut text,
            "comet_moderation_decision_seconds",
            "From the send of a held message to its decision.",
            "",
        );
        if let Some(pending) = pending {
            let name = "comet_moderation_pending_messages";
            let _ = writeln!(
                text,
                "# HELP {name} Held messages waiting for a decision.\n# TYPE {name} gauge\n{name} {pending}"
            );
        }
        text
    }
}

/// The handler the moderation role runs in the consumer group `comet-moderation`.
pub struct Decider {
    store: Store,
    queues: Arc<dyn ModerationStore>,
    adapter: CustomApi,
    metrics: Arc<DecisionMetrics>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Decider").field("adapter", &self.adapter).finish_non_exhaustive()
    }
}

/// What the rules make of one answer (or of the adapter's failure): the decision, the flagging rule, and the
/// sender actions of the rules that matched.
fn decision_of(
    asks: &[Ask],
    answer: &Result<Answer, AdapterError>,
) -> (HeldDecision, Option<String>, Vec<SenderAction>) {
    match answer {
        Ok(answer) => {
            let matched: Vec<&Ask> = asks
                .iter()
                .filter(|ask| answer.is_matching_condition && ask.threshold.reached_by(answer.confidence))
                .collect();
            let blocking = matched.iter().find(|ask| ask.action == Action::Block);
            let flagging = matched.iter().find(|ask| ask.action == Action::Flag).map(|ask| ask.rule_id.clone());
            let (approve, rule) = match blocking {
                Some(ask) => (false, ask.rule_id.clone()),
                None => {
                    (true, matched.first().copied().or(asks.first()).map(|ask| ask.rule_id.clone()).unwrap_or_default())
                }
            };
            let decision = HeldDecision {
                approve,
                by: format!("engine:{rule}"),
                reason: answer.reason.clone().filter(|_| !matched.is_empty()),
                engine_failed: false,
            };
            let mut sender_actions = Vec::new();
            for action in matched.iter().flat_map(|ask| ask.sender_actions.iter()) {
                if !sender_actions.contains(action) {
                    sender_actions.push(*action);
                }
            }
            (decision, if approve { flagging } else { None }, sender_actions)
        }
        Err(error) => {
            // The strictest policy of the rules that asked: one `drop-message` drops it.
            let dropping = asks.iter().find(|ask| ask.on_failure == FailurePolicy::DropMessage);
            let rule = dropping.or(asks.first()).map(|ask| ask.rule_id.clone()).unwrap_or_default();
            let policy = if dropping.is_some() { "drop-message" } else { "approve-message" };
            let decision = HeldDecision {
                approve: dropping.is_none(),
                by: format!("engine:{rule}"),
                reason: Some(format!("the Custom API failed ({}): {policy}", error.category())),
                engine_failed: true,
            };
            (decision, None, Vec::new())
        }
    }
}

impl Decider {
    pub fn new(
        store: Store,
        queues: Arc<dyn ModerationStore>,
        adapter: CustomApi,
        metrics: Arc<DecisionMetrics>,
    ) -> Decider {
        Decider { store, queues, adapter, metrics }
    }

    /// The `context` messages of the conversation before the held one (committed messages only).
    async fn context(&self, held: &HeldMessage, count: u8) -> Result<Vec<Message>, String> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let page = MessagePage { after_seq: None, before_seq: Some(i64::MAX), limit: u32::from(count) };
        let filter = MessageFilter { hide_deleted: true, ..MessageFilter::default() };
        self.store
            .list_messages_filtered(&held.message.conversation_id, &page, &filter)
            .await
            .map_err(|error| format!("reading the context messages: {error}"))
    }

    async fn decide(&self, event: &Event) -> Outcome {
        if event.event_type != EventType::MessagePending {
            return Outcome::Done;
        }
        let Some(id) = event.data.get("id").and_then(Value::as_str) else {
            return Outcome::DeadLetter("a message.pending event without an id".to_owned());
        };
        let held = match self.store.held_message(id).await {
            Ok(Some(held)) if held.status == HeldStatus::Pending => held,
            Ok(_) => return Outcome::Done,
            Err(error) => return Outcome::RetryLater(format!("reading held message {id}: {error}")),
        };
        let asks: Vec<Ask> = match serde_json::from_value(held.checks.clone()) {
            Ok(asks) => asks,
            Err(error) => return Outcome::DeadLetter(format!("held message {id}: its checks do not read: {error}")),
        };
        let context_count = asks.iter().map(|ask| ask.context_messages).max().unwrap_or(0);
        let context = match self.context(&held, context_count).await {
            Ok(context) => context,
            Err(error) => return Outcome::RetryLater(error),
        };
        let started = Instant::now();
        let answer = self.adapter.ask(&held.message, &context).await;
        self.metrics.adapter.observe(started.elapsed());
        if let Err(error) = &answer {
            *self
                .metrics
                .failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(error.category())
                .or_default() += 1;
            tracing::warn!(message = id, category = error.category(), error = %error, "the Custom API failed; the failure policy decides");
        }
        let (decision, flag_rule, sender_actions) = decision_of(&asks, &answer);
        let now = now_millis();
        let decided = match self.store.decide_held(id, &decision, now).await {
            Ok(Some(decided)) => decided,
            // Decided meanwhile (a redelivery, another replica): once is enough.
            Ok(None) => return Outcome::Done,
            Err(error) => return Outcome::RetryLater(format!("deciding held message {id}: {error}")),
        };
        let waited = now.saturating_sub(held.created_at).max(0);
        self.metrics.decision.observe(std::time::Duration::from_millis(u64::try_from(waited).unwrap_or(0)));
        let text = held.message.data.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
        let review = |queue: ReviewQueue, rule_id: String| ReviewItem {
            id: format!("{}-{id}", queue.as_str()),
            queue,
            message_id: id.to_owned(),
            conversation: held.message.conversation_id.to_string(),
            sender: held.message.sender.to_string(),
            receiver_type: held.message.receiver_type.as_str().to_owned(),
            receiver: held.message.receiver.clone(),
            text: text.clone(),
            masked: None,
            rule_id: Some(rule_id),
            status: ReviewStatus::Pending,
            created_at: now,
            reviewed_by: None,
            reviewed_at: None,
        };
        let rule_of = |by: &str| by.strip_prefix("engine:").unwrap_or(by).to_owned();
        let queued = match &decided {
            Decided::Approved(_) => {
                self.metrics.approved.fetch_add(1, Ordering::Relaxed);
                flag_rule.map(|rule| review(ReviewQueue::Flagged, rule))
            }
            Decided::Disapproved { .. } => {
                self.metrics.disapproved.fetch_add(1, Ordering::Relaxed);
                Some(review(ReviewQueue::Blocked, rule_of(&decision.by)))
            }
        };
        // The decision is committed; a queue entry that fails to be written is logged, not retried (the
        // redelivery would find the message decided and write nothing).
        if let Some(item) = queued
            && let Err(error) = self.queues.enqueue(&item).await
        {
            tracing::warn!(message = id, error = %error, "a decided message could not be queued for review");
        }
        let sent = crate::sender::Sent {
            sender: &held.message.sender,
            receiver_type: held.message.receiver_type,
            receiver: &held.message.receiver,
        };
        crate::sender::apply(&self.store, &sender_actions, sent, now).await;
        Outcome::Done
    }
}

impl Handler for Decider {
    fn name(&self) -> &'static str {
        "moderation"
    }

    fn handle<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Outcome> {
        Box::pin(self.decide(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Threshold;

    fn ask(rule: &str, action: Action, threshold: f64, on_failure: FailurePolicy) -> Ask {
        Ask {
            rule_id: rule.to_owned(),
            action,
            sender_actions: Vec::new(),
            threshold: Threshold::new(threshold).expect("threshold"),
            on_failure,
            context_messages: 0,
        }
    }

    fn answer(matching: bool, confidence: f64) -> Result<Answer, AdapterError> {
        Ok(Answer { is_matching_condition: matching, confidence, reason: Some("why".to_owned()) })
    }

    #[test]
    fn thresholds_actions_and_failure_policies_decide() {
        let block = ask("b", Action::Block, 0.8, FailurePolicy::ApproveMessage);
        let flag = ask("f", Action::Flag, 0.3, FailurePolicy::ApproveMessage);
        let dropping = ask("d", Action::Block, 0.9, FailurePolicy::DropMessage);
        // (asks, answer, approved, flagged by, engine failed)
        type Case = (Vec<Ask>, Result<Answer, AdapterError>, bool, Option<&'static str>, bool);
        let cases: Vec<Case> = vec![
            (vec![block.clone()], answer(true, 0.85), false, None, false),
            (vec![block.clone()], answer(true, 0.5), true, None, false),
            (vec![block.clone()], answer(false, 0.99), true, None, false),
            (vec![block.clone(), flag.clone()], answer(true, 0.5), true, Some("f"), false),
            (vec![block.clone(), flag.clone()], answer(true, 0.9), false, None, false),
            (vec![block.clone()], Err(AdapterError::Timeout(std::time::Duration::from_secs(2))), true, None, true),
            (vec![block, dropping], Err(AdapterError::Status(503)), false, None, true),
        ];
        for (asks, answer, approve, flagged, failed) in cases {
            let (decision, flag, _) = decision_of(&asks, &answer);
            assert_eq!(decision.approve, approve, "{asks:?} {answer:?}");
            assert_eq!(flag.as_deref(), flagged, "{asks:?} {answer:?}");
            assert_eq!(decision.engine_failed, failed, "{asks:?} {answer:?}");
        }
    }
}
