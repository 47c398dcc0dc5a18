//! Groups and members.

use comet_model::{EventType, Group, GroupType, Member, NewGroup, NewMember, Scope};
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

on_both_backends!(
    a_group_starts_with_its_owner_as_admin,
    adding_members_is_idempotent_and_counted,
    members_are_listed_by_uid_with_paging,
);
