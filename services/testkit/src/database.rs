//! A database of a test's own: a SQLite file in a temporary folder, or a database with a random name on the
//! MariaDB server. It is empty: the suite connects its store and migrates (or tests the migration itself).

use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};
use tempfile::TempDir;

use crate::servers::{mysql_url, require_mysql};

/// A test's own database and what it takes to remove it.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL the store connects with.
    pub url: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    /// A file in a temporary folder, removed when the folder is dropped.
    Sqlite { _folder: TempDir },
    /// A database created on the MariaDB server for this test alone.
    MariaDb { server_url: String, database: String },
}

impl TestDatabase {
    /// A new SQLite file (created when the store first connects).
    pub fn sqlite() -> TestDatabase {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}", folder.path().join("comet.db").display());
        TestDatabase { url, place: Place::Sqlite { _folder: folder } }
    }

    /// A new database with a random name (`comet_test_*`) on the MariaDB server, in TiDB's default collation.
    pub async fn mariadb() -> TestDatabase {
        sqlx::any::install_default_drivers();
        let server_url = mysql_url();
        require_mysql(&server_url);
        let mut admin = AnyConnection::connect(&server_url).await.unwrap_or_else(|error| {
            panic!(
                "MariaDB at {server_url} refused the test user: {error}; run `bash .ci/services.sh` to set it up, \
                 or set COMET_TEST_MYSQL_URL to a MySQL-protocol server whose user may CREATE DATABASE"
            )
        });
        let database = format!("comet_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")))
            .await
            .unwrap_or_else(|error| panic!("creating database {database} (the user needs GRANT ALL ON *.*): {error}"));
        admin.close().await.expect("closing the admin connection");
        TestDatabase { url: with_database(&server_url, &database), place: Place::MariaDb { server_url, database } }
    }

    /// Removes the database. A test that panics leaves its MariaDB database behind (named `comet_test_*`).
    pub async fn finish(self) {
        if let Place::MariaDb { server_url, database } = &self.place {
            let mut admin = AnyConnection::connect(server_url).await.expect("reconnecting to drop the test database");
            admin
                .execute(AssertSqlSafe(format!("DROP DATABASE `{database}`")))
                .await
                .expect("dropping the test database");
            admin.close().await.expect("closing the admin connection");
        }
    }
}

/// `server_url` with its database path replaced by `database`, keeping any query parameters.
fn with_database(server_url: &str, database: &str) -> String {
    let (base, query) = server_url.split_once('?').map_or((server_url, None), |(base, query)| (base, Some(query)));
    let (scheme, rest) = base.split_once("://").expect("a server URL with a scheme");
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_credentials_and_parameters() {
        assert_eq!(with_database("mysql://app:app@127.0.0.1:3306/app", "t1"), "mysql://app:app@127.0.0.1:3306/t1");
        assert_eq!(with_database("mysql://app@db", "t1"), "mysql://app@db/t1");
        assert_eq!(with_database("mysql://app@db/x?ssl-mode=disabled", "t1"), "mysql://app@db/t1?ssl-mode=disabled");
    }
}
