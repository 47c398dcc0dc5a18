//! The database and the account Comet runs as, made by an administrator ("root") before the schema is applied.
//! MySQL protocol only (TiDB, MySQL, MariaDB); every statement is one that all three accept.
//!
//! A fresh TiDB's `root` has an empty password. When the configured root password is refused, an empty one is
//! tried, and if the server takes it the configured password is set at once, so the cluster is never left
//! open. Then, idempotently: the database, the account `'<user>'@'%'` with the configured password (altered
//! on every run, so a rotated secret takes effect), and `ALL PRIVILEGES` on the database for it.
//!
//! Account statements take no bind parameters on every server, so names and passwords are written into the
//! SQL: names are checked to be letters, digits and underscores, and passwords to be printable ASCII without
//! a backslash (whose meaning depends on the server's `sql_mode`); a single quote is doubled. Passwords never
//! reach a log line or an error message.

use std::fmt;
use std::str::FromStr as _;

use percent_encoding::percent_decode_str;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Executor as _, MySql};

/// MySQL's "Access denied for user" (ER_ACCESS_DENIED_ERROR), which TiDB and MariaDB answer too.
const ACCESS_DENIED: u16 = 1045;

/// The longest user name TiDB and MySQL accept (MariaDB accepts more).
const MAX_USER_NAME: usize = 32;

/// The longest database name every server accepts.
const MAX_DATABASE_NAME: usize = 64;

/// Why the database or its account could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The database URL is not a `mysql://user@host/database` URL.
    #[error("the database URL must look like mysql://user@host:port/database ({0})")]
    BadUrl(&'static str),
    /// A user or database name the statements cannot carry.
    #[error("the {what} `{value}` may hold only letters, digits and underscores, at most {max} of them")]
    BadName { what: &'static str, value: String, max: usize },
    /// A password the statements cannot carry safely.
    #[error(
        "the {0} holds a character that cannot be written into SQL safely: use printable ASCII without a backslash"
    )]
    UnsafePassword(&'static str),
    /// The account Comet runs as has no password to be created with.
    #[error("the database URL gives no password for `{0}`: the account is created with one")]
    NoPassword(String),
    /// Comet's account would be the administrator itself.
    #[error("the database URL's user `{0}` is the root user: Comet needs an account of its own")]
    UserIsRoot(String),
    /// The server refused the root user with the configured password and with an empty one. `source` is the
    /// refusal of the configured password.
    #[error("the database refused {user} with the configured root password (and an empty one): {source}")]
    RootRefused { user: String, source: sqlx::Error },
    /// The server did not answer, or failed a step (named by `step`; the message never holds a password).
    #[error("{step}: {message}")]
    Database { step: String, message: String },
}

/// A user or database name: letters, digits and underscores only, so it can be written into SQL as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Name(String);

impl Name {
    fn parse(what: &'static str, value: &str, max: usize) -> Result<Name, BootstrapError> {
        let fits = !value.is_empty()
            && value.len() <= max
            && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
        if fits {
            Ok(Name(value.to_owned()))
        } else {
            Err(BootstrapError::BadName { what, value: value.to_owned(), max })
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A password that can be written into a SQL string literal on every server. Its `Debug` hides it.
#[derive(Clone)]
struct Password {
    text: String,
    /// `text` as a SQL string literal.
    sql: String,
}

impl Password {
    fn parse(what: &'static str, text: &str) -> Result<Password, BootstrapError> {
        let sql = sql_string(text).ok_or(BootstrapError::UnsafePassword(what))?;
        Ok(Password { text: text.to_owned(), sql })
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Password(***)")
    }
}

/// `text` as a single-quoted SQL string literal, or `None` when it holds a character whose meaning differs
/// between servers or SQL modes (a backslash), a control character or non-ASCII.
fn sql_string(text: &str) -> Option<String> {
    if !text.bytes().all(|byte| (b' '..=b'~').contains(&byte) && byte != b'\\') {
        return None;
    }
    Some(format!("'{}'", text.replace('\'', "''")))
}

/// What `migrate` makes before it applies the schema: the database and the account named by the database URL,
/// made as the root user.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// The server of the database URL, without user, password or database.
    server: MySqlConnectOptions,
    root_user: Name,
    root_password: Password,
    database: Name,
    user: Name,
    password: Password,
}

impl Bootstrap {
    /// Reads the server, the database, the user and its password from `database_url`
    /// (`mysql://user:password@host:port/database`, percent-encoded) and checks every name and password.
    pub fn new(database_url: &str, root_user: &str, root_password: &str) -> Result<Bootstrap, BootstrapError> {
        let parts = UrlParts::split(database_url)?;
        let user = Name::parse("database user", &decode(parts.user)?, MAX_USER_NAME)?;
        let root_user = Name::parse("root user", root_user, MAX_USER_NAME)?;
        if user == root_user {
            return Err(BootstrapError::UserIsRoot(user.0));
        }
        let database = Name::parse("database name", &decode(parts.database)?, MAX_DATABASE_NAME)?;
        let password = match parts.password.map(decode).transpose()? {
            Some(password) if !password.is_empty() => Password::parse("database password", &password)?,
            _ => return Err(BootstrapError::NoPassword(user.0)),
        };
        let server = MySqlConnectOptions::from_str(&format!("mysql://{}/{}", parts.host, parts.query))
            .map_err(|_| BootstrapError::BadUrl("the host, port or options do not parse"))?;
        Ok(Bootstrap {
            server,
            root_user,
            root_password: Password::parse("root password", root_password)?,
            database,
            user,
            password,
        })
    }

    /// Connects as the root user (setting its password on a fresh server), then creates the database and the
    /// account if missing, sets the account's password and grants it every privilege on the database.
    pub async fn run(&self) -> Result<(), BootstrapError> {
        let mut root = self.connect_as_root().await?;
        let account = format!("'{}'@'%'", self.user);
        let existed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'")
            .bind(&self.user.0)
            .fetch_one(&mut *root)
            .await
            .map_err(|error| self.failed("looking up the database account", &error))?;
        let statements = [
            ("creating the database", format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database)),
            (
                "creating the database account",
                format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {}", self.password.sql),
            ),
            (
                "setting the database account's password",
                format!("ALTER USER {account} IDENTIFIED BY {}", self.password.sql),
            ),
            (
                "granting the database account its database",
                format!("GRANT ALL PRIVILEGES ON `{}`.* TO {account}", self.database),
            ),
        ];
        for (step, statement) in statements {
            self.execute(&mut root, step, statement).await?;
        }
        let change = if existed > 0 { "updated" } else { "created" };
        tracing::info!(database = %self.database, "database account {}@% {change}", self.user);
        self.warn_about_anonymous_accounts(&mut root).await;
        root.close().await.map_err(|error| self.failed("disconnecting the root user", &error))
    }

    /// A connection as the root user with the configured password, or, when that is refused, with an empty
    /// one (a fresh TiDB), whose password is then set to the configured one before anything else runs.
    async fn connect_as_root(&self) -> Result<PoolConnection<MySql>, BootstrapError> {
        let as_root = self.server.clone().username(&self.root_user.0);
        let refused = match connect(as_root.clone().password(&self.root_password.text)).await {
            Ok(connection) => return Ok(connection),
            Err(error) if is_access_denied(&error) => error,
            Err(error) => return Err(self.failed("connecting as the root user", &error)),
        };
        let mut connection = match connect(as_root).await {
            Ok(connection) => connection,
            Err(error) if is_access_denied(&error) => {
                return Err(BootstrapError::RootRefused { user: self.root_user.0.clone(), source: refused });
            }
            Err(error) => return Err(self.failed("connecting as the root user with an empty password", &error)),
        };
        // The account the server matched (`root@%`, `root@localhost`, …), not an assumed host.
        let current: String = sqlx::query_scalar("SELECT CURRENT_USER()")
            .fetch_one(&mut *connection)
            .await
            .map_err(|error| self.failed("looking up the root account", &error))?;
        let host = current.strip_prefix(&format!("{}@", self.root_user)).and_then(sql_string).ok_or_else(|| {
            BootstrapError::Database {
                step: "looking up the root account".to_owned(),
                message: format!("the server names it `{current}`, not {}@<host>", self.root_user),
            }
        })?;
        let statement = format!("ALTER USER '{}'@{host} IDENTIFIED BY {}", self.root_user, self.root_password.sql);
        self.execute(&mut connection, "setting the root password", statement).await?;
        tracing::info!(account = %current, "root password set on first start");
        Ok(connection)
    }

    /// Anonymous accounts (`''@localhost`) are matched before `'<user>'@'%'` for logins from their hosts, so
    /// Comet's login from there would be refused. They are the operator's to drop; this only says so.
    async fn warn_about_anonymous_accounts(&self, root: &mut PoolConnection<MySql>) {
        let hosts: Result<Vec<String>, _> =
            sqlx::query_scalar("SELECT Host FROM mysql.user WHERE User = ''").fetch_all(&mut **root).await;
        if let Ok(hosts) = hosts
            && !hosts.is_empty()
        {
            tracing::warn!(
                hosts = hosts.join(","),
                "anonymous database accounts exist: logins as {} from those hosts match them instead of {}@%",
                self.user,
                self.user
            );
        }
    }

    async fn execute(
        &self,
        connection: &mut PoolConnection<MySql>,
        step: &str,
        statement: String,
    ) -> Result<(), BootstrapError> {
        // The names and passwords in `statement` were checked when this bootstrap was built.
        connection.execute(AssertSqlSafe(statement)).await.map_err(|error| self.failed(step, &error))?;
        Ok(())
    }

    /// A failed step, its message stripped of both passwords (as written in the SQL) in case the server quoted
    /// the statement.
    fn failed(&self, step: &str, error: &sqlx::Error) -> BootstrapError {
        let mut message = error.to_string();
        for password in [&self.root_password, &self.password] {
            // The literal without its enclosing quotes: what a server quoting the statement would show.
            let written = &password.sql[1..password.sql.len() - 1];
            if !written.is_empty() {
                message = message.replace(written, "***");
            }
        }
        BootstrapError::Database { step: step.to_owned(), message }
    }
}

/// One connection; like [`crate::Store::connect`], a server that refuses connections (still starting) is
/// retried until the pool's acquire timeout.
async fn connect(options: MySqlConnectOptions) -> Result<PoolConnection<MySql>, sqlx::Error> {
    MySqlPoolOptions::new().max_connections(1).connect_with(options).await?.acquire().await
}

fn is_access_denied(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|error| error.number() == ACCESS_DENIED)
}

fn decode(text: &str) -> Result<String, BootstrapError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| BootstrapError::BadUrl("a percent-encoded part is not UTF-8"))
}

/// The pieces of `scheme://user[:password]@host[:port]/database[?options]`, still percent-encoded.
#[derive(Debug, PartialEq, Eq)]
struct UrlParts<'a> {
    user: &'a str,
    password: Option<&'a str>,
    host: &'a str,
    database: &'a str,
    /// `?options`, or empty.
    query: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Result<UrlParts<'a>, BootstrapError> {
        let rest = ["mysql://", "mariadb://"]
            .into_iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or(BootstrapError::BadUrl("a root password serves mysql:// databases only"))?;
        let query_start = rest.find('?').unwrap_or(rest.len());
        let (rest, query) = rest.split_at(query_start);
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, host) = authority.rsplit_once('@').ok_or(BootstrapError::BadUrl("it names no user"))?;
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (credentials, None),
        };
        if database.is_empty() {
            return Err(BootstrapError::BadUrl("it names no database"));
        }
        Ok(UrlParts { user, password, host, database, query })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_their_parts() {
        assert_eq!(
            UrlParts::split("mysql://comet:p%40ss@tidb:4000/comet?ssl-mode=required").ok(),
            Some(UrlParts {
                user: "comet",
                password: Some("p%40ss"),
                host: "tidb:4000",
                database: "comet",
                query: "?ssl-mode=required"
            })
        );
        assert_eq!(
            UrlParts::split("mariadb://comet@db/chat").ok(),
            Some(UrlParts { user: "comet", password: None, host: "db", database: "chat", query: "" })
        );
        for (url, problem) in [
            ("sqlite:///tmp/comet.db", "mysql:// databases only"),
            ("mysql://tidb:4000/comet", "names no user"),
            ("mysql://comet@tidb:4000", "names no database"),
            ("mysql://comet@tidb:4000/", "names no database"),
        ] {
            let error = UrlParts::split(url).expect_err(url).to_string();
            assert!(error.contains(problem), "{url}: {error}");
        }
    }

    #[test]
    fn names_and_passwords_are_checked_before_anything_connects() {
        let refusal = |url: &str, root_user: &str, root_password: &str| {
            Bootstrap::new(url, root_user, root_password).expect_err(url).to_string()
        };
        let accepted = Bootstrap::new("mysql://comet:a%27b%20c@tidb:4000/comet", "root", "it's ok").expect("valid");
        assert_eq!(accepted.password.sql, "'a''b c'");
        assert_eq!(accepted.root_password.sql, "'it''s ok'");
        assert_eq!(format!("{:?}", accepted.password), "Password(***)");

        assert_eq!(
            refusal("mysql://co-met:pw@tidb/comet", "root", "r"),
            "the database user `co-met` may hold only letters, digits and underscores, at most 32 of them"
        );
        assert!(refusal("mysql://comet:pw@tidb/com%60et", "root", "r").contains("database name `com`et`"));
        assert!(refusal("mysql://comet:pw@tidb/comet", "ro'ot", "r").contains("root user `ro'ot`"));
        assert_eq!(
            refusal("mysql://comet:pw@tidb/comet", "root", "back\\slash"),
            "the root password holds a character that cannot be written into SQL safely: use printable ASCII \
             without a backslash"
        );
        assert!(refusal("mysql://comet:a%0Ab@tidb/comet", "root", "r").starts_with("the database password holds"));
        assert!(refusal("mysql://comet:%C3%A9@tidb/comet", "root", "r").starts_with("the database password holds"));
        assert_eq!(
            refusal("mysql://comet@tidb/comet", "root", "r"),
            "the database URL gives no password for `comet`: the account is created with one"
        );
        assert_eq!(
            refusal("mysql://root:pw@tidb/comet", "root", "r"),
            "the database URL's user `root` is the root user: Comet needs an account of its own"
        );
    }

    #[test]
    fn failures_never_carry_a_password() {
        let bootstrap = Bootstrap::new("mysql://comet:it%27s@tidb/comet", "root", "r00t-pw").expect("valid");
        let quoted = sqlx::Error::Protocol("near 'IDENTIFIED BY 'it''s'' and 'r00t-pw'' at line 1".to_owned());
        assert_eq!(
            bootstrap.failed("setting the password", &quoted).to_string(),
            "setting the password: encountered unexpected or invalid data: near 'IDENTIFIED BY '***'' and '***'' at \
             line 1"
        );
    }

    #[test]
    fn string_literals_double_quotes_and_refuse_what_sql_modes_read_differently() {
        assert_eq!(sql_string("%").as_deref(), Some("'%'"));
        assert_eq!(sql_string("o'neil").as_deref(), Some("'o''neil'"));
        assert_eq!(sql_string("a\\'"), None);
        assert_eq!(sql_string("tab\there"), None);
        assert_eq!(sql_string("naïve"), None);
    }
}
