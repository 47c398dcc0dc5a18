//! Preferences in the relational store: JSON documents in `notification_preferences` and
//! `notification_defaults`, mutes in `notification_mutes` (migration 0013).

use comet_model::{Millis, Uid};
use comet_store::{Store, StoreError};
use futures::future::BoxFuture;

use super::PreferenceStore;
use crate::preferences::{Defaults, Preferences};

/// A stored document that no longer parses: written by something other than this crate.
fn corrupt(what: &str, error: &serde_json::Error) -> StoreError {
    StoreError::Documents(format!("a stored {what} document does not parse: {error}"))
}

impl PreferenceStore for Store {
    fn preferences_of<'a>(&'a self, uids: &'a [Uid]) -> BoxFuture<'a, Result<Vec<(Uid, Preferences)>, StoreError>> {
        Box::pin(async move {
            let rows = self.notification_preferences_of(uids).await?;
            rows.into_iter()
                .map(|(uid, body)| {
                    serde_json::from_str(&body)
                        .map(|preferences| (uid, preferences))
                        .map_err(|error| corrupt("preferences", &error))
                })
                .collect()
        })
    }

    fn save_preferences<'a>(
        &'a self,
        uid: &'a Uid,
        preferences: &'a Preferences,
        now: Millis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let body = serde_json::to_string(preferences).map_err(|error| corrupt("preferences", &error))?;
            self.save_notification_preferences(uid, &body, now).await
        })
    }

    fn reset_preferences<'a>(&'a self, uid: &'a Uid) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.reset_notification_preferences(uid))
    }

    fn defaults(&self) -> BoxFuture<'_, Result<Option<Defaults>, StoreError>> {
        Box::pin(async move {
            let body = self.notification_defaults().await?;
            body.map(|body| serde_json::from_str(&body).map_err(|error| corrupt("defaults", &error))).transpose()
        })
    }

    fn save_defaults<'a>(&'a self, defaults: &'a Defaults, now: Millis) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let body = serde_json::to_string(defaults).map_err(|error| corrupt("defaults", &error))?;
            self.save_notification_defaults(&body, now).await
        })
    }

    fn mute<'a>(&'a self, uid: &'a Uid, key: &'a str, until: Millis) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.mute_conversation(uid, key, until))
    }

    fn unmute<'a>(&'a self, uid: &'a Uid, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.unmute_conversation(uid, key))
    }

    fn mutes<'a>(&'a self, uid: &'a Uid, now: Millis) -> BoxFuture<'a, Result<Vec<(String, Millis)>, StoreError>> {
        Box::pin(self.conversation_mutes(uid, now))
    }

    fn muted_among<'a>(
        &'a self,
        uids: &'a [Uid],
        key: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<Vec<(Uid, Millis)>, StoreError>> {
        Box::pin(Store::muted_among(self, uids, key, now))
    }
}
