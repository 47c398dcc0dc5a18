//! Test fixtures: a fresh, migrated store per test, and the macro that runs a test on both backends.

use comet_model::{
    Category, ConversationId, GroupType, Guid, Millis, NewGroup, NewMember, NewMessage, NewUser, ReceiverType, Scope,
    Uid,
};
use comet_store::Store;
use comet_testkit::TestDatabase;
use serde_json::json;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

/// Runs each named `async fn name(db: &TestDb)` twice: as `sqlite::name` and as `mariadb::name`.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::support::TestDb::sqlite().await;
                    super::$test(&db).await;
                    db.finish().await;
                }
            )+
        }

        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::support::TestDb::mariadb().await;
                    super::$test(&db).await;
                    db.finish().await;
                }
            )+
        }
    };
}

/// A migrated store on a database of its own, and what it takes to remove that database.
pub struct TestDb {
    pub store: Store,
    /// The URL of this test's database, for reaching past the store's API (a soft delete, the migrations table).
    pub url: String,
    database: TestDatabase,
}

impl TestDb {
    /// A store on a new SQLite file.
    pub async fn sqlite() -> TestDb {
        TestDb::sqlite_at(i64::MAX).await
    }

    /// A store on a new SQLite file with the migrations up to `version` applied.
    pub async fn sqlite_at(version: i64) -> TestDb {
        TestDb::migrated(TestDatabase::sqlite(), version).await
    }

    /// A store on a new database with a random name on the MariaDB server.
    pub async fn mariadb() -> TestDb {
        TestDb::mariadb_at(i64::MAX).await
    }

    /// The same with the migrations up to `version` applied.
    pub async fn mariadb_at(version: i64) -> TestDb {
        TestDb::migrated(TestDatabase::mariadb().await, version).await
    }

    async fn migrated(database: TestDatabase, version: i64) -> TestDb {
        let store = Store::connect(&database.url).await.expect("connecting to the test database");
        store.migrate_to(version).await.expect("migrating the test database");
        TestDb { store, url: database.url.clone(), database }
    }

    /// A connection of its own to this test's database.
    pub async fn raw(&self) -> AnyConnection {
        AnyConnection::connect(&self.url).await.expect("a raw connection to the test database")
    }

    /// Removes the database (see [`TestDatabase::finish`]).
    pub async fn finish(self) {
        self.database.finish().await;
    }
}

/// A fixed clock: tests pass times explicitly.
pub const T0: Millis = 1_700_000_000_000;

pub fn uid(value: &str) -> Uid {
    Uid::parse(value).expect("a valid uid")
}

pub fn guid(value: &str) -> Guid {
    Guid::parse(value).expect("a valid guid")
}

pub fn new_user(id: &str, name: &str) -> NewUser {
    NewUser { uid: uid(id), name: name.to_owned(), avatar: None, link: None, role: None, metadata: None }
}

/// A text message from `sender` to a user.
pub fn direct_text(sender: &str, receiver: &str, text: &str, muid: Option<&str>) -> NewMessage {
    NewMessage {
        conversation_id: ConversationId::direct(&uid(sender), &uid(receiver)),
        sender: uid(sender),
        receiver: receiver.to_owned(),
        receiver_type: ReceiverType::User,
        category: Category::Message,
        message_type: "text".to_owned(),
        data: json!({ "text": text }),
        muid: muid.map(str::to_owned),
        parent_id: None,
        tags: Vec::new(),
    }
}

/// A text message from `sender` to a group.
pub fn group_text(sender: &str, group: &str, text: &str, muid: Option<&str>) -> NewMessage {
    NewMessage {
        conversation_id: ConversationId::group(&guid(group)),
        sender: uid(sender),
        receiver: group.to_owned(),
        receiver_type: ReceiverType::Group,
        category: Category::Message,
        message_type: "text".to_owned(),
        data: json!({ "text": text }),
        muid: muid.map(str::to_owned),
        parent_id: None,
        tags: Vec::new(),
    }
}

/// A group with `members`, written as rows (no events): for tests that send to a group and count events.
pub async fn group_rows(db: &TestDb, id: &str, members: &[&str]) {
    let mut raw = db.raw().await;
    raw.execute(AssertSqlSafe(format!(
        "INSERT INTO chat_groups (guid, name, group_type, owner, members_count, created_at, updated_at) \
         VALUES ('{id}', '{id}', 'public', '{}', {}, {T0}, {T0})",
        members.first().copied().unwrap_or("alice"),
        members.len()
    )))
    .await
    .expect("group row");
    for member in members {
        raw.execute(AssertSqlSafe(format!(
            "INSERT INTO group_members (guid, uid, scope, joined_at) VALUES ('{id}', '{member}', 'participant', {T0})"
        )))
        .await
        .expect("member row");
    }
    raw.close().await.expect("close");
}

/// A private group owned by `alice` (who must exist) with `members` as participants.
pub async fn create_group(db: &TestDb, id: &str, members: &[&str]) {
    let group = NewGroup {
        guid: guid(id),
        name: format!("Group {id}"),
        group_type: GroupType::Private,
        password_hash: None,
        description: None,
        icon: None,
        owner: uid("alice"),
        metadata: None,
    };
    db.store.create_group(&group, T0).await.expect("create group");
    let members: Vec<NewMember> =
        members.iter().map(|member| NewMember { uid: uid(member), scope: Scope::Participant }).collect();
    db.store.add_members(&guid(id), &members, T0).await.expect("add members");
}
