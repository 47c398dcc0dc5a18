//! Sending: gap-free seqs, idempotent retries, concurrency; reading history.

use std::collections::HashSet;

use comet_model::{ConversationId, EventType, Message, NewMessage};
use comet_store::MessagePage;
use futures::future::join_all;
use serde_json::json;

use crate::support::{T0, TestDb, direct_text, group_rows, group_text, guid, uid};

fn seqs(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|message| message.seq).collect()
}

/// The unpublished `message.sent` events of one conversation, in the order the relay would read them.
async fn sent_events(db: &TestDb, conversation: &ConversationId) -> Vec<Message> {
    db.store
        .unpublished_events(100_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|event| event.event_type == EventType::MessageSent && event.key == conversation.key())
        .map(|event| serde_json::from_value(event.data).expect("message.sent data is a Message"))
        .collect()
}

async fn direct_and_group_messages_get_their_own_seqs(db: &TestDb) {
    let alice_bob = ConversationId::direct(&uid("alice"), &uid("bob"));
    let group = ConversationId::group(&guid("g1"));

    let rich = NewMessage {
        tags: vec!["urgent".to_owned(), "ops".to_owned()],
        parent_id: Some("parent-1".to_owned()),
        data: json!({ "text": "hi", "metadata": { "k": [1, 2] }, "attachments": [{ "url": "https://x/y.png" }] }),
        ..direct_text("alice", "bob", "hi", Some("m-1"))
    };
    let (first, created) = db.store.send_message(&rich, T0).await.expect("send 1");
    assert!(created);
    assert_eq!(first.seq, 1);
    assert_eq!(first.conversation_id, alice_bob);
    assert_eq!(first.sent_at, T0);
    assert_eq!(first.updated_at, T0);
    assert_eq!((first.edited_at, first.deleted_at), (None, None));
    assert_eq!(first.tags, rich.tags);
    assert_eq!(first.data, rich.data);
    assert_eq!(first.parent_id.as_deref(), Some("parent-1"));
    assert_eq!(first.muid.as_deref(), Some("m-1"));
    assert_eq!(db.store.get_message(&first.id).await.expect("get"), Some(first.clone()), "stored as returned");
    assert_eq!(db.store.get_message("no-such-id").await.expect("get"), None);

    // Both directions share the conversation and its seq.
    let (reply, _) = db.store.send_message(&direct_text("bob", "alice", "hello", None), T0 + 1).await.expect("send 2");
    assert_eq!((reply.conversation_id.clone(), reply.seq), (alice_bob.clone(), 2));

    // A group conversation counts on its own.
    group_rows(db, "g1", &["alice", "carol"]).await;
    let (in_group, _) = db.store.send_message(&group_text("alice", "g1", "all", None), T0 + 2).await.expect("send g");
    assert_eq!((in_group.conversation_id.clone(), in_group.seq), (group.clone(), 1));
    let (in_group_2, _) = db.store.send_message(&group_text("carol", "g1", "all", None), T0 + 3).await.expect("send g");
    assert_eq!(in_group_2.seq, 2);
    let (third, _) = db.store.send_message(&direct_text("alice", "bob", "3", None), T0 + 4).await.expect("send 3");
    assert_eq!(third.seq, 3);

    // Each send wrote one message.sent event, keyed by the conversation, carrying the message.
    assert_eq!(sent_events(db, &alice_bob).await, vec![first, reply, third]);
    assert_eq!(sent_events(db, &group).await, vec![in_group, in_group_2]);
}

async fn a_retried_muid_returns_the_original_unchanged(db: &TestDb) {
    let (original, created) =
        db.store.send_message(&direct_text("alice", "bob", "original", Some("m-1")), T0).await.expect("send");
    assert!(created);
    let (retried, created_again) =
        db.store.send_message(&direct_text("alice", "bob", "changed", Some("m-1")), T0 + 9).await.expect("retry");
    assert!(!created_again);
    assert_eq!(retried, original, "the original comes back, text and time unchanged");

    // The retry used no seq: the next message is 2.
    let (next, _) =
        db.store.send_message(&direct_text("alice", "bob", "next", Some("m-2")), T0 + 10).await.expect("send");
    assert_eq!(next.seq, 2);
    // The muid is unique per sender only.
    let (bobs, bob_created) =
        db.store.send_message(&direct_text("bob", "alice", "mine", Some("m-1")), T0 + 11).await.expect("send");
    assert!(bob_created);
    assert_eq!(bobs.seq, 3);
    // Without a muid, every send is a new message.
    let (a, _) = db.store.send_message(&direct_text("alice", "bob", "same", None), T0 + 12).await.expect("send");
    let (b, _) = db.store.send_message(&direct_text("alice", "bob", "same", None), T0 + 12).await.expect("send");
    assert_ne!(a.id, b.id);
    assert_eq!((a.seq, b.seq), (4, 5));

    let conversation = ConversationId::direct(&uid("alice"), &uid("bob"));
    assert_eq!(seqs(&sent_events(db, &conversation).await), [1, 2, 3, 4, 5], "no event for the retry");
}

async fn the_same_muid_sent_five_times_concurrently_is_stored_once(db: &TestDb) {
    group_rows(db, "g1", &["alice", "bob"]).await;
    let sends = (0..5).map(|attempt| {
        let store = db.store.clone();
        tokio::spawn(async move {
            store.send_message(&group_text("alice", "g1", "once", Some("retry-me")), T0 + attempt).await
        })
    });
    let results: Vec<(Message, bool)> =
        join_all(sends).await.into_iter().map(|joined| joined.expect("task").expect("send")).collect();

    let first = &results[0].0;
    for (message, _) in &results {
        assert_eq!((&message.id, message.seq), (&first.id, first.seq), "every caller gets the same message");
    }
    assert_eq!(first.seq, 1);
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "exactly one send created it");

    let conversation = ConversationId::group(&guid("g1"));
    let events = sent_events(db, &conversation).await;
    assert_eq!(events.len(), 1, "exactly one message.sent event");
    assert_eq!(events[0].id, first.id);
    assert_eq!(db.store.outbox_backlog().await.expect("backlog"), 1);

    // The losing attempts left no gap behind them.
    let (next, _) = db.store.send_message(&group_text("bob", "g1", "after", None), T0 + 10).await.expect("send");
    assert_eq!(next.seq, 2);
    let page = MessagePage { after_seq: None, before_seq: None, limit: 100 };
    assert_eq!(seqs(&db.store.list_messages(&conversation, &page).await.expect("list")), [1, 2]);
}

async fn a_thousand_concurrent_sends_get_seqs_1_to_1000(db: &TestDb) {
    const SENDS: i64 = 1_000;
    group_rows(
        db,
        "big",
        &(0..7).map(|n| format!("user{n}")).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let sends = (0..SENDS).map(|n| {
        let store = db.store.clone();
        // A few senders with a muid each, so the unique index is exercised too.
        let sender = format!("user{}", n % 7);
        let muid = format!("muid-{n}");
        tokio::spawn(async move {
            store.send_message(&group_text(&sender, "big", &n.to_string(), Some(&muid)), T0 + n).await
        })
    });
    let results: Vec<(Message, bool)> =
        join_all(sends).await.into_iter().map(|joined| joined.expect("task").expect("send")).collect();

    assert!(results.iter().all(|(_, created)| *created));
    let mut returned: Vec<i64> = results.iter().map(|(message, _)| message.seq).collect();
    returned.sort_unstable();
    assert_eq!(returned, (1..=SENDS).collect::<Vec<_>>(), "seqs are exactly 1..=1000: no gap, no duplicate");
    let ids: HashSet<&str> = results.iter().map(|(message, _)| message.id.as_str()).collect();
    assert_eq!(ids.len(), 1_000);

    let conversation = ConversationId::group(&guid("big"));
    let page = MessagePage { after_seq: None, before_seq: None, limit: 5_000 };
    let stored = db.store.list_messages(&conversation, &page).await.expect("list");
    assert_eq!(seqs(&stored), (1..=SENDS).collect::<Vec<_>>());
    let events = sent_events(db, &conversation).await;
    assert_eq!(seqs(&events), (1..=SENDS).collect::<Vec<_>>(), "1,000 events, in seq order");
    assert_eq!(db.store.outbox_backlog().await.expect("backlog"), SENDS);
}

async fn history_pages_forward_and_backward(db: &TestDb) {
    group_rows(db, "g1", &["alice"]).await;
    group_rows(db, "g2", &["alice"]).await;
    for n in 0..10 {
        db.store.send_message(&group_text("alice", "g1", &n.to_string(), None), T0 + n).await.expect("send");
    }
    // Another conversation's messages never show up.
    db.store.send_message(&group_text("alice", "g2", "elsewhere", None), T0).await.expect("send");
    let conversation = ConversationId::group(&guid("g1"));
    let page = |after_seq, before_seq, limit| MessagePage { after_seq, before_seq, limit };
    let list = |page: MessagePage| {
        let store = db.store.clone();
        let conversation = conversation.clone();
        async move { seqs(&store.list_messages(&conversation, &page).await.expect("list")) }
    };

    // Forward from the start.
    assert_eq!(list(page(None, None, 4)).await, [1, 2, 3, 4]);
    assert_eq!(list(page(Some(4), None, 4)).await, [5, 6, 7, 8]);
    assert_eq!(list(page(Some(8), None, 4)).await, [9, 10]);
    assert!(list(page(Some(10), None, 4)).await.is_empty());
    // Backward from the newest: each page just before the previous one, still in ascending order.
    assert_eq!(list(page(None, Some(11), 4)).await, [7, 8, 9, 10]);
    assert_eq!(list(page(None, Some(7), 4)).await, [3, 4, 5, 6]);
    assert_eq!(list(page(None, Some(3), 4)).await, [1, 2]);
    assert!(list(page(None, Some(1), 4)).await.is_empty());
    // Both bounds: the newest `limit` between them.
    assert_eq!(list(page(Some(2), Some(8), 3)).await, [5, 6, 7]);
    assert_eq!(list(page(Some(2), Some(8), 100)).await, [3, 4, 5, 6, 7]);
    // An unknown conversation is simply empty.
    let nobody = ConversationId::group(&guid("nobody"));
    let none = db.store.list_messages(&nobody, &page(None, None, 10)).await.expect("list");
    assert!(none.is_empty());
}

/// Sends of members and of a stranger to one group, all at once (on SQLite they share commits): the
/// stranger's are refused one by one, and the members' are stored with seqs 1..n, no gap, each with its event.
async fn refused_sends_among_concurrent_ones_leave_no_gap(db: &TestDb) {
    group_rows(db, "mixed", &["alice", "bob"]).await;
    let sends = (0..60_i64).map(|n| {
        let store = db.store.clone();
        let sender = ["alice", "mallory", "bob"][usize::try_from(n % 3).expect("small")];
        tokio::spawn(async move {
            (sender, store.send_message(&group_text(sender, "mixed", &n.to_string(), None), T0 + n).await)
        })
    });
    let mut stored = Vec::new();
    for joined in join_all(sends).await {
        match joined.expect("task") {
            ("mallory", result) => assert!(
                matches!(result, Err(comet_store::StoreError::Refused(comet_store::Refusal::NotAMember))),
                "the stranger's send is refused: {result:?}"
            ),
            (_, result) => stored.push(result.expect("a member's send").0),
        }
    }
    assert_eq!(stored.len(), 40);
    let mut returned = seqs(&stored);
    returned.sort_unstable();
    assert_eq!(returned, (1..=40).collect::<Vec<_>>(), "the refusals left no gap");
    let conversation = ConversationId::group(&guid("mixed"));
    assert_eq!(seqs(&sent_events(db, &conversation).await), (1..=40).collect::<Vec<_>>(), "one event per stored send");
}

on_both_backends!(
    direct_and_group_messages_get_their_own_seqs,
    a_retried_muid_returns_the_original_unchanged,
    the_same_muid_sent_five_times_concurrently_is_stored_once,
    a_thousand_concurrent_sends_get_seqs_1_to_1000,
    refused_sends_among_concurrent_ones_leave_no_gap,
    history_pages_forward_and_backward,
);
