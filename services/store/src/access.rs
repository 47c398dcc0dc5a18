//! Who takes part in a conversation: ONE rule for the API, the gateway and the workers.
//!
//! A conversation is what it is (`ConversationKind`): its two users take part in a direct conversation, a
//! group's current members in the group's (read from the store, never from a cache). Who takes part may read
//! the conversation's messages, mark them and react to them; sending adds the rules of the send path (blocks,
//! bans, scope).

use comet_model::{ConversationId, ConversationKind, Message, Uid};

use crate::{Store, StoreError};

impl Store {
    /// Whether `uid` takes part in `conversation`: a side of a direct conversation, a member of the group.
    pub async fn takes_part(&self, conversation: &ConversationId, uid: &Uid) -> Result<bool, StoreError> {
        match conversation.kind() {
            ConversationKind::Direct { low, high } => Ok(low == uid || high == uid),
            ConversationKind::Group(guid) => Ok(self.member(guid, uid).await?.is_some()),
        }
    }

    /// Whether `uid` may read `message`: it takes part in the message's conversation.
    pub async fn may_read(&self, message: &Message, uid: &Uid) -> Result<bool, StoreError> {
        self.takes_part(&message.conversation_id, uid).await
    }
}
