//! Groups and members.

use comet_model::{
    Ban, Departure, EventType, Group, GroupChanges, GroupType, Member, NewGroup, NewMember, PasswordChange, Scope,
};
use comet_store::StoreError;
use serde_json::json;

use crate::support::{T0, TestDb, guid, uid};

fn new_group(id: &str, owner: &str, group_type: GroupType) -> NewGroup {
    NewGroup {
        guid: guid(id),
        name: format!("Group {id}"),
        group_type,
        password_hash: None,
        description: Some("about things".to_owned()),
        icon: None,
        owner: uid(owner),
        metadata: Some(json!({ "topic": "rust" })),
    }
}

fn participant(id: &str) -> NewMember {
    NewMember { uid: uid(id), scope: Scope::Participant }
}

async fn a_group_starts_with_its_owner_as_admin(db: &TestDb) {
    let created = db.store.create_group(&new_group("g1", "alice", GroupType::Public), T0).await.expect("create g1");
    assert_eq!(
        created,
        Group {
            guid: guid("g1"),
            name: "Group g1".to_owned(),
            group_type: GroupType::Public,
            description: Some("about things".to_owned()),
            icon: None,
            owner: uid("alice"),
            metadata: Some(json!({ "topic": "rust" })),
            members_count: 1,
            created_at: T0,
            updated_at: T0,
        }
    );
    assert_eq!(db.store.get_group(&guid("g1")).await.expect("get"), Some(created.clone()));
    assert_eq!(db.store.get_group(&guid("nope")).await.expect("get"), None);
    assert_eq!(
        db.store.member(&guid("g1"), &uid("alice")).await.expect("member"),
        Some(Member { guid: guid("g1"), uid: uid("alice"), scope: Scope::Admin, joined_at: T0 })
    );
    assert_eq!(db.store.member(&guid("g1"), &uid("bob")).await.expect("member"), None);

    let again = db.store.create_group(&new_group("g1", "bob", GroupType::Private), T0 + 1).await;
    assert!(matches!(again, Err(StoreError::Conflict("group"))), "{again:?}");

    // Password groups keep the hash they were given; other groups have none.
    let locked = NewGroup {
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        ..new_group("g2", "alice", GroupType::Password)
    };
    db.store.create_group(&locked, T0).await.expect("create g2");
    assert_eq!(db.store.group_password_hash(&guid("g2")).await.expect("hash"), locked.password_hash);
    assert_eq!(db.store.group_password_hash(&guid("g1")).await.expect("hash"), None);
    assert_eq!(db.store.group_password_hash(&guid("nope")).await.expect("hash"), None);
    assert_eq!(
        db.store.get_group(&guid("g2")).await.expect("get").map(|group| group.group_type),
        Some(GroupType::Password)
    );

    let events = db.store.unpublished_events(100).await.expect("events");
    let g1_created: Vec<_> =
        events.iter().filter(|event| event.event_type == EventType::GroupCreated && event.key == "g1").collect();
    assert_eq!(g1_created.len(), 1, "one group.created for g1, none for the conflict");
    assert_eq!(g1_created[0].data, serde_json::to_value(&created).expect("json"));
}

async fn adding_members_is_idempotent_and_counted(db: &TestDb) {
    db.store.create_group(&new_group("g1", "alice", GroupType::Public), T0).await.expect("create");

    let first = [
        participant("bob"),
        NewMember { uid: uid("carol"), scope: Scope::Moderator },
        participant("alice"),
        NewMember { uid: uid("bob"), scope: Scope::Admin },
    ];
    let added = db.store.add_members(&guid("g1"), &first, T0 + 1).await.expect("add");
    assert_eq!(
        added,
        vec![
            Member { guid: guid("g1"), uid: uid("bob"), scope: Scope::Participant, joined_at: T0 + 1 },
            Member { guid: guid("g1"), uid: uid("carol"), scope: Scope::Moderator, joined_at: T0 + 1 },
        ],
        "the owner and the repeated bob are not added again"
    );
    assert_eq!(db.store.get_group(&guid("g1")).await.expect("get").map(|group| group.members_count), Some(3));

    let second = db
        .store
        .add_members(&guid("g1"), &[NewMember { uid: uid("bob"), scope: Scope::Admin }, participant("dave")], T0 + 2)
        .await
        .expect("add again");
    assert_eq!(second.iter().map(|member| member.uid.as_str()).collect::<Vec<_>>(), ["dave"]);
    assert_eq!(db.store.get_group(&guid("g1")).await.expect("get").map(|group| group.members_count), Some(4));
    let bob = db.store.member(&guid("g1"), &uid("bob")).await.expect("member").expect("bob is a member");
    assert_eq!((bob.scope, bob.joined_at), (Scope::Participant, T0 + 1), "an existing member is left as it is");

    let nothing = db.store.add_members(&guid("g1"), &[participant("dave")], T0 + 3).await.expect("add nothing new");
    assert!(nothing.is_empty());
    assert_eq!(db.store.get_group(&guid("g1")).await.expect("get").map(|group| group.members_count), Some(4));

    let missing = db.store.add_members(&guid("nope"), &[participant("bob")], T0).await;
    assert!(matches!(missing, Err(StoreError::NotFound("group"))), "{missing:?}");

    let events = db.store.unpublished_events(100).await.expect("events");
    let member_events: Vec<_> = events
        .iter()
        .filter(|event| event.event_type == EventType::GroupMemberAdded)
        .map(|event| &event.data)
        .collect();
    assert_eq!(member_events.len(), 3, "one group.member_added per member actually added: {member_events:?}");
    assert!(
        member_events.contains(&&json!({ "guid": "g1", "uid": "carol", "scope": "moderator" })),
        "{member_events:?}"
    );
    assert!(
        events.iter().filter(|event| event.event_type == EventType::GroupMemberAdded).all(|event| event.key == "g1")
    );
}

async fn members_are_listed_by_uid_with_paging(db: &TestDb) {
    db.store.create_group(&new_group("g1", "m3", GroupType::Private), T0).await.expect("create");
    let others: Vec<NewMember> = ["m5", "m1", "m4", "m2"].into_iter().map(participant).collect();
    db.store.add_members(&guid("g1"), &others, T0).await.expect("add");
    db.store.create_group(&new_group("g2", "x9", GroupType::Public), T0).await.expect("another group");

    let uids = |members: Vec<Member>| members.into_iter().map(|member| member.uid.to_string()).collect::<Vec<_>>();
    assert_eq!(
        uids(db.store.list_members(&guid("g1"), None, 100).await.expect("list")),
        ["m1", "m2", "m3", "m4", "m5"]
    );
    assert_eq!(uids(db.store.list_members(&guid("g1"), None, 2).await.expect("page 1")), ["m1", "m2"]);
    assert_eq!(uids(db.store.list_members(&guid("g1"), Some(&uid("m2")), 2).await.expect("page 2")), ["m3", "m4"]);
    assert_eq!(uids(db.store.list_members(&guid("g1"), Some(&uid("m4")), 2).await.expect("page 3")), ["m5"]);
    assert!(db.store.list_members(&guid("g1"), Some(&uid("m5")), 2).await.expect("past the end").is_empty());
    assert!(db.store.list_members(&guid("nope"), None, 10).await.expect("unknown group").is_empty());
    let owner = db.store.list_members(&guid("g1"), None, 100).await.expect("list");
    assert_eq!(owner.iter().find(|member| member.uid.as_str() == "m3").map(|member| member.scope), Some(Scope::Admin));
}

fn events_of(events: &[comet_model::Event], event_type: EventType) -> Vec<serde_json::Value> {
    events.iter().filter(|event| event.event_type == event_type).map(|event| event.data.clone()).collect()
}

async fn members_count(db: &TestDb, id: &str) -> Option<i64> {
    db.store.get_group(&guid(id)).await.expect("get").map(|group| group.members_count)
}

async fn a_ban_ends_membership_and_blocks_re_adding_until_lifted(db: &TestDb) {
    db.store.create_group(&new_group("g1", "alice", GroupType::Public), T0).await.expect("create");
    db.store.add_members(&guid("g1"), &[participant("bob"), participant("carol")], T0).await.expect("add");
    assert_eq!(members_count(db, "g1").await, Some(3));

    assert!(db.store.ban_member(&guid("g1"), &uid("bob"), T0 + 1).await.expect("ban bob"));
    assert!(!db.store.ban_member(&guid("g1"), &uid("bob"), T0 + 2).await.expect("ban again"), "already banned");
    assert!(db.store.is_banned(&guid("g1"), &uid("bob")).await.expect("is banned"));
    assert!(!db.store.is_banned(&guid("g1"), &uid("carol")).await.expect("is banned"));
    assert_eq!(db.store.member(&guid("g1"), &uid("bob")).await.expect("member"), None);
    assert_eq!(members_count(db, "g1").await, Some(2), "the banned member is counted out");
    // A user who never was a member can be banned too; the count does not move.
    assert!(db.store.ban_member(&guid("g1"), &uid("dave"), T0 + 3).await.expect("ban dave"));
    assert_eq!(members_count(db, "g1").await, Some(2));

    let re_added =
        db.store.add_members(&guid("g1"), &[participant("bob"), participant("erin")], T0 + 4).await.expect("add");
    assert_eq!(re_added.iter().map(|member| member.uid.as_str()).collect::<Vec<_>>(), ["erin"], "bob stays out");
    assert_eq!(members_count(db, "g1").await, Some(3));

    let bans = db.store.list_bans(&guid("g1"), None, 10).await.expect("bans");
    assert_eq!(
        bans,
        vec![
            Ban { guid: guid("g1"), uid: uid("bob"), banned_at: T0 + 1 },
            Ban { guid: guid("g1"), uid: uid("dave"), banned_at: T0 + 3 },
        ]
    );
    assert_eq!(db.store.list_bans(&guid("g1"), Some(&uid("bob")), 10).await.expect("page 2").len(), 1);
    assert_eq!(db.store.list_bans(&guid("g1"), None, 1).await.expect("page of one").len(), 1);

    assert!(db.store.unban_member(&guid("g1"), &uid("bob"), T0 + 5).await.expect("unban"));
    assert!(!db.store.unban_member(&guid("g1"), &uid("bob"), T0 + 6).await.expect("unban again"), "not banned");
    let back = db.store.add_members(&guid("g1"), &[participant("bob")], T0 + 7).await.expect("add back");
    assert_eq!(back.len(), 1, "an unbanned user can be added again");
    assert_eq!(members_count(db, "g1").await, Some(4));

    let missing = db.store.ban_member(&guid("nope"), &uid("bob"), T0).await;
    assert!(matches!(missing, Err(StoreError::NotFound("group"))), "{missing:?}");

    let events = db.store.unpublished_events(100).await.expect("events");
    assert_eq!(
        events_of(&events, EventType::GroupMemberBanned),
        vec![
            json!({ "guid": "g1", "uid": "bob", "wasMember": true }),
            json!({ "guid": "g1", "uid": "dave", "wasMember": false }),
        ],
        "one event per ban that happened"
    );
    assert_eq!(events_of(&events, EventType::GroupMemberUnbanned), vec![json!({ "guid": "g1", "uid": "bob" })]);
    assert!(
        events.iter().filter(|event| event.event_type.as_str().starts_with("group.")).all(|event| event.key == "g1")
    );
}

async fn members_leave_are_kicked_and_change_scope(db: &TestDb) {
    db.store.create_group(&new_group("g1", "alice", GroupType::Private), T0).await.expect("create");
    db.store.add_members(&guid("g1"), &[participant("bob"), participant("carol")], T0).await.expect("add");

    assert!(db.store.remove_member(&guid("g1"), &uid("bob"), Departure::Kicked, T0 + 1).await.expect("kick"));
    assert!(!db.store.remove_member(&guid("g1"), &uid("bob"), Departure::Kicked, T0 + 2).await.expect("kick again"));
    assert!(db.store.remove_member(&guid("g1"), &uid("carol"), Departure::Left, T0 + 3).await.expect("leave"));
    assert_eq!(members_count(db, "g1").await, Some(1));
    // A kicked member may be added back (unlike a banned one).
    db.store.add_members(&guid("g1"), &[participant("bob")], T0 + 4).await.expect("re-add");
    assert_eq!(members_count(db, "g1").await, Some(2));

    let promoted = db.store.change_scope(&guid("g1"), &uid("bob"), Scope::Moderator, T0 + 5).await.expect("scope");
    assert_eq!(promoted.map(|member| member.scope), Some(Scope::Moderator));
    assert_eq!(
        db.store.member(&guid("g1"), &uid("bob")).await.expect("member").map(|member| member.scope),
        Some(Scope::Moderator)
    );
    let same = db.store.change_scope(&guid("g1"), &uid("bob"), Scope::Moderator, T0 + 6).await.expect("same scope");
    assert_eq!(same.map(|member| member.scope), Some(Scope::Moderator));
    assert_eq!(db.store.change_scope(&guid("g1"), &uid("zed"), Scope::Admin, T0).await.expect("non-member"), None);

    let events = db.store.unpublished_events(100).await.expect("events");
    assert_eq!(events_of(&events, EventType::GroupMemberKicked), vec![json!({ "guid": "g1", "uid": "bob" })]);
    assert_eq!(events_of(&events, EventType::GroupMemberLeft), vec![json!({ "guid": "g1", "uid": "carol" })]);
    assert_eq!(
        events_of(&events, EventType::GroupMemberScopeChanged),
        vec![json!({ "guid": "g1", "uid": "bob", "scope": "moderator", "oldScope": "participant" })],
        "setting the same scope again writes nothing"
    );
}

async fn groups_update_delete_and_list(db: &TestDb) {
    let locked = NewGroup { password_hash: Some("hash-1".to_owned()), ..new_group("g2", "alice", GroupType::Password) };
    db.store.create_group(&locked, T0).await.expect("create g2");
    db.store.create_group(&new_group("g1", "alice", GroupType::Public), T0).await.expect("create g1");
    db.store.create_group(&new_group("g3", "bob", GroupType::Private), T0).await.expect("create g3");
    db.store.create_group(&new_group("g4", "alice", GroupType::Private), T0).await.expect("create g4");

    let changes = GroupChanges {
        name: Some("Renamed 100%".to_owned()),
        icon: Some("i.png".to_owned()),
        ..GroupChanges::default()
    };
    let updated = db.store.update_group(&guid("g1"), &changes, T0 + 1).await.expect("update g1");
    assert_eq!(
        (updated.name.as_str(), updated.icon.as_deref(), updated.updated_at),
        ("Renamed 100%", Some("i.png"), T0 + 1)
    );
    assert_eq!(updated.description.as_deref(), Some("about things"), "unnamed fields stay");
    assert_eq!(db.store.get_group(&guid("g1")).await.expect("get"), Some(updated.clone()));

    let new_password = GroupChanges { password: PasswordChange::Set("hash-2".to_owned()), ..GroupChanges::default() };
    db.store.update_group(&guid("g2"), &new_password, T0 + 2).await.expect("new password");
    assert_eq!(db.store.group_password_hash(&guid("g2")).await.expect("hash").as_deref(), Some("hash-2"));
    let opened = GroupChanges { group_type: Some(GroupType::Public), ..GroupChanges::default() };
    db.store.update_group(&guid("g2"), &opened, T0 + 3).await.expect("open g2");
    assert_eq!(db.store.group_password_hash(&guid("g2")).await.expect("hash"), None, "a public group keeps no hash");

    let names = |groups: Vec<Group>| groups.into_iter().map(|group| group.guid.to_string()).collect::<Vec<_>>();
    assert_eq!(names(db.store.list_groups(None, None, None, 10).await.expect("app")), ["g1", "g2", "g3", "g4"]);
    assert_eq!(names(db.store.list_groups(None, None, None, 2).await.expect("page 1")), ["g1", "g2"]);
    assert_eq!(names(db.store.list_groups(None, None, Some(&guid("g2")), 2).await.expect("page 2")), ["g3", "g4"]);
    assert_eq!(names(db.store.list_groups(Some(&uid("bob")), None, None, 10).await.expect("bob")), ["g1", "g2", "g3"]);
    assert_eq!(names(db.store.list_groups(None, Some("RENAMED 100%"), None, 10).await.expect("search")), ["g1"]);
    assert!(db.store.list_groups(None, Some("renamed 1000"), None, 10).await.expect("search").is_empty());
    assert!(db.store.list_groups(None, Some("_"), None, 10).await.expect("wildcards are literal").is_empty());
    db.store.ban_member(&guid("g1"), &uid("bob"), T0 + 4).await.expect("ban");
    assert_eq!(names(db.store.list_groups(Some(&uid("bob")), None, None, 10).await.expect("bob")), ["g2", "g3"]);

    db.store.delete_group(&guid("g3"), T0 + 5).await.expect("delete g3");
    assert_eq!(db.store.get_group(&guid("g3")).await.expect("get"), None);
    assert_eq!(names(db.store.list_groups(None, None, None, 10).await.expect("app")), ["g1", "g2", "g4"]);
    let again = db.store.delete_group(&guid("g3"), T0 + 6).await;
    assert!(matches!(again, Err(StoreError::NotFound("group"))), "{again:?}");
    let add = db.store.add_members(&guid("g3"), &[participant("carol")], T0 + 6).await;
    assert!(matches!(add, Err(StoreError::NotFound("group"))), "{add:?}");
    let reuse = db.store.create_group(&new_group("g3", "carol", GroupType::Public), T0 + 7).await;
    assert!(matches!(reuse, Err(StoreError::Conflict("group"))), "a deleted group's guid stays taken: {reuse:?}");

    let events = db.store.unpublished_events(100).await.expect("events");
    let updates = events_of(&events, EventType::GroupUpdated);
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0], serde_json::to_value(&updated).expect("json"));
    assert_eq!(events_of(&events, EventType::GroupDeleted), vec![json!({ "guid": "g3" })]);
}

on_both_backends!(
    a_group_starts_with_its_owner_as_admin,
    adding_members_is_idempotent_and_counted,
    members_are_listed_by_uid_with_paging,
    a_ban_ends_membership_and_blocks_re_adding_until_lifted,
    members_leave_are_kicked_and_change_scope,
    groups_update_delete_and_list,
);
