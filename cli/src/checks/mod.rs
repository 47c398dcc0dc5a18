//! One shape for every check: an id, an outcome (pass / warn / fail / skip), the evidence, the threshold it
//! was held against, and the fix. `deploy` runs its preflight checks before its first change and refuses on
//! the first that fails (exit 2, the evidence and the fix as the message); `doctor` runs every check of the
//! catalogue (`catalog`) and shows each with its area and title (`Report`).
//!
//! The evaluations are pure functions of recorded facts (`host`, `deployment`, `stores`, `edge`); what gathers
//! the facts is `facts` (this host: /proc, /sys, the disk), `engine` (the Docker Engine, exec in containers)
//! and `probe` (the published edge, over TCP and TLS).
//!
//! Some checks mend what they can on the way, and say so through the printer: a missing image is pulled, an
//! Engine in no swarm becomes a single-node one when asked (`--init-swarm`), a single node gets the labels the
//! services are pinned to.

pub mod catalog;
pub mod deployment;
pub mod edge;
pub mod facts;
pub mod host;
pub mod observability;
pub mod preflight;
pub mod probe;
pub mod report;
pub mod stores;
pub mod swarm;

use anyhow::Result;

use crate::domain::thresholds::{Level, Limit};
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
    /// What the evidence was held against (empty when the check has no threshold).
    pub threshold: String,
    /// What to do about it (empty when there is nothing to do); for a skip, nothing.
    pub fix: String,
}

impl Check {
    fn new(id: &'static str, outcome: Outcome, evidence: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, outcome, evidence: evidence.into(), threshold: String::new(), fix: fix.into() }
    }

    pub fn pass(id: &'static str, evidence: impl Into<String>) -> Check {
        Check::new(id, Outcome::Pass, evidence, "")
    }

    pub fn warn(id: &'static str, evidence: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(id, Outcome::Warn, evidence, fix)
    }

    pub fn fail(id: &'static str, evidence: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(id, Outcome::Fail, evidence, fix)
    }

    /// A check that did not run, and why (the evidence says it: "MongoDB is not deployed").
    pub fn skip(id: &'static str, why: impl Into<String>) -> Check {
        Check::new(id, Outcome::Skip, why, "")
    }

    /// `value` held against a row of the threshold table: pass, warn or fail with the row as the threshold;
    /// the fix is kept only when the outcome is not a pass.
    pub fn against(id: &'static str, limit: &Limit, value: u64, evidence: impl Into<String>, fix: &str) -> Check {
        let check = match limit.level(value) {
            Level::Ok => Check::pass(id, evidence),
            Level::Warn => Check::warn(id, evidence, fix),
            Level::Fail => Check::fail(id, evidence, fix),
        };
        check.with_threshold(limit.describe())
    }

    pub fn with_threshold(mut self, threshold: impl Into<String>) -> Check {
        self.threshold = threshold.into();
        self
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

/// Skips every id of `ids` with the same reason (a group of checks that cannot run).
pub fn skip_all(ids: &[&'static str], why: &str) -> Vec<Check> {
    ids.iter().map(|id| Check::skip(id, why)).collect()
}
