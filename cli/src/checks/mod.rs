//! One shape for every check: an id, an outcome (pass / warn / fail / skip), the evidence, and the fix.
//! `deploy` runs its preflight checks before its first change and refuses on the first that fails (exit 2,
//! the evidence and the fix as the message); `doctor` (issue #7) will run them all and show each.
//!
//! Some checks mend what they can on the way, and say so through the printer: a missing image is pulled, an
//! Engine in no swarm becomes a single-node one when asked (`--init-swarm`), a single node gets the labels the
//! services are pinned to.

pub mod host;
pub mod swarm;

use anyhow::Result;

use crate::error::Refusal;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Stable name, e.g. `images.present`.
    pub id: &'static str,
    pub outcome: Outcome,
    /// What was found.
    pub evidence: String,
    /// What to do about it (empty when there is nothing to do).
    pub fix: String,
}

impl Check {
    pub fn pass(id: &'static str, evidence: impl Into<String>) -> Check {
        Check { id, outcome: Outcome::Pass, evidence: evidence.into(), fix: String::new() }
    }

    pub fn fail(id: &'static str, evidence: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, outcome: Outcome::Fail, evidence: evidence.into(), fix: fix.into() }
    }

    /// The evidence, then the fix.
    pub fn message(&self) -> String {
        if self.fix.is_empty() { self.evidence.clone() } else { format!("{}: {}", self.evidence, self.fix) }
    }

    /// A failed check as a refusal (exit 2); any other outcome lets the deploy go on.
    pub fn refuse_if_failed(self) -> Result<()> {
        match self.outcome {
            Outcome::Fail => Err(Refusal(self.message()).into()),
            Outcome::Pass | Outcome::Warn | Outcome::Skip => Ok(()),
        }
    }
}
