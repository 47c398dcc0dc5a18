//! Moderation (issue #15): rules that block, mask or flag a message before anyone sees it.
//!
//! - [`spec`]: rules and lists as stored and sent, their limits and stable refusal codes.
//! - [`Engine`]: the synchronous engine the API runs in the send path, compiled from the specs once per
//!   change and shared; it does no IO, reads no clock and cannot fail on a message (any text, any size, is
//!   checked in linear time). Keyword lists are matched on folded words (`normalize`, `keywords`), patterns
//!   with linear-time regular expressions refused at upload when unbounded (`patterns`), contact details by
//!   fixed expressions with an allow-list (`contacts`).
//! - [`ModerationStore`]: rules (every edit a revision), lists, review queues, users' reports and the audit
//!   log, in MongoDB ([`MongoModeration`]) or the relational store (`comet_store::Store`), one contract.

mod cache;
mod contacts;
mod engine;
mod keywords;
mod metrics;
mod normalize;
mod patterns;
pub mod spec;
mod storage;

pub use cache::{DEFAULT_POLL, Moderation};
pub use comet_model::ReceiverType;
pub use engine::{ConditionKind, Engine, Message, Receiver, RuleMatch, Sender, Verdict};
pub use patterns::{COMPILED_SIZE_LIMIT, MAX_MATCH_BYTES, MAX_PATTERN_CHARS};
pub use spec::{Action, Condition, Filter, FilterField, FilterOperator, ListKind, ListSpec, RuleSpec, SpecError};
pub use storage::{ModerationStore, MongoModeration, Revision, Stored};
