//! The relay's side: the lease, per-key order of unpublished events, marking them published.

use std::collections::BTreeMap;

use comet_model::{Event, EventType};
use futures::future::join_all;

use crate::support::{T0, TestDb, group_rows, group_text, new_user};

async fn one_relay_holds_the_lease_until_it_expires(db: &TestDb) {
    let store = &db.store;
    assert!(store.acquire_relay_lease("relay-a", T0, 1_000).await.expect("a takes the free lease"));
    assert!(!store.acquire_relay_lease("relay-b", T0 + 10, 1_000).await.expect("b is refused"));
    assert!(store.acquire_relay_lease("relay-a", T0 + 10, 1_000).await.expect("a renews"));
    assert!(store.acquire_relay_lease("relay-a", T0 + 10, 1_000).await.expect("a renews with an unchanged row"));
    // Renewed until T0 + 1010: b is still refused after the first term would have ended.
    assert!(!store.acquire_relay_lease("relay-b", T0 + 1_005, 1_000).await.expect("b is refused"));
    // a stops renewing; once the lease expires b takes it over, and a is refused.
    assert!(store.acquire_relay_lease("relay-b", T0 + 1_010, 1_000).await.expect("b takes the expired lease"));
    assert!(!store.acquire_relay_lease("relay-a", T0 + 1_020, 1_000).await.expect("a is refused"));

    // Only the holder can release the lease; once it has, another replica takes it at once, long before it
    // would have expired.
    assert!(!store.release_relay_lease("relay-a").await.expect("a does not hold it"));
    let held = store.relay_lease().await.expect("read").expect("a lease row");
    assert_eq!((held.owner.as_str(), held.expires_at), ("relay-b", T0 + 2_010));
    assert!(store.release_relay_lease("relay-b").await.expect("b releases"));
    assert!(store.acquire_relay_lease("relay-a", T0 + 1_030, 1_000).await.expect("a takes the released lease"));
    assert!(!store.release_relay_lease("relay-b").await.expect("b no longer holds it"));

    // Many replicas racing for a fresh lease: exactly one wins.
    let racers = (0..8).map(|n| {
        let store = db.store.clone();
        tokio::spawn(async move { store.acquire_relay_lease(&format!("racer-{n}"), T0 + 5_000, 1_000).await })
    });
    let won =
        join_all(racers).await.into_iter().map(|joined| joined.expect("task").expect("acquire")).filter(|won| *won);
    assert_eq!(won.count(), 1);
}

/// The `seq` of a `message.sent` event (entity events have none).
fn seq_of(event: &Event) -> Option<i64> {
    event.data.get("seq").and_then(serde_json::Value::as_i64)
}

/// Checks that a batch is sorted by key and, within each message key, is the run of seqs that follows what was
/// already published of that key.
fn assert_prefixes(batch: &[Event], published: &mut BTreeMap<String, i64>) {
    let keys: Vec<&str> = batch.iter().map(|event| event.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "a batch is ordered by key");
    for event in batch {
        if let Some(seq) = seq_of(event) {
            let last = published.entry(event.key.clone()).or_insert(0);
            assert_eq!(seq, *last + 1, "{} continues its key without a gap: {batch:#?}", event.key);
            *last = seq;
        }
    }
}

async fn unpublished_events_come_as_per_key_prefixes(db: &TestDb) {
    // Three conversations written interleaved, and two users (entity events keyed by uid).
    for group in ["g1", "g2", "g3"] {
        group_rows(db, group, &["alice"]).await;
    }
    for round in 0..5 {
        for group in ["g2", "g3", "g1"] {
            db.store.send_message(&group_text("alice", group, "x", None), T0 + round).await.expect("send");
        }
    }
    db.store.create_user(&new_user("zed", "Zed"), T0).await.expect("user");
    db.store.create_user(&new_user("amy", "Amy"), T0).await.expect("user");
    assert_eq!(db.store.outbox_backlog().await.expect("backlog"), 17);

    let everything = db.store.unpublished_events(100).await.expect("all");
    let order: Vec<(String, Option<i64>)> = everything.iter().map(|event| (event.key.clone(), seq_of(event))).collect();
    let mut expected = vec![("amy".to_owned(), None)];
    for group in ["g:g1", "g:g2", "g:g3"] {
        expected.extend((1..=5).map(|seq| (group.to_owned(), Some(seq))));
    }
    expected.push(("zed".to_owned(), None));
    assert_eq!(order, expected, "ordered by key, then seq");
    assert_eq!(everything[0].event_type, EventType::UserCreated);

    // Batches cut anywhere are prefixes of their keys; marking them published moves on to the rest.
    let mut published = BTreeMap::new();
    let first = db.store.unpublished_events(8).await.expect("batch 1");
    assert_eq!(first.len(), 8);
    assert_prefixes(&first, &mut published);
    assert_eq!(published.get("g:g2"), Some(&2), "the batch cut group_g2 after its second event");
    db.store
        .mark_published(&first.iter().map(|event| event.id.clone()).collect::<Vec<_>>(), T0 + 100)
        .await
        .expect("mark");
    assert_eq!(db.store.outbox_backlog().await.expect("backlog"), 9);

    let second = db.store.unpublished_events(8).await.expect("batch 2");
    assert_eq!(second.first().map(|event| (event.key.as_str(), seq_of(event))), Some(("g:g2", Some(3))));
    assert_prefixes(&second, &mut published);
    let ids: Vec<String> = second.iter().map(|event| event.id.clone()).collect();
    db.store.mark_published(&ids, T0 + 200).await.expect("mark");
    // Marking again, or marking unknown ids, changes nothing.
    db.store.mark_published(&ids, T0 + 300).await.expect("mark again");
    db.store.mark_published(&["no-such-event".to_owned()], T0 + 300).await.expect("mark unknown");
    db.store.mark_published(&[], T0 + 300).await.expect("mark nothing");

    let last = db.store.unpublished_events(8).await.expect("batch 3");
    assert_eq!(last.iter().map(|event| event.key.as_str()).collect::<Vec<_>>(), ["zed"]);
    db.store.mark_published(&[last[0].id.clone()], T0 + 400).await.expect("mark");
    assert_eq!(db.store.outbox_backlog().await.expect("backlog"), 0);
    assert!(db.store.unpublished_events(8).await.expect("empty").is_empty());
}

/// A relay reading while senders write still sees every conversation in order, without gaps or repeats:
/// seq n + 1 never becomes visible before seq n.
async fn a_relay_racing_the_senders_publishes_each_key_in_order(db: &TestDb) {
    const PER_GROUP: i64 = 60;
    let groups = ["r1", "r2", "r3"];
    for group in groups {
        group_rows(db, group, &["alice"]).await;
    }
    let senders = tokio::spawn({
        let store = db.store.clone();
        async move {
            let sends = (0..PER_GROUP).flat_map(|n| groups.map(|group| (n, group))).map(|(n, group)| {
                let store = store.clone();
                tokio::spawn(async move { store.send_message(&group_text("alice", group, "x", None), T0 + n).await })
            });
            for joined in join_all(sends).await {
                joined.expect("task").expect("send");
            }
        }
    });

    let mut published = BTreeMap::new();
    let total = PER_GROUP * 3;
    let mut seen = 0;
    while seen < total {
        let batch = db.store.unpublished_events(7).await.expect("batch");
        assert_prefixes(&batch, &mut published);
        seen += i64::try_from(batch.len()).expect("small");
        let ids: Vec<String> = batch.iter().map(|event| event.id.clone()).collect();
        db.store.mark_published(&ids, T0).await.expect("mark");
        if batch.is_empty() {
            tokio::task::yield_now().await;
        }
    }
    senders.await.expect("senders");
    assert_eq!(published.values().copied().collect::<Vec<_>>(), [PER_GROUP; 3]);
    assert_eq!(db.store.outbox_backlog().await.expect("backlog"), 0);
}

/// The retention job's side: only events published before the cutoff go, oldest first, at most `limit` per call;
/// unpublished events stay whatever their age.
async fn published_events_are_deleted_after_their_retention_in_batches(db: &TestDb) {
    group_rows(db, "g1", &["alice"]).await;
    for round in 0..5 {
        db.store.send_message(&group_text("alice", "g1", "x", None), T0 + round).await.expect("send");
    }
    db.store.create_user(&new_user("zed", "Zed"), T0).await.expect("user");
    let events = db.store.unpublished_events(100).await.expect("all");
    let ids: Vec<String> = events.iter().filter(|event| event.key == "g:g1").map(|event| event.id.clone()).collect();
    assert_eq!(ids.len(), 5);
    db.store.mark_published(&ids[..3], T0 + 100).await.expect("mark");
    db.store.mark_published(&ids[3..], T0 + 200).await.expect("mark");
    assert_eq!(db.store.outbox_rows().await.expect("rows"), 6);

    assert_eq!(db.store.delete_published_before(T0 + 100, 10).await.expect("delete"), 0, "the cutoff is exclusive");
    assert_eq!(db.store.delete_published_before(T0 + 150, 2).await.expect("delete"), 2, "at most the limit");
    assert_eq!(db.store.delete_published_before(T0 + 150, 2).await.expect("delete"), 1);
    assert_eq!(db.store.delete_published_before(T0 + 150, 2).await.expect("delete"), 0);
    assert_eq!(db.store.outbox_rows().await.expect("rows"), 3, "the later-published two and the unpublished one");

    assert_eq!(db.store.delete_published_before(T0 + 1_000_000, 1_000).await.expect("delete"), 2);
    assert_eq!(db.store.outbox_rows().await.expect("rows"), 1);
    assert_eq!(db.store.outbox_backlog().await.expect("backlog"), 1, "an unpublished event is never deleted");
    let left = db.store.unpublished_events(10).await.expect("left");
    assert_eq!(left.iter().map(|event| event.key.as_str()).collect::<Vec<_>>(), ["zed"]);
}

/// A dead letter leaves the outbox whole and comes back unchanged when replayed; only unpublished events move.
async fn dead_letters_leave_the_outbox_and_replay_into_it(db: &TestDb) {
    group_rows(db, "g1", &["alice"]).await;
    for round in 0..3 {
        db.store.send_message(&group_text("alice", "g1", "x", None), T0 + round).await.expect("send");
    }
    let events = db.store.unpublished_events(10).await.expect("events");
    let (first, refused) = (&events[0], &events[1]);
    db.store.mark_published(std::slice::from_ref(&first.id), T0 + 10).await.expect("mark");
    assert!(
        !db.store.dead_letter(&first.id, "refused", 5, T0 + 20).await.expect("dead letter"),
        "a published event is not moved"
    );
    assert!(db.store.dead_letter(&refused.id, "message too large", 5, T0 + 20).await.expect("dead letter"));
    assert!(!db.store.dead_letter(&refused.id, "again", 6, T0 + 30).await.expect("again"), "moved once");

    let left: Vec<Event> = db.store.unpublished_events(10).await.expect("left");
    assert_eq!(left.iter().map(seq_of).collect::<Vec<_>>(), [Some(3)], "the key goes on after its dead letter");
    assert_eq!(db.store.dead_letter_count().await.expect("count"), 1);
    let dead = db.store.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].event, refused, "the dead letter is the event as it was");
    assert_eq!((dead[0].reason.as_str(), dead[0].attempts, dead[0].dead_at), ("message too large", 5, T0 + 20));

    assert!(db.store.replay_dead_letter(&refused.id).await.expect("replay"));
    assert!(!db.store.replay_dead_letter(&refused.id).await.expect("replay again"), "replayed once");
    assert!(!db.store.replay_dead_letter("no-such-event").await.expect("replay unknown"));
    assert_eq!(db.store.dead_letter_count().await.expect("count"), 0);
    let again = db.store.unpublished_events(10).await.expect("again");
    assert_eq!(again.iter().map(seq_of).collect::<Vec<_>>(), [Some(2), Some(3)], "back in its place by key order");
    assert_eq!(&again[0], refused);
}

on_both_backends!(
    dead_letters_leave_the_outbox_and_replay_into_it,
    published_events_are_deleted_after_their_retention_in_batches,
    one_relay_holds_the_lease_until_it_expires,
    unpublished_events_come_as_per_key_prefixes,
    a_relay_racing_the_senders_publishes_each_key_in_order,
);
