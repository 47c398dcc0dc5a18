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
//! - The moderation role: [`Decider`], the worker-base handler that decides each message a Custom API rule
//!   holds, once, through [`CustomApi`] (`adapter`, CometChat's contract, behind the SSRF guard).

pub mod adapter;
mod cache;
mod contacts;
mod decide;
mod engine;
mod keywords;
mod metrics;
mod normalize;
mod patterns;
pub mod sender;
pub mod spec;
mod storage;

pub use adapter::{CustomApi, CustomApiConfig};
pub use cache::{DEFAULT_POLL, Moderation};
pub use comet_model::ReceiverType;
pub use decide::{Decider, DecisionMetrics};
pub use engine::{Ask, ConditionKind, Engine, Message, Receiver, RuleMatch, Sender, Verdict};
pub use patterns::{COMPILED_SIZE_LIMIT, MAX_MATCH_BYTES, MAX_PATTERN_CHARS};
pub use spec::{
    Action, Condition, FailurePolicy, Filter, FilterField, FilterOperator, ListKind, ListSpec, RuleSpec, SpecError,
    Threshold,
};
pub use storage::{ModerationStore, MongoModeration, Revision, Stored};
