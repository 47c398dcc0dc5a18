//! `comet-server migrate` with `COMET_DATABASE_ROOT_PASSWORD`: the database and the account Comet runs as, made
//! as the server's root user, on the real MariaDB. MariaDB's own root logs in over its Unix socket only, so each
//! test makes a root-like account of its own (`boot_<n>`, every privilege with GRANT OPTION, an empty password
//! like a fresh TiDB's root) as `app`, which `.ci/services.sh` grants WITH GRANT OPTION.

use std::process::Output;
use std::str::FromStr as _;

use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, MySqlConnection};

use crate::support::{mysql_server_url, run_migrate, unique};

/// A root-like account, and the names of the database and the account that `migrate` is to make; all three
/// are dropped when this is.
struct Accounts {
    admin_url: String,
    root_user: String,
    user: String,
    database: String,
}

impl Accounts {
    async fn create() -> Accounts {
        let number = unique("");
        let accounts = Accounts {
            admin_url: mysql_server_url(),
            root_user: format!("boot_{number}"),
            user: format!("comet_{number}"),
            database: format!("db_{number}"),
        };
        let mut admin = accounts.admin().await;
        let anonymous: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ''")
            .fetch_one(&mut admin)
            .await
            .expect("reading mysql.user");
        assert_eq!(
            anonymous, 0,
            "MariaDB has anonymous accounts: they match TCP logins from localhost before '<user>'@'%', so these \
             tests cannot log in as the accounts they make"
        );
        for statement in [
            format!("CREATE USER '{}'@'%'", accounts.root_user),
            format!("GRANT ALL PRIVILEGES ON *.* TO '{}'@'%' WITH GRANT OPTION", accounts.root_user),
        ] {
            sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut admin).await.unwrap_or_else(|error| {
                panic!("making the root-like account as app ({error}); run `bash .ci/services.sh` for GRANT OPTION")
            });
        }
        accounts
    }

    async fn admin(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.admin_url).await.unwrap_or_else(|error| {
            panic!("MariaDB at {} is unreachable ({error}); run `bash .ci/services.sh`", self.admin_url)
        })
    }

    /// Logs in as `user` with `password` (none: an empty password) to `database`.
    async fn login(&self, user: &str, password: Option<&str>, database: &str) -> Result<MySqlConnection, sqlx::Error> {
        let server = MySqlConnectOptions::from_str(&self.admin_url).expect("test URL parses");
        let options = MySqlConnectOptions::new()
            .host(server.get_host())
            .port(server.get_port())
            .username(user)
            .database(database);
        match password {
            Some(password) => options.password(password).connect().await,
            None => options.connect().await,
        }
    }

    /// `comet-server migrate` as this test's root user with `root_password` and with `app_password` for Comet's
    /// account.
    fn migrate(&self, root_password: RootPassword<'_>, app_password: &str) -> Output {
        let url = format!("mysql://{}@{}/{}", self.user, self.server_address(), self.database);
        let (root_password_name, root_password) = match root_password {
            RootPassword::Env(password) => ("COMET_DATABASE_ROOT_PASSWORD", password.to_owned()),
            RootPassword::File(path) => ("COMET_DATABASE_ROOT_PASSWORD_FILE", path.display().to_string()),
        };
        run_migrate(&[
            ("COMET_DATABASE_URL", &url),
            ("COMET_DATABASE_PASSWORD", app_password),
            ("COMET_DATABASE_ROOT_USER", &self.root_user),
            (root_password_name, &root_password),
        ])
    }

    fn server_address(&self) -> String {
        let server = MySqlConnectOptions::from_str(&self.admin_url).expect("test URL parses");
        format!("{}:{}", server.get_host(), server.get_port())
    }

    /// What a second run with the same settings must leave as it was: both accounts' password hashes, the
    /// account's grants and the applied migrations.
    async fn state(&self) -> Vec<String> {
        let mut admin = self.admin().await;
        let mut state: Vec<String> = sqlx::query_scalar(
            "SELECT CONCAT(User, '@', Host, ' ', authentication_string) FROM mysql.user WHERE User IN (?, ?) \
             ORDER BY User",
        )
        .bind(&self.root_user)
        .bind(&self.user)
        .fetch_all(&mut admin)
        .await
        .expect("reading mysql.user");
        let grants: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("SHOW GRANTS FOR '{}'@'%'", self.user)))
            .fetch_all(&mut admin)
            .await
            .expect("reading the account's grants");
        let migrations: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT CONCAT(version, ' ', installed_on) FROM `{}`._sqlx_migrations ORDER BY version",
            self.database
        )))
        .fetch_all(&mut admin)
        .await
        .expect("reading the applied migrations");
        state.extend(grants);
        state.extend(migrations);
        state
    }
}

impl Drop for Accounts {
    // A failed clean-up must not panic (a panic while unwinding aborts), so it is only reported.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!(
            "DROP USER IF EXISTS '{}'@'%', '{}'@'%'; DROP DATABASE IF EXISTS `{}`",
            self.root_user, self.user, self.database
        );
        // Drop cannot await, and a test's runtime may be the current thread: clean up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut admin = MySqlConnection::connect(&admin_url).await?;
                sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut admin).await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop the test's accounts and database: {error}");
        }
    }
}

/// How a test run gives the root password: `COMET_DATABASE_ROOT_PASSWORD`, or a file named by
/// `COMET_DATABASE_ROOT_PASSWORD_FILE`.
enum RootPassword<'a> {
    Env(&'a str),
    File(&'a std::path::Path),
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// True when the login was refused with MySQL's "Access denied" (1045), not for any other reason.
fn is_access_denied(login: &Result<MySqlConnection, sqlx::Error>) -> bool {
    login
        .as_ref()
        .err()
        .and_then(sqlx::Error::as_database_error)
        .and_then(|error| error.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|error| error.number() == 1045)
}

#[tokio::test]
async fn migrate_sets_an_empty_root_password_and_makes_the_database_and_its_account_idempotently() {
    let accounts = Accounts::create().await;
    let (root, user, database) = (&accounts.root_user, &accounts.user, &accounts.database);
    // Quotes, spaces and URL characters: the passwords cross a URL and a SQL string literal.
    let root_password = format!("root 'pw' {user} %@:/?#");
    let app_password = format!("app 'pw' {user} &=+%");
    let passwords_are_hidden = |output: &Output, passwords: &[&str]| {
        let text = stderr(output);
        for password in passwords {
            assert!(!text.contains(password), "a password reached the log: {text}");
        }
    };
    assert!(accounts.login(root, None, "mysql").await.is_ok(), "the fresh root-like account takes an empty password");

    let first = accounts.migrate(RootPassword::Env(&root_password), &app_password);
    assert!(first.status.success(), "first migrate failed: {}", stderr(&first));
    assert!(stderr(&first).contains("root password set on first start"), "{}", stderr(&first));
    assert!(stderr(&first).contains(&format!("database account {user}@% created")), "{}", stderr(&first));
    passwords_are_hidden(&first, &[&root_password, &app_password]);
    assert!(is_access_denied(&accounts.login(root, None, "mysql").await), "root still takes an empty password");
    assert!(accounts.login(root, Some(&root_password), "mysql").await.is_ok(), "root refuses its new password");
    let mut comet = accounts.login(user, Some(&app_password), database).await.expect("Comet's account logs in");
    let tables: Vec<String> =
        sqlx::query_scalar("SHOW TABLES").fetch_all(&mut comet).await.expect("the account sees its database");
    for table in ["_sqlx_migrations", "users", "messages", "outbox"] {
        assert!(tables.iter().any(|name| name == table), "{table} missing from {tables:?}");
    }
    comet.close().await.expect("close");

    // Again with the same settings, the root password from a file this time: nothing changes.
    let before = accounts.state().await;
    let secrets = tempfile::tempdir().expect("temp dir");
    let root_password_file = secrets.path().join("db_root_password");
    std::fs::write(&root_password_file, format!("{root_password}\n")).expect("write the secret");
    let second = accounts.migrate(RootPassword::File(&root_password_file), &app_password);
    assert!(second.status.success(), "second migrate failed: {}", stderr(&second));
    assert!(stderr(&second).contains(&format!("database account {user}@% updated")), "{}", stderr(&second));
    assert!(!stderr(&second).contains("root password set"), "{}", stderr(&second));
    assert_eq!(accounts.state().await, before, "a second run with the same settings changed something");

    // A rotated application password takes effect; the old one stops working.
    let rotated = format!("rotated {user}");
    let third = accounts.migrate(RootPassword::Env(&root_password), &rotated);
    assert!(third.status.success(), "migrate with a rotated password failed: {}", stderr(&third));
    assert!(accounts.login(user, Some(&rotated), database).await.is_ok(), "the rotated password is refused");
    assert!(is_access_denied(&accounts.login(user, Some(&app_password), database).await), "the old password works");

    // A wrong root password, when root's password is no longer empty, is refused with exit 1.
    let wrong = format!("wrong {root}");
    let refused = accounts.migrate(RootPassword::Env(&wrong), &rotated);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let expected =
        format!("the database refused {root} with the configured COMET_DATABASE_ROOT_PASSWORD (and an empty one): ");
    assert!(stderr(&refused).contains(&expected), "{}", stderr(&refused));
    passwords_are_hidden(&refused, &[&wrong, &rotated]);
    assert!(accounts.login(root, Some(&root_password), "mysql").await.is_ok(), "the refused run changed root");
}

#[test]
fn root_settings_that_cannot_work_exit_2_before_anything_connects() {
    // Port 9 (discard): were anything to connect, the run would fail with exit 1 instead of 2.
    let url = "mysql://comet@127.0.0.1:9/comet";
    for (env, message) in [
        (
            vec![
                ("COMET_DATABASE_URL", url),
                ("COMET_DATABASE_PASSWORD", "pw"),
                ("COMET_DATABASE_ROOT_PASSWORD", "a\\b"),
            ],
            "the root password holds a character that cannot be written into SQL safely",
        ),
        (
            vec![("COMET_DATABASE_URL", url), ("COMET_DATABASE_ROOT_PASSWORD", "root-pw")],
            "the database URL gives no password for `comet`",
        ),
        (
            vec![
                ("COMET_DATABASE_URL", "mysql://comet@127.0.0.1:9/com-et"),
                ("COMET_DATABASE_PASSWORD", "pw"),
                ("COMET_DATABASE_ROOT_PASSWORD", "root-pw"),
            ],
            "the database name `com-et` may hold only letters, digits and underscores",
        ),
        (
            vec![("COMET_DATABASE_ROOT_PASSWORD", "root-pw")],
            "COMET_DATABASE_ROOT_PASSWORD is set but COMET_DATABASE_URL is not",
        ),
    ] {
        let output = run_migrate(&env);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{env:?}: {}", stderr(&output));
        assert!(!stderr(&output).contains("root-pw"), "{}", stderr(&output));
    }
}
