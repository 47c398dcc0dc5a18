//! The one error type of the store, and the portable questions asked of database errors.

/// Why a store operation failed.
///
/// `NotFound`, `Conflict` and `Refused` are the caller's business (a 404 or 409 in the API); the other variants are the
/// operator's (a 5xx, logged with the whole cause chain).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named entity (`"group"`, …) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The named entity (`"user"`, `"group"`) already exists with that id.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database URL names neither MySQL nor SQLite. Holds the URL with its password redacted.
    #[error("unsupported database URL `{0}`: use mysql://… or sqlite://…")]
    BadUrl(String),
    /// The database refused or failed a statement, or a stored value could not be read back.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations could not be applied.
    #[error("migration: {0}")]
    Migration(String),
    /// The document store (MongoDB) that holds some of the app's configuration failed; its message, which
    /// never holds the server's URL.
    #[error("document store: {0}")]
    Documents(String),
    /// The rules refused the change, decided inside its transaction (see `access`).
    #[error("refused: {0}")]
    Refused(Refusal),
}

impl StoreError {
    /// No database connection came free within the pool's acquire timeout: the process is over what its
    /// database can take, and the caller should retry (the API answers 503 `ERR_OVERLOADED`).
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut))
    }
}

/// Why the rules refused a change. Decided under the locks the change takes, so nothing that commits meanwhile
/// (a block, a kick, a ban, a demotion) can slip past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// One of the two users of a direct conversation blocked the other.
    #[error("one of the two users blocked the other")]
    Blocked,
    /// The user does not take part in the conversation (not, or no longer, a member of its group).
    #[error("not a member of the group")]
    NotAMember,
    /// Only the sender, the group's admins and moderators (and the app) may change a message.
    #[error("only the sender, the group's admins and moderators may change the message")]
    NotAllowed,
}

/// True when `error` is a violated unique index or primary key, on MySQL and SQLite alike.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|database_error| database_error.is_unique_violation())
}

/// True when the database aborted the transaction and asks for it to be retried: a deadlock or serialization
/// failure (SQLSTATE 40001, which MySQL, MariaDB and TiDB use for deadlocks).
pub(crate) fn is_retryable(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|database_error| database_error.code()).is_some_and(|code| code == "40001")
}

/// A stored value that cannot be turned back into its domain type (bad JSON, an unknown enum value, an id that
/// no longer parses), naming the column it came from.
pub(crate) fn corrupt(column: &str, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(source) })
}

/// A value that could not be serialized for storage.
pub(crate) fn unencodable(source: serde_json::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Encode(Box::new(source)))
}
