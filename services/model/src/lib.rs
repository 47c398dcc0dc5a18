//! The chat domain: identifiers parsed once, entities, and the event envelopes every role exchanges.
//! No IO: the store, the bus and the API depend on this crate, never the other way round.

pub mod auth;
mod entities;
mod event;
mod ids;

pub use entities::UserUpdate;
pub use entities::{Ban, Departure, GroupChanges, PasswordChange};
pub use entities::{
    Category, Group, GroupType, Member, Message, NewGroup, NewMember, NewMessage, NewUser, ReceiverType, Scope, User,
};
pub use entities::{MessageEdit, Reaction};
pub use event::{Event, EventType};
pub use ids::{ConversationId, ConversationKeyError, ConversationKind, Guid, IdError, Uid, new_id};

/// Milliseconds since the Unix epoch: the one time representation every layer stores and exchanges.
pub type Millis = i64;

/// The wall clock in [`Millis`]; 0 before 1970, `i64::MAX` far in the future.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
