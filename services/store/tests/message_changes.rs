//! Editing, deleting and reacting: each change with its event in the outbox, in the conversation's order.

use comet_model::{ConversationId, Event, EventType, Message, MessageEdit, Reaction};
use comet_store::{MessageChange, MessageFilter, MessagePage, ReactionChange, StoreError};
use serde_json::json;

use crate::support::{T0, TestDb, group_rows, group_text, guid, uid};

/// The unpublished events of one conversation, in the order the relay reads them.
async fn events_of(db: &TestDb, conversation: &ConversationId) -> Vec<Event> {
    db.store
        .unpublished_events(100_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|event| event.key == conversation.key())
        .collect()
}

fn types(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|event| event.event_type).collect()
}

/// Alice's message to `g1`, whose members are alice, bob and carol.
async fn send(db: &TestDb, text: &str, at: i64) -> Message {
    if db.store.member(&guid("g1"), &uid("alice")).await.expect("member").is_none() {
        group_rows(db, "g1", &["alice", "bob", "carol"]).await;
    }
    db.store.send_message(&group_text("alice", "g1", text, None), at).await.expect("send").0
}

async fn edits_and_deletes_write_their_events_in_order(db: &TestDb) {
    let conversation = ConversationId::group(&guid("g1"));
    let first = send(db, "one", T0).await;
    let edit = MessageEdit { data: Some(json!({ "text": "one, edited" })), tags: Some(vec!["t".to_owned()]) };
    let MessageChange::Changed(edited) =
        db.store.edit_message(&first.id, &edit, Some(&uid("alice")), T0 + 10).await.expect("edit")
    else {
        panic!("the edit applies");
    };
    assert_eq!((edited.edited_at, edited.updated_at, edited.sent_at), (Some(T0 + 10), T0 + 10, T0));
    assert_eq!(edited.edited_by, Some(uid("alice")));
    assert_eq!(db.store.get_message(&first.id).await.expect("get"), Some(edited.clone()));

    let second = send(db, "two", T0 + 20).await;
    let MessageChange::Changed(deleted) = db.store.delete_message(&first.id, None, T0 + 30).await.expect("delete")
    else {
        panic!("the delete applies");
    };
    assert_eq!((deleted.deleted_at, deleted.deleted_by.clone(), deleted.seq), (Some(T0 + 30), None, 1));
    assert_eq!((deleted.data.clone(), deleted.tags.clone()), (json!({}), Vec::<String>::new()));

    // A deleted message changes no more, and writes no event.
    let again = db.store.delete_message(&first.id, None, T0 + 40).await.expect("delete again");
    assert!(matches!(again, MessageChange::AlreadyDeleted(_)), "{again:?}");
    let late_edit = db.store.edit_message(&first.id, &edit, None, T0 + 40).await.expect("edit deleted");
    assert!(matches!(late_edit, MessageChange::AlreadyDeleted(_)), "{late_edit:?}");
    let missing = db.store.edit_message("no-such-id", &edit, None, T0).await;
    assert!(matches!(missing, Err(StoreError::NotFound("message"))), "{missing:?}");

    // sent 1, edited 1, sent 2, deleted 1: the order they committed in, each carrying the message as it was.
    let events = events_of(db, &conversation).await;
    assert_eq!(
        types(&events),
        [EventType::MessageSent, EventType::MessageEdited, EventType::MessageSent, EventType::MessageDeleted]
    );
    let edited_event: Message = serde_json::from_value(events[1].data.clone()).expect("message.edited data");
    assert_eq!(edited_event, edited);
    let deleted_event: Message = serde_json::from_value(events[3].data.clone()).expect("message.deleted data");
    assert_eq!(deleted_event, deleted);

    // History keeps the deleted message in its place; the filter hides it.
    let page = MessagePage { after_seq: None, before_seq: None, limit: 10 };
    let all = db.store.list_messages(&conversation, &page).await.expect("history");
    assert_eq!(all.iter().map(|m| (m.seq, m.deleted_at.is_some())).collect::<Vec<_>>(), [(1, true), (2, false)]);
    let hide = MessageFilter { hide_deleted: true, ..MessageFilter::default() };
    let shown = db.store.list_messages_filtered(&conversation, &page, &hide).await.expect("filtered");
    assert_eq!(shown, vec![second]);
}

async fn history_filters_by_update_time_and_thread(db: &TestDb) {
    let conversation = ConversationId::group(&guid("g1"));
    let root = send(db, "root", T0).await;
    for n in 0..4 {
        let reply = comet_model::NewMessage { parent_id: Some(root.id.clone()), ..group_text("bob", "g1", "re", None) };
        db.store.send_message(&reply, T0 + 1 + n).await.expect("reply");
    }
    send(db, "after", T0 + 10).await;
    let edit = MessageEdit { data: Some(json!({ "text": "root, edited" })), tags: None };
    db.store.edit_message(&root.id, &edit, None, T0 + 100).await.expect("edit");

    let page = |after_seq, before_seq, limit| MessagePage { after_seq, before_seq, limit };
    let seqs = |messages: Vec<Message>| messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    let thread = MessageFilter { parent_id: Some(root.id.clone()), ..MessageFilter::default() };
    let list = |page: MessagePage, filter: MessageFilter| {
        let store = db.store.clone();
        let conversation = conversation.clone();
        async move { store.list_messages_filtered(&conversation, &page, &filter).await.expect("list") }
    };
    assert_eq!(seqs(list(page(None, None, 10), thread.clone()).await), [2, 3, 4, 5]);
    assert_eq!(seqs(list(page(Some(2), None, 2), thread.clone()).await), [3, 4]);
    assert_eq!(seqs(list(page(None, Some(5), 2), thread.clone()).await), [3, 4], "backwards from the end");
    let since = |at| MessageFilter { updated_since: Some(at), ..MessageFilter::default() };
    assert_eq!(seqs(list(page(None, None, 10), since(T0 + 3)).await), [1, 4, 5, 6], "the edit counts as an update");
    assert_eq!(seqs(list(page(None, None, 10), since(T0 + 101)).await), Vec::<i64>::new());
}

async fn reactions_are_once_per_user_and_emit_events(db: &TestDb) {
    let conversation = ConversationId::group(&guid("g1"));
    let message = send(db, "react", T0).await;
    let add = |who: &'static str, reaction: &'static str, at| {
        let store = db.store.clone();
        let id = message.id.clone();
        async move { store.add_reaction(&id, &uid(who), reaction, at).await.expect("add") }
    };
    let first = add("bob", "👍", T0 + 1).await;
    let expected = Reaction {
        message_id: message.id.clone(),
        conversation_id: conversation.clone(),
        uid: uid("bob"),
        reaction: "👍".to_owned(),
        reacted_at: T0 + 1,
    };
    assert_eq!(first, ReactionChange::Changed(expected.clone()));
    assert_eq!(add("bob", "👍", T0 + 2).await, ReactionChange::Unchanged, "adding twice is one reaction");
    add("carol", "👍", T0 + 3).await;
    add("bob", "heart", T0 + 4).await;

    let listed = db.store.list_reactions(&message.id, None, None, 10).await.expect("list");
    let who: Vec<(&str, &str)> = listed.iter().map(|r| (r.reaction.as_str(), r.uid.as_str())).collect();
    assert_eq!(who, [("heart", "bob"), ("👍", "bob"), ("👍", "carol")]);
    let after_bob = db.store.list_reactions(&message.id, None, Some(("👍", &uid("bob"))), 10).await.expect("page 2");
    assert_eq!(after_bob.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(), ["carol"]);
    let only = db.store.list_reactions(&message.id, Some("heart"), None, 10).await.expect("only hearts");
    assert_eq!(only.len(), 1);
    let counts = db.store.reaction_counts(&[message.id.as_str(), "other"]).await.expect("counts");
    assert_eq!(counts.iter().map(|c| (c.reaction.as_str(), c.count)).collect::<Vec<_>>(), [("heart", 1), ("👍", 2)]);

    let removed = db.store.remove_reaction(&message.id, &uid("bob"), "👍", T0 + 5).await.expect("remove");
    assert_eq!(removed, ReactionChange::Changed(expected.clone()));
    let again = db.store.remove_reaction(&message.id, &uid("bob"), "👍", T0 + 6).await.expect("remove again");
    assert_eq!(again, ReactionChange::Unchanged);
    let missing = db.store.add_reaction("no-such-id", &uid("bob"), "👍", T0).await;
    assert!(matches!(missing, Err(StoreError::NotFound("message"))), "{missing:?}");

    db.store.delete_message(&message.id, None, T0 + 7).await.expect("delete");
    let on_deleted = db.store.add_reaction(&message.id, &uid("carol"), "👍", T0 + 8).await.expect("add to deleted");
    assert_eq!(on_deleted, ReactionChange::MessageDeleted);

    let events = events_of(db, &conversation).await;
    assert_eq!(
        types(&events),
        [
            EventType::MessageSent,
            EventType::ReactionAdded,
            EventType::ReactionAdded,
            EventType::ReactionAdded,
            EventType::ReactionRemoved,
            EventType::MessageDeleted,
        ]
    );
    assert_eq!(events[1].data, serde_json::to_value(&expected).expect("reaction as JSON"));
    assert!(events.iter().all(|event| event.event_type.topic() == "comet.messages"));
}

on_both_backends!(
    edits_and_deletes_write_their_events_in_order,
    history_filters_by_update_time_and_thread,
    reactions_are_once_per_user_and_emit_events,
);
