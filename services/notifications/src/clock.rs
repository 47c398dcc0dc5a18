//! The time, injected: the decision, the token caches and the schedules ask a [`Clock`], so tests can move it.

use comet_model::{Millis, now_millis};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        now_millis()
    }
}
