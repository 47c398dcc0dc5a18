//! The chat domain: identifiers parsed once, entities, and the event envelopes every role exchanges.
//! No IO: the store, the bus and the API depend on this crate, never the other way round.

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
pub use ids::{ConversationId, Guid, IdError, Uid, new_id};

/// Milliseconds since the Unix epoch: the one time representation every layer stores and exchanges.
pub type Millis = i64;
