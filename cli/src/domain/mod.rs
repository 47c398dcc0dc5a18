//! The vocabulary every layer shares: targets, services, MAU and concurrency, and the one threshold table.
//!
//! These types are parsed once at the edge (arguments, the spec file) and carried as values; nothing after
//! the parse sees the strings they came from.

mod concurrency;
mod mau;
mod service;
mod target;
pub mod thresholds;

pub use concurrency::{Concurrency, ConcurrencyError};
pub use mau::{Mau, MauError};
pub use service::{ServiceKey, ServiceKind};
pub use target::Target;
