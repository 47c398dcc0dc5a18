//! Where preferences live, behind one interface: MongoDB when the deployment has it (where CometChat's bundle
//! keeps user preferences), the relational store otherwise (SQLite embedded, TiDB/MariaDB split). A user's
//! preferences, the app's defaults and the timed mutes go through [`PreferenceStore`]; push tokens, providers,
//! the pushes owed and the log are always relational (a token is deleted in the transaction that records the
//! answer that condemned it; docs/notifications.md, "Storage").

mod mongo;
mod relational;

use comet_model::{Millis, Uid};
use comet_store::StoreError;
use futures::future::BoxFuture;

pub use mongo::MongoPreferences;

use crate::preferences::{Defaults, Preferences};

/// Users' preferences, the app's defaults and conversation mutes.
pub trait PreferenceStore: Send + Sync + std::fmt::Debug {
    /// The preferences of those of `uids` that saved some.
    fn preferences_of<'a>(&'a self, uids: &'a [Uid]) -> BoxFuture<'a, Result<Vec<(Uid, Preferences)>, StoreError>>;
    fn save_preferences<'a>(
        &'a self,
        uid: &'a Uid,
        preferences: &'a Preferences,
        now: Millis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Forgets `uid`'s preferences and mutes (the defaults apply again); false when it had none.
    fn reset_preferences<'a>(&'a self, uid: &'a Uid) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn defaults(&self) -> BoxFuture<'_, Result<Option<Defaults>, StoreError>>;
    fn save_defaults<'a>(&'a self, defaults: &'a Defaults, now: Millis) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Mutes conversation `key` (`ConversationId::key`) for `uid` until `until` (ms), replacing an earlier mute.
    fn mute<'a>(&'a self, uid: &'a Uid, key: &'a str, until: Millis) -> BoxFuture<'a, Result<(), StoreError>>;
    /// False when there was no mute.
    fn unmute<'a>(&'a self, uid: &'a Uid, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// `uid`'s mutes still running at `now`, by conversation key.
    fn mutes<'a>(&'a self, uid: &'a Uid, now: Millis) -> BoxFuture<'a, Result<Vec<(String, Millis)>, StoreError>>;
    /// Which of `uids` have `key` muted at `now`, and until when.
    fn muted_among<'a>(
        &'a self,
        uids: &'a [Uid],
        key: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<Vec<(Uid, Millis)>, StoreError>>;
}
