//! Preferences in MongoDB, where CometChat's bundle keeps them: `notification_preferences` (one document per
//! user, `_id` = uid), `notification_defaults` (one document, `_id` = `app`) and `notification_mutes` (one
//! document per user and conversation key).

use comet_documents::bson::doc;
use comet_documents::{Collection, Documents};
use comet_model::{Millis, Uid};
use comet_store::StoreError;
use futures::TryStreamExt as _;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::PreferenceStore;
use crate::preferences::{Defaults, Preferences};

#[derive(Debug, Clone)]
pub struct MongoPreferences {
    preferences: Collection<PreferencesDocument>,
    defaults: Collection<DefaultsDocument>,
    mutes: Collection<MuteDocument>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreferencesDocument {
    #[serde(rename = "_id")]
    uid: String,
    preferences: Preferences,
    updated_at: Millis,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DefaultsDocument {
    #[serde(rename = "_id")]
    id: String,
    defaults: Defaults,
    updated_at: Millis,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MuteDocument {
    uid: String,
    conversation: String,
    until: Millis,
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Documents(error.to_string())
}

fn uid_strings(uids: &[Uid]) -> Vec<String> {
    uids.iter().map(|uid| uid.as_str().to_owned()).collect()
}

fn parse_uid(text: &str) -> Result<Uid, StoreError> {
    Uid::parse(text).map_err(|error| StoreError::Documents(format!("a stored uid does not parse: {error}")))
}

impl MongoPreferences {
    pub fn new(documents: &Documents) -> MongoPreferences {
        MongoPreferences {
            preferences: documents.collection("notification_preferences"),
            defaults: documents.collection("notification_defaults"),
            mutes: documents.collection("notification_mutes"),
        }
    }
}

impl PreferenceStore for MongoPreferences {
    fn preferences_of<'a>(&'a self, uids: &'a [Uid]) -> BoxFuture<'a, Result<Vec<(Uid, Preferences)>, StoreError>> {
        Box::pin(async move {
            if uids.is_empty() {
                return Ok(Vec::new());
            }
            let cursor = self
                .preferences
                .find(doc! { "_id": { "$in": uid_strings(uids) } })
                .sort(doc! { "_id": 1 })
                .await
                .map_err(failed)?;
            let documents: Vec<PreferencesDocument> = cursor.try_collect().await.map_err(failed)?;
            documents.into_iter().map(|document| Ok((parse_uid(&document.uid)?, document.preferences))).collect()
        })
    }

    fn save_preferences<'a>(
        &'a self,
        uid: &'a Uid,
        preferences: &'a Preferences,
        now: Millis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let document =
                PreferencesDocument { uid: uid.as_str().to_owned(), preferences: preferences.clone(), updated_at: now };
            self.preferences.replace_one(doc! { "_id": uid.as_str() }, document).upsert(true).await.map_err(failed)?;
            Ok(())
        })
    }

    fn reset_preferences<'a>(&'a self, uid: &'a Uid) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let preferences = self.preferences.delete_one(doc! { "_id": uid.as_str() }).await.map_err(failed)?;
            let mutes = self.mutes.delete_many(doc! { "uid": uid.as_str() }).await.map_err(failed)?;
            Ok(preferences.deleted_count + mutes.deleted_count > 0)
        })
    }

    fn defaults(&self) -> BoxFuture<'_, Result<Option<Defaults>, StoreError>> {
        Box::pin(async move {
            let found = self.defaults.find_one(doc! { "_id": "app" }).await.map_err(failed)?;
            Ok(found.map(|document| document.defaults))
        })
    }

    fn save_defaults<'a>(&'a self, defaults: &'a Defaults, now: Millis) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let document = DefaultsDocument { id: "app".to_owned(), defaults: defaults.clone(), updated_at: now };
            self.defaults.replace_one(doc! { "_id": "app" }, document).upsert(true).await.map_err(failed)?;
            Ok(())
        })
    }

    fn mute<'a>(&'a self, uid: &'a Uid, key: &'a str, until: Millis) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let document = MuteDocument { uid: uid.as_str().to_owned(), conversation: key.to_owned(), until };
            self.mutes
                .replace_one(doc! { "uid": uid.as_str(), "conversation": key }, document)
                .upsert(true)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn unmute<'a>(&'a self, uid: &'a Uid, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let deleted =
                self.mutes.delete_many(doc! { "uid": uid.as_str(), "conversation": key }).await.map_err(failed)?;
            Ok(deleted.deleted_count > 0)
        })
    }

    fn mutes<'a>(&'a self, uid: &'a Uid, now: Millis) -> BoxFuture<'a, Result<Vec<(String, Millis)>, StoreError>> {
        Box::pin(async move {
            let cursor = self
                .mutes
                .find(doc! { "uid": uid.as_str(), "until": { "$gt": now } })
                .sort(doc! { "conversation": 1 })
                .await
                .map_err(failed)?;
            let documents: Vec<MuteDocument> = cursor.try_collect().await.map_err(failed)?;
            Ok(documents.into_iter().map(|document| (document.conversation, document.until)).collect())
        })
    }

    fn muted_among<'a>(
        &'a self,
        uids: &'a [Uid],
        key: &'a str,
        now: Millis,
    ) -> BoxFuture<'a, Result<Vec<(Uid, Millis)>, StoreError>> {
        Box::pin(async move {
            if uids.is_empty() {
                return Ok(Vec::new());
            }
            let filter = doc! { "conversation": key, "until": { "$gt": now }, "uid": { "$in": uid_strings(uids) } };
            let cursor = self.mutes.find(filter).await.map_err(failed)?;
            let documents: Vec<MuteDocument> = cursor.try_collect().await.map_err(failed)?;
            documents.into_iter().map(|document| Ok((parse_uid(&document.uid)?, document.until))).collect()
        })
    }
}
