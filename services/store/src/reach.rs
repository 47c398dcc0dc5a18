//! Who a user can reach: the groups it belongs to and the users it has direct conversations with. The gateway
//! reads this once per connecting user to route group messages, typing and presence to its sockets.

use comet_model::{Guid, Uid};

use crate::rows;
use crate::{Store, StoreError};

/// A user's live groups and direct-conversation peers, each list capped by the caller's limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Groups the user is a member of (deleted groups left out), by guid.
    pub groups: Vec<Guid>,
    /// Users it sent to or received from in a direct conversation, most recent first.
    pub peers: Vec<Uid>,
}

impl Store {
    /// Up to `limit` groups and up to `limit` direct peers of `uid`: two indexed reads
    /// (`group_members_uid`, `user_conversations_recent`).
    pub async fn reach(&self, uid: &Uid, limit: u32) -> Result<Reach, StoreError> {
        let limit = i64::from(limit);
        let group_rows = sqlx::query(
            "SELECT m.guid FROM group_members m JOIN chat_groups g ON g.guid = m.guid \
             WHERE m.uid = ? AND g.deleted_at IS NULL ORDER BY m.guid LIMIT ?",
        )
        .bind(uid.as_str())
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        let peer_rows = sqlx::query(
            "SELECT other_uid FROM user_conversations WHERE uid = ? ORDER BY last_at DESC, conversation_id DESC LIMIT ?",
        )
        .bind(uid.as_str())
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        Ok(Reach {
            groups: group_rows.iter().map(|row| rows::guid(row, "guid")).collect::<Result<_, _>>()?,
            peers: peer_rows.iter().map(|row| rows::uid(row, "other_uid")).collect::<Result<_, _>>()?,
        })
    }
}
