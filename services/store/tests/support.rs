//! Test fixtures: a fresh, migrated store per test, and the macro that runs a test on both backends.

use comet_model::{Category, ConversationId, Guid, Millis, NewMessage, NewUser, ReceiverType, Uid};
use comet_store::Store;
use comet_testkit::TestDatabase;
use serde_json::json;
use sqlx::{AnyConnection, Connection};

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
