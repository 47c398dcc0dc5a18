//! Users, search and paging, auth tokens.

use comet_model::{EventType, NewUser, User, UserUpdate};
use comet_store::StoreError;
use serde_json::json;
use sqlx::{Connection, Executor};

use crate::support::{T0, TestDb, new_user, uid};

async fn users_are_created_read_and_unique(db: &TestDb) {
    let alice = NewUser {
        avatar: Some("https://example.com/a.png".to_owned()),
        link: Some("https://example.com/alice".to_owned()),
        role: Some("default".to_owned()),
        metadata: Some(json!({ "team": "blue", "n": 1 })),
        ..new_user("alice", "Alice Liddell")
    };
    let created = db.store.create_user(&alice, T0).await.expect("create alice");
    assert_eq!(
        created,
        User {
            uid: alice.uid.clone(),
            name: alice.name.clone(),
            avatar: alice.avatar.clone(),
            link: alice.link.clone(),
            role: alice.role.clone(),
            metadata: alice.metadata.clone(),
            created_at: T0,
            updated_at: T0,
            deleted_at: None,
        }
    );
    assert_eq!(db.store.get_user(&uid("alice")).await.expect("get"), Some(created.clone()));
    assert_eq!(db.store.get_user(&uid("nobody")).await.expect("get"), None);

    let again = db.store.create_user(&new_user("alice", "Another"), T0 + 1).await;
    assert!(matches!(again, Err(StoreError::Conflict("user"))), "{again:?}");
    // Uids are case-sensitive: ALICE is someone else.
    db.store.create_user(&new_user("ALICE", "Upper"), T0).await.expect("create ALICE");

    let events = db.store.unpublished_events(100).await.expect("events");
    let created_events: Vec<_> =
        events.iter().filter(|event| event.event_type == EventType::UserCreated && event.key == "alice").collect();
    assert_eq!(created_events.len(), 1, "one user.created for alice, none for the conflict");
    assert_eq!(created_events[0].data, serde_json::to_value(&created).expect("json"));
    assert_eq!(created_events[0].time, T0);
}

async fn users_are_listed_by_uid_with_search_and_paging(db: &TestDb) {
    for (id, name) in [
        ("u05", "Eve Adams"),
        ("u01", "Anna Bell"),
        ("u03", "Carl Johansson"),
        ("u02", "Bob Marley"),
        ("u04", "Dana Scully"),
        ("user_100", "Percent 100%"),
        ("joANNe", "Jo"),
    ] {
        db.store.create_user(&new_user(id, name), T0).await.expect("create");
    }
    let uids = |users: Vec<User>| users.into_iter().map(|user| user.uid.to_string()).collect::<Vec<_>>();

    let all = uids(db.store.list_users(None, None, 100).await.expect("list"));
    assert_eq!(all, ["joANNe", "u01", "u02", "u03", "u04", "u05", "user_100"]);

    let first = uids(db.store.list_users(None, None, 3).await.expect("page 1"));
    assert_eq!(first, ["joANNe", "u01", "u02"]);
    let second = uids(db.store.list_users(None, Some(&uid("u02")), 3).await.expect("page 2"));
    assert_eq!(second, ["u03", "u04", "u05"]);
    let third = uids(db.store.list_users(None, Some(&uid("u05")), 3).await.expect("page 3"));
    assert_eq!(third, ["user_100"]);

    // Case-insensitive substring of the uid or the name.
    let ann = uids(db.store.list_users(Some("ANN"), None, 100).await.expect("search ANN"));
    assert_eq!(ann, ["joANNe", "u01"]);
    let son = uids(db.store.list_users(Some("sOn"), None, 100).await.expect("search sOn"));
    assert_eq!(son, ["u03"]);
    // Search and paging together.
    let paged = uids(db.store.list_users(Some("a"), Some(&uid("u01")), 2).await.expect("search a after u01"));
    assert_eq!(paged, ["u02", "u03"]);
    // LIKE wildcards match only themselves.
    assert_eq!(uids(db.store.list_users(Some("_"), None, 100).await.expect("search _")), ["user_100"]);
    assert_eq!(uids(db.store.list_users(Some("%"), None, 100).await.expect("search %")), ["user_100"]);
    assert!(db.store.list_users(Some("zzz"), None, 100).await.expect("search zzz").is_empty());

    // Soft-deleted users are not listed, but can still be read.
    let mut raw = db.raw().await;
    raw.execute(sqlx::query("UPDATE users SET deleted_at = ? WHERE uid = ?").bind(T0 + 5).bind("u03"))
        .await
        .expect("soft delete u03");
    raw.close().await.expect("close");
    let after_delete = uids(db.store.list_users(None, None, 100).await.expect("list"));
    assert_eq!(after_delete, ["joANNe", "u01", "u02", "u04", "u05", "user_100"]);
    let deleted = db.store.get_user(&uid("u03")).await.expect("get").expect("u03 is still readable");
    assert_eq!(deleted.deleted_at, Some(T0 + 5));
}

async fn auth_tokens_resolve_to_their_user(db: &TestDb) {
    db.store.create_user(&new_user("alice", "Alice"), T0).await.expect("create alice");
    db.store.create_user(&new_user("bob", "Bob"), T0).await.expect("create bob");
    db.store.create_auth_token(&uid("alice"), "hash-a1", T0).await.expect("token a1");
    db.store.create_auth_token(&uid("alice"), "hash-a2", T0).await.expect("token a2");
    db.store.create_auth_token(&uid("bob"), "hash-b1", T0).await.expect("token b1");

    assert_eq!(db.store.user_for_token("hash-a1").await.expect("lookup"), Some(uid("alice")));
    assert_eq!(db.store.user_for_token("hash-a2").await.expect("lookup"), Some(uid("alice")));
    assert_eq!(db.store.user_for_token("hash-b1").await.expect("lookup"), Some(uid("bob")));
    assert_eq!(db.store.user_for_token("HASH-A1").await.expect("lookup"), None, "hashes compare exactly");
    assert_eq!(db.store.user_for_token("unknown").await.expect("lookup"), None);

    let duplicate = db.store.create_auth_token(&uid("bob"), "hash-a1", T0).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");

    // A deleted user's tokens no longer sign in.
    let mut raw = db.raw().await;
    raw.execute(sqlx::query("UPDATE users SET deleted_at = ? WHERE uid = ?").bind(T0 + 1).bind("bob"))
        .await
        .expect("soft delete bob");
    raw.close().await.expect("close");
    assert_eq!(db.store.user_for_token("hash-b1").await.expect("lookup"), None);
}

/// The unpublished events of `event_type` keyed `key`, in outbox order.
async fn events(db: &TestDb, event_type: EventType, key: &str) -> Vec<comet_model::Event> {
    let events = db.store.unpublished_events(1_000).await.expect("events");
    events.into_iter().filter(|event| event.event_type == event_type && event.key == key).collect()
}

async fn updates_change_only_the_named_fields(db: &TestDb) {
    let alice = NewUser {
        avatar: Some("a.png".to_owned()),
        metadata: Some(json!({ "team": "blue" })),
        ..new_user("alice", "Alice")
    };
    db.store.create_user(&alice, T0).await.expect("create alice");
    let update = UserUpdate {
        name: Some("Alice L.".to_owned()),
        avatar: Some(None),
        link: Some(Some("https://example.com/alice".to_owned())),
        ..UserUpdate::default()
    };
    let updated = db.store.update_user(&uid("alice"), &update, T0 + 10).await.expect("update");
    let expected = User {
        uid: uid("alice"),
        name: "Alice L.".to_owned(),
        avatar: None,
        link: Some("https://example.com/alice".to_owned()),
        role: None,
        metadata: Some(json!({ "team": "blue" })),
        created_at: T0,
        updated_at: T0 + 10,
        deleted_at: None,
    };
    assert_eq!(updated, expected);
    assert_eq!(db.store.get_user(&uid("alice")).await.expect("get"), Some(expected.clone()));
    let updated_events = events(db, EventType::UserUpdated, "alice").await;
    assert_eq!(updated_events.len(), 1);
    assert_eq!(updated_events[0].data, serde_json::to_value(&expected).expect("json"));
    assert_eq!(updated_events[0].time, T0 + 10);

    let missing = db.store.update_user(&uid("nobody"), &update, T0 + 11).await;
    assert!(matches!(missing, Err(StoreError::NotFound("user"))), "{missing:?}");
    db.store.delete_user(&uid("alice"), T0 + 12).await.expect("delete");
    let deleted = db.store.update_user(&uid("alice"), &update, T0 + 13).await;
    assert!(matches!(deleted, Err(StoreError::NotFound("user"))), "a deleted user is not updated: {deleted:?}");
    assert_eq!(events(db, EventType::UserUpdated, "alice").await.len(), 1, "no event for refused updates");
}

async fn deleted_users_are_restorable_with_events(db: &TestDb) {
    db.store.create_user(&new_user("alice", "Alice"), T0).await.expect("create alice");
    db.store.create_user(&new_user("bob", "Bob"), T0).await.expect("create bob");
    db.store.create_auth_token(&uid("bob"), "hash-b1", T0).await.expect("token");

    let deleted = db.store.delete_user(&uid("bob"), T0 + 5).await.expect("delete bob");
    assert_eq!((deleted.deleted_at, deleted.updated_at), (Some(T0 + 5), T0 + 5));
    let listed: Vec<_> =
        db.store.list_users(None, None, 10).await.expect("list").into_iter().map(|user| user.uid).collect();
    assert_eq!(listed, [uid("alice")]);
    assert_eq!(db.store.user_for_token("hash-b1").await.expect("lookup"), None);
    let twice = db.store.delete_user(&uid("bob"), T0 + 6).await;
    assert!(matches!(twice, Err(StoreError::NotFound("user"))), "{twice:?}");
    let live = db.store.restore_user(&uid("alice"), T0 + 6).await;
    assert!(matches!(live, Err(StoreError::NotFound("user"))), "only deleted users are restored: {live:?}");

    let restored = db.store.restore_user(&uid("bob"), T0 + 7).await.expect("restore bob");
    assert_eq!((restored.deleted_at, restored.updated_at), (None, T0 + 7));
    assert_eq!(db.store.list_users(None, None, 10).await.expect("list").len(), 2);
    assert_eq!(db.store.user_for_token("hash-b1").await.expect("lookup"), Some(uid("bob")));

    let deleted_events = events(db, EventType::UserDeleted, "bob").await;
    assert_eq!(deleted_events.len(), 1, "one event, none for the refused second delete");
    assert_eq!(deleted_events[0].data, serde_json::to_value(&deleted).expect("json"));
    let restored_events = events(db, EventType::UserRestored, "bob").await;
    assert_eq!(restored_events.len(), 1);
    assert_eq!(restored_events[0].data, serde_json::to_value(&restored).expect("json"));
    assert!(events(db, EventType::UserRestored, "alice").await.is_empty());
}

async fn auth_tokens_are_listed_by_id_and_revoked(db: &TestDb) {
    db.store.create_user(&new_user("alice", "Alice"), T0).await.expect("create alice");
    db.store.create_user(&new_user("bob", "Bob"), T0).await.expect("create bob");
    let first = db.store.create_auth_token(&uid("alice"), "hash-a1", T0).await.expect("token a1");
    let second = db.store.create_auth_token(&uid("alice"), "hash-a2", T0 + 1).await.expect("token a2");
    db.store.create_auth_token(&uid("bob"), "hash-b1", T0).await.expect("token b1");
    assert_ne!(first.id, second.id);
    assert_eq!(db.store.list_auth_tokens(&uid("alice")).await.expect("list"), [first.clone(), second.clone()]);

    let wrong_owner = db.store.revoke_auth_token(&uid("bob"), &first.id, T0 + 5).await;
    assert!(matches!(wrong_owner, Err(StoreError::NotFound("auth token"))), "{wrong_owner:?}");
    assert_eq!(db.store.user_for_token("hash-a1").await.expect("lookup"), Some(uid("alice")));

    db.store.revoke_auth_token(&uid("alice"), &first.id, T0 + 5).await.expect("revoke");
    assert_eq!(db.store.user_for_token("hash-a1").await.expect("lookup"), None, "a revoked token is refused");
    assert_eq!(db.store.user_for_token("hash-a2").await.expect("lookup"), Some(uid("alice")));
    let second_id = second.id.clone();
    assert_eq!(db.store.list_auth_tokens(&uid("alice")).await.expect("list"), [second]);
    let again = db.store.revoke_auth_token(&uid("alice"), &first.id, T0 + 5).await;
    assert!(matches!(again, Err(StoreError::NotFound("auth token"))), "{again:?}");
    // One event per revocation (not for the failed ones), naming the token, so gateways close its sockets.
    let revoked = events(db, EventType::UserAuthTokenRevoked, "alice").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].data, serde_json::json!({"uid": "alice", "id": first.id}));
    assert!(events(db, EventType::UserAuthTokenRevoked, "bob").await.is_empty());
    assert_eq!(
        db.store.session_for_token("hash-a2").await.expect("lookup"),
        Some((uid("alice"), second_id)),
        "the gateway learns the token's id"
    );
}

on_both_backends!(
    users_are_created_read_and_unique,
    users_are_listed_by_uid_with_search_and_paging,
    auth_tokens_resolve_to_their_user,
    updates_change_only_the_named_fields,
    deleted_users_are_restorable_with_events,
    auth_tokens_are_listed_by_id_and_revoked,
);
