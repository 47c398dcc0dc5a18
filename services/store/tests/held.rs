//! Held messages (migration 0012): held with no seq and no `message.sent`, decided once, an approval committed
//! to the conversation with the held id and the next seq, an approval the rules now refuse becoming a
//! disapproval, a retried muid finding the held message.

use comet_model::{EventType, Message};
use comet_store::{Decided, HeldDecision, HeldStatus, MessagePage};
use serde_json::json;

use crate::support::{T0, TestDb, direct_text, uid};

fn decision(approve: bool) -> HeldDecision {
    HeldDecision { approve, by: "engine:ai".to_owned(), reason: Some("the test".to_owned()), engine_failed: false }
}

/// The unpublished events of `kind` naming message `id`.
async fn events(db: &TestDb, kind: EventType, id: &str) -> usize {
    let events = db.store.unpublished_events(100_000).await.expect("events");
    events
        .iter()
        .filter(|event| event.event_type == kind)
        .filter(|event| event.data["id"] == id || event.data["message"]["id"] == id)
        .count()
}

async fn held_messages_are_decided_once_and_approved_ones_take_the_next_seq(db: &TestDb) {
    let checks = json!([{ "ruleId": "ai" }]);
    let (first, _) = db.store.send_message(&direct_text("alice", "bob", "before", None), T0).await.expect("send");
    let pending = direct_text("alice", "bob", "hold me", Some("m-held"));
    let (held, created) = db.store.hold_message(&pending, &checks, T0 + 1).await.expect("hold");
    assert!(created);
    assert_eq!((held.status, held.message.seq, held.checks.clone()), (HeldStatus::Pending, 0, checks.clone()));
    assert_eq!(db.store.get_message(&held.message.id).await.expect("get"), None, "in no conversation");
    assert_eq!(events(db, EventType::MessagePending, &held.message.id).await, 1);
    assert_eq!(events(db, EventType::MessageSent, &held.message.id).await, 0);
    assert_eq!(db.store.pending_held().await.expect("count"), 1);
    // A retry of the send finds the held message.
    let (again, created) = db.store.hold_message(&pending, &checks, T0 + 2).await.expect("hold again");
    assert!(!created);
    assert_eq!(again.message.id, held.message.id);

    let decided = db.store.decide_held(&held.message.id, &decision(true), T0 + 3).await.expect("decide");
    let Some(Decided::Approved(message)) = decided else { panic!("approved: {decided:?}") };
    assert_eq!((message.id.as_str(), message.seq, message.sent_at), (held.message.id.as_str(), 2, T0 + 3));
    assert_eq!(message.data["moderation"]["status"], "approved");
    assert_eq!(message.seq, first.seq + 1);
    // Decided once: a second decision (a redelivery, another replica) changes nothing.
    assert_eq!(db.store.decide_held(&held.message.id, &decision(false), T0 + 4).await.expect("again"), None);
    let stored = db.store.held_message(&held.message.id).await.expect("read").expect("held");
    assert_eq!(
        (stored.status, stored.seq, stored.decided_by.as_deref()),
        (HeldStatus::Approved, Some(2), Some("engine:ai"))
    );
    assert_eq!(events(db, EventType::MessageSent, &held.message.id).await, 1);
    assert_eq!(events(db, EventType::MessageModerated, &held.message.id).await, 1);
    assert_eq!(db.store.pending_held().await.expect("count"), 0);

    // Disapproved: never in the conversation.
    let (refused, _) =
        db.store.hold_message(&direct_text("alice", "bob", "no", None), &checks, T0 + 5).await.expect("hold");
    let decided = db.store.decide_held(&refused.message.id, &decision(false), T0 + 6).await.expect("decide");
    assert_eq!(decided, Some(Decided::Disapproved { refusal: None }));
    assert_eq!(db.store.get_message(&refused.message.id).await.expect("get"), None);
    let history: Vec<Message> = db
        .store
        .list_messages(&first.conversation_id, &MessagePage { after_seq: None, before_seq: None, limit: 10 })
        .await
        .expect("history");
    assert_eq!(history.iter().map(|message| message.seq).collect::<Vec<_>>(), [1, 2]);

    // An approval after the receiver blocked the sender is a disapproval saying so.
    let (late, _) =
        db.store.hold_message(&direct_text("alice", "bob", "late", None), &checks, T0 + 7).await.expect("hold");
    db.store.block_users(&uid("bob"), &[uid("alice")], T0 + 8).await.expect("block");
    let decided = db.store.decide_held(&late.message.id, &decision(true), T0 + 9).await.expect("decide");
    assert_eq!(decided, Some(Decided::Disapproved { refusal: Some(comet_store::Refusal::Blocked) }));
    let stored = db.store.held_message(&late.message.id).await.expect("read").expect("held");
    assert_eq!(stored.status, HeldStatus::Disapproved);
    assert!(stored.reason.as_deref().is_some_and(|reason| reason.contains("not delivered")), "{stored:?}");
    // A held message whose muid a message sent meanwhile took is not delivered twice.
    let (plain, _) =
        db.store.send_message(&direct_text("carol", "dave", "once", Some("m-dup")), T0 + 8).await.expect("send");
    let (twin, _) = db
        .store
        .hold_message(&direct_text("carol", "dave", "once", Some("m-dup")), &checks, T0 + 9)
        .await
        .expect("hold");
    let decided = db.store.decide_held(&twin.message.id, &decision(true), T0 + 10).await.expect("decide");
    assert_eq!(decided, Some(Decided::Disapproved { refusal: None }));
    assert_eq!(db.store.get_message(&plain.id).await.expect("get").map(|message| message.seq), Some(1));
    assert_eq!(db.store.get_message(&twin.message.id).await.expect("get"), None);
    // And a new hold is refused like a send.
    let refused = db.store.hold_message(&direct_text("alice", "bob", "blocked", None), &checks, T0 + 10).await;
    assert!(matches!(refused, Err(comet_store::StoreError::Refused(comet_store::Refusal::Blocked))), "{refused:?}");
}

async fn an_approved_blocked_message_is_committed_once_with_its_id(db: &TestDb) {
    let (first, _) = db.store.send_message(&direct_text("alice", "bob", "one", None), T0).await.expect("send");
    let blocked = Message { id: "blocked-1".to_owned(), seq: 0, ..first.clone() };
    let committed = db.store.commit_approved(&blocked, "key:abc", T0 + 5).await.expect("commit");
    assert_eq!((committed.id.as_str(), committed.seq, committed.sent_at), ("blocked-1", 2, T0 + 5));
    assert_eq!(events(db, EventType::MessageModerated, "blocked-1").await, 1);
    let again = db.store.commit_approved(&blocked, "key:abc", T0 + 6).await;
    assert!(matches!(again, Err(comet_store::StoreError::Conflict(_))), "{again:?}");
}

on_both_backends!(
    held_messages_are_decided_once_and_approved_ones_take_the_next_seq,
    an_approved_blocked_message_is_committed_once_with_its_id,
);
