//! The door to MongoDB, where CometChat's bundle keeps its flexible data (webhook configurations today;
//! moderation rules and queues and notification preferences next): one connection per process, checked at
//! start, and the collections the roles ask for. The roles own their documents' shapes; this crate owns how
//! the process reaches the server.
//!
//! The relational store stays the source of truth for chat. A deployment without MongoDB (the embedded mode,
//! or a plan with MongoDB at 0 replicas) keeps the same data in its SQL database behind each role's interface.

mod copy;

use std::time::Duration;

pub use copy::{COPY_FORMAT, COPY_VERSION, CopySummary};
pub use mongodb::bson;
use mongodb::bson::doc;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
pub use mongodb::options::IndexOptions;
pub use mongodb::{Collection, IndexModel};

/// The server's code for a unique index refusing a second document with the same key.
const DUPLICATE_KEY: i32 = 11000;

/// How long a call waits for a usable server before it fails (the driver's default is 30 s: a role would
/// hang at start and every request would wait that long while MongoDB is down).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why MongoDB could not be reached or used.
#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    /// The URL is not a `mongodb://` / `mongodb+srv://` URL the driver accepts (never echoed: it may hold a
    /// password).
    #[error("the MongoDB URL is not valid: {0}")]
    Url(String),
    #[error("MongoDB: {0}")]
    Server(#[from] mongodb::error::Error),
    /// A copy (`dump` / `load`) that cannot be read or written as it is.
    #[error("the documents copy: {0}")]
    Copy(String),
    #[error("reading or writing the documents copy: {0}")]
    Io(#[from] std::io::Error),
}

/// One MongoDB database of the deployment.
#[derive(Clone, Debug)]
pub struct Documents {
    database: mongodb::Database,
}

impl Documents {
    /// Connects to `url` (with `password` for the URL's user when the URL has none, so the password can come
    /// from a secret file; ignored when the URL names no user), uses `database`, and checks the server answers.
    pub async fn connect(url: &str, password: Option<&str>, database: &str) -> Result<Documents, DocumentsError> {
        let mut options = ClientOptions::parse(url).await.map_err(|error| DocumentsError::Url(url_error(&error)))?;
        if let Some(password) = password {
            match options.credential.as_mut() {
                Some(credential) if credential.password.is_none() => credential.password = Some(password.to_owned()),
                // No user in the URL: a server without access control (the rendered Kubernetes manifests run
                // MongoDB so); the password has no one to sign in as.
                Some(_) | None => {}
            }
        }
        options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "comet-server".to_owned());
        let client = mongodb::Client::with_options(options)?;
        let documents = Documents { database: client.database(database) };
        documents.ping().await?;
        Ok(documents)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        self.database.name()
    }

    /// A round trip to the server.
    pub async fn ping(&self) -> Result<(), DocumentsError> {
        self.database.run_command(doc! { "ping": 1 }).await?;
        Ok(())
    }

    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.database.collection(name)
    }

    /// Drops the whole database (tests make one per test and remove it afterwards).
    pub async fn drop_database(&self) -> Result<(), DocumentsError> {
        self.database.drop().await?;
        Ok(())
    }
}

/// True when `error` is a unique index refusing a duplicate key.
pub fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == DUPLICATE_KEY,
        ErrorKind::Command(command) => command.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// What was wrong with a URL, without the URL (it may carry a password).
fn url_error(error: &mongodb::error::Error) -> String {
    match error.kind.as_ref() {
        // The driver's message may quote a part of the URL: it is shown only when it holds no credentials.
        ErrorKind::InvalidArgument { message, .. } if !message.contains('@') && !message.contains(':') => {
            message.clone()
        }
        _ => "it could not be parsed (expected mongodb://USER@HOST:PORT/?OPTIONS)".to_owned(),
    }
}
