//! Receipts (read and delivered positions), unread counts, and a user's conversation list.

use comet_model::{ConversationId, Event, EventType, Message};
use comet_store::{ConversationWith, ReceiptKind, StoreError};
use serde_json::json;

use crate::support::{T0, TestDb, create_group, direct_text, group_rows, group_text, guid, uid};

async fn receipt_events(db: &TestDb, conversation: &ConversationId) -> Vec<Event> {
    db.store
        .unpublished_events(100_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|event| event.key == conversation.key())
        .filter(|event| matches!(event.event_type, EventType::ReceiptRead | EventType::ReceiptDelivered))
        .collect()
}

async fn send_direct(db: &TestDb, from: &str, to: &str, at: i64) -> Message {
    db.store.send_message(&direct_text(from, to, "hi", None), at).await.expect("send").0
}

async fn read_positions_move_forward_only_with_one_event_per_move(db: &TestDb) {
    let conversation = ConversationId::direct(&uid("alice"), &uid("bob"));
    let first = send_direct(db, "alice", "bob", T0).await;
    let second = send_direct(db, "alice", "bob", T0 + 1).await;
    send_direct(db, "alice", "bob", T0 + 2).await;

    let read = db
        .store
        .mark_conversation(&conversation, &uid("bob"), ReceiptKind::Read, Some(&second.id), T0 + 10)
        .await
        .expect("read up to the second");
    assert_eq!((read.read_seq, read.delivered_seq, read.last_seq, read.unread(), read.moved), (2, 2, 3, 1, true));

    // An older message does not move the position back, and writes no event.
    let older = db
        .store
        .mark_conversation(&conversation, &uid("bob"), ReceiptKind::Read, Some(&first.id), T0 + 11)
        .await
        .expect("read up to the first");
    assert_eq!((older.read_seq, older.unread(), older.moved), (2, 1, false));

    let delivered = db
        .store
        .mark_conversation(&conversation, &uid("bob"), ReceiptKind::Delivered, None, T0 + 12)
        .await
        .expect("delivered up to the newest");
    assert_eq!((delivered.delivered_seq, delivered.read_seq, delivered.moved), (3, 2, true));

    let reset = db
        .store
        .mark_conversation(&conversation, &uid("bob"), ReceiptKind::Read, None, T0 + 13)
        .await
        .expect("read up to the newest");
    assert_eq!((reset.read_seq, reset.unread(), reset.moved), (3, 0, true));

    let events = receipt_events(db, &conversation).await;
    let seen: Vec<(EventType, serde_json::Value)> = events
        .iter()
        .map(|event| (event.event_type, json!([event.data["uid"], event.data["seq"], event.data["at"]])))
        .collect();
    assert_eq!(
        seen,
        vec![
            (EventType::ReceiptRead, json!(["bob", 2, T0 + 10])),
            (EventType::ReceiptDelivered, json!(["bob", 3, T0 + 12])),
            (EventType::ReceiptRead, json!(["bob", 3, T0 + 13])),
        ]
    );
    assert_eq!(events[0].data["messageId"], json!(second.id));
    assert_eq!(events[0].data["conversationId"], json!(conversation.to_string()));

    // Delivered never moves back either, and a message of another conversation is not found.
    let back = db
        .store
        .mark_conversation(&conversation, &uid("bob"), ReceiptKind::Delivered, Some(&first.id), T0 + 14)
        .await
        .expect("delivered up to the first");
    assert_eq!((back.delivered_seq, back.moved), (3, false));
    let elsewhere = send_direct(db, "carol", "bob", T0 + 15).await;
    let wrong =
        db.store.mark_conversation(&conversation, &uid("bob"), ReceiptKind::Read, Some(&elsewhere.id), T0).await;
    assert!(matches!(wrong, Err(StoreError::NotFound("message"))), "{wrong:?}");
    let empty = ConversationId::direct(&uid("bob"), &uid("dave"));
    let none = db.store.mark_conversation(&empty, &uid("bob"), ReceiptKind::Read, None, T0).await;
    assert!(matches!(none, Err(StoreError::NotFound("conversation"))), "{none:?}");
    assert_eq!(receipt_events(db, &conversation).await.len(), 3, "no event for marks that moved nothing");
}

async fn unread_counts_follow_sends_and_own_messages_are_read(db: &TestDb) {
    send_direct(db, "alice", "bob", T0).await;
    send_direct(db, "alice", "bob", T0 + 1).await;
    let unread = |uid_: &'static str| async move {
        let list = db.store.list_conversations(&uid(uid_), None, 10).await.expect("list");
        list.iter().map(|summary| summary.unread()).collect::<Vec<_>>()
    };
    assert_eq!(unread("bob").await, vec![2]);
    assert_eq!(unread("alice").await, vec![0], "the sender has read its own messages");
    // Replying reads the conversation up to the reply.
    send_direct(db, "bob", "alice", T0 + 2).await;
    assert_eq!(unread("bob").await, vec![0]);
    assert_eq!(unread("alice").await, vec![1]);
}

async fn a_users_conversations_come_newest_first_in_pages(db: &TestDb) {
    create_group(db, "g1", &["bob"]).await;
    create_group(db, "g2", &["bob"]).await;
    send_direct(db, "alice", "bob", T0).await;
    db.store.send_message(&group_text("alice", "g1", "to the group", None), T0 + 10).await.expect("send g1");
    send_direct(db, "carol", "bob", T0 + 20).await;
    let last = send_direct(db, "bob", "dave", T0 + 30).await;
    // Alice's direct conversation moves to the top with a new message; g2 has no message and is not listed.
    let newest = send_direct(db, "bob", "alice", T0 + 40).await;

    let all = db.store.list_conversations(&uid("bob"), None, 100).await.expect("list");
    let order: Vec<(String, i64)> =
        all.iter().map(|summary| (summary.conversation_id.to_string(), summary.last_at)).collect();
    assert_eq!(
        order,
        vec![
            ("alice_user_bob".to_owned(), T0 + 40),
            ("bob_user_dave".to_owned(), T0 + 30),
            ("bob_user_carol".to_owned(), T0 + 20),
            ("group_g1".to_owned(), T0 + 10),
        ]
    );
    assert_eq!(all[0].with, ConversationWith::User(uid("alice")));
    assert_eq!(all[3].with, ConversationWith::Group(guid("g1")));
    assert_eq!(all[0].last_message.as_ref().map(|message| message.id.as_str()), Some(newest.id.as_str()));
    assert_eq!(all[1].last_message.as_ref().map(|message| message.id.as_str()), Some(last.id.as_str()));
    assert_eq!(all.iter().map(|summary| summary.unread()).collect::<Vec<_>>(), vec![0, 0, 1, 1]);

    // Pages of one, each after the previous page's last: the same order, nothing twice.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = db.store.list_conversations(&uid("bob"), cursor.as_ref(), 1).await.expect("page");
        let Some(item) = page.first() else { break };
        cursor = Some(item.cursor());
        paged.push(item.conversation_id.to_string());
    }
    assert_eq!(paged, order.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());

    // Dave is in one conversation; members of g1 only see it (alice, the owner, also in her directs).
    let dave = db.store.list_conversations(&uid("dave"), None, 100).await.expect("dave");
    assert_eq!(
        dave.iter().map(|summary| summary.conversation_id.to_string()).collect::<Vec<_>>(),
        vec!["bob_user_dave"]
    );
    let carol = db.store.list_conversations(&uid("carol"), None, 100).await.expect("carol");
    assert!(carol.iter().all(|summary| summary.conversation_id.to_string() != "group_g1"), "carol is no member");
}

/// What the gateway loads for a connecting user: live groups and direct peers, most recent peer first.
async fn reach_lists_live_groups_and_recent_peers(db: &TestDb) {
    create_group(db, "g1", &["bob"]).await;
    create_group(db, "g2", &["bob"]).await;
    create_group(db, "g3", &["carol"]).await;
    db.store.delete_group(&guid("g2"), T0 + 1).await.expect("delete g2");
    send_direct(db, "bob", "carol", T0 + 2).await;
    send_direct(db, "dave", "bob", T0 + 3).await;

    let bob = db.store.reach(&uid("bob"), 10).await.expect("reach");
    assert_eq!(bob.groups, vec![guid("g1")], "deleted and foreign groups left out");
    assert_eq!(bob.peers, vec![uid("dave"), uid("carol")], "most recent first");
    let capped = db.store.reach(&uid("bob"), 1).await.expect("reach");
    assert_eq!((capped.groups.len(), capped.peers), (1, vec![uid("dave")]));
    assert_eq!(db.store.reach(&uid("nobody"), 10).await.expect("reach"), comet_store::Reach::default());
}

/// Issue #17, item 3: an edit or a delete is activity, like a send: the conversation moves up the lists.
async fn edits_and_deletes_move_the_conversation_up(db: &TestDb) {
    let older = send_direct(db, "bob", "alice", T0).await;
    send_direct(db, "bob", "carol", T0 + 10).await;
    group_rows(db, "g9", &["bob"]).await;
    let in_group = db.store.send_message(&group_text("bob", "g9", "hi", None), T0 + 20).await.expect("send").0;
    let order = |at: &'static str| async move {
        let listed = db.store.list_conversations(&uid("bob"), None, 10).await.expect(at);
        listed.iter().map(|summary| (summary.conversation_id.to_string(), summary.last_at)).collect::<Vec<_>>()
    };
    assert_eq!(order("list").await[0].0, "group_g9");
    let edit = comet_model::MessageEdit { data: Some(json!({"text": "edited"})), tags: None };
    db.store.edit_message(&older.id, &edit, Some(&uid("bob")), T0 + 30).await.expect("edit");
    assert_eq!(order("after the edit").await[0], ("alice_user_bob".to_owned(), T0 + 30));
    db.store.delete_message(&in_group.id, None, T0 + 40).await.expect("delete");
    assert_eq!(order("after the delete").await[0], ("group_g9".to_owned(), T0 + 40));
}

on_both_backends!(
    edits_and_deletes_move_the_conversation_up,
    reach_lists_live_groups_and_recent_peers,
    read_positions_move_forward_only_with_one_event_per_move,
    unread_counts_follow_sends_and_own_messages_are_read,
    a_users_conversations_come_newest_first_in_pages,
);
