//! Blocking users: pairs, their events, the list, and the either-way check.

use comet_model::{Event, EventType};
use serde_json::json;

use crate::support::{T0, TestDb, new_user, uid};

/// The unpublished events of `event_type`, in outbox order.
async fn events_of(db: &TestDb, event_type: EventType) -> Vec<Event> {
    let events = db.store.unpublished_events(1_000).await.expect("events");
    events.into_iter().filter(|event| event.event_type == event_type).collect()
}

async fn blocks_are_one_sided_pairs_with_events(db: &TestDb) {
    for id in ["alice", "bob", "carol", "dave"] {
        db.store.create_user(&new_user(id, id), T0).await.expect("create");
    }
    let newly = db.store.block_users(&uid("alice"), &[uid("bob"), uid("carol")], T0 + 1).await.expect("block");
    assert_eq!(newly, [uid("bob"), uid("carol")]);
    // Blocking again is a no-op: nothing new, no event.
    let again = db.store.block_users(&uid("alice"), &[uid("bob"), uid("dave")], T0 + 2).await.expect("block again");
    assert_eq!(again, [uid("dave")]);

    let blocked = events_of(db, EventType::UserBlocked).await;
    let pairs: Vec<_> = blocked.iter().map(|event| (event.key.as_str(), event.data.clone(), event.time)).collect();
    assert_eq!(
        pairs,
        [
            ("alice", json!({"uid": "alice", "blockedUid": "bob"}), T0 + 1),
            ("alice", json!({"uid": "alice", "blockedUid": "carol"}), T0 + 1),
            ("alice", json!({"uid": "alice", "blockedUid": "dave"}), T0 + 2),
        ]
    );

    assert!(db.store.blocked_either_way(&uid("alice"), &uid("bob")).await.expect("check"));
    assert!(db.store.blocked_either_way(&uid("bob"), &uid("alice")).await.expect("check"), "either way");
    assert!(!db.store.blocked_either_way(&uid("bob"), &uid("carol")).await.expect("check"));

    let listed = |after: Option<&str>, limit| {
        let after = after.map(uid);
        async move {
            let users = db.store.list_blocked_users(&uid("alice"), after.as_ref(), limit).await.expect("list");
            users.into_iter().map(|user| user.uid.to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(None, 10).await, ["bob", "carol", "dave"]);
    assert_eq!(listed(None, 2).await, ["bob", "carol"]);
    assert_eq!(listed(Some("carol"), 2).await, ["dave"]);
    assert!(db.store.list_blocked_users(&uid("bob"), None, 10).await.expect("list").is_empty(), "one-sided");
    // A deleted user drops out of the list, and comes back when restored.
    db.store.delete_user(&uid("carol"), T0 + 3).await.expect("delete carol");
    assert_eq!(listed(None, 10).await, ["bob", "dave"]);
    db.store.restore_user(&uid("carol"), T0 + 4).await.expect("restore carol");
    assert_eq!(listed(None, 10).await, ["bob", "carol", "dave"]);

    // Unblocking removes the pairs that exist, with an event each.
    let removed = db.store.unblock_users(&uid("alice"), &[uid("bob"), uid("nobody")], T0 + 5).await.expect("unblock");
    assert_eq!(removed, [uid("bob")]);
    assert!(!db.store.blocked_either_way(&uid("bob"), &uid("alice")).await.expect("check"));
    assert_eq!(listed(None, 10).await, ["carol", "dave"]);
    let unblocked = events_of(db, EventType::UserUnblocked).await;
    assert_eq!(unblocked.len(), 1);
    assert_eq!(
        (unblocked[0].key.as_str(), &unblocked[0].data),
        ("alice", &json!({"uid": "alice", "blockedUid": "bob"}))
    );
}

on_both_backends!(blocks_are_one_sided_pairs_with_events);
