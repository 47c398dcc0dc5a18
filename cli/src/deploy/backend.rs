//! What a deploy target provides: a `Backend` stages a spec (render, read back, preflight checks, changes
//! from what runs) into something `Staged` that applies.

use anyhow::Result;

use crate::domain::Target;
use crate::plan::lines::ChangeLine;
use crate::plan::status::Status;
use crate::spec::Spec;

/// Why a backend stages a spec: which preflight checks run, and what the changes are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `diff`: the changes only.
    Diff,
    /// `deploy`: every preflight check; `init_swarm` makes an Engine in no swarm a single-node one.
    Deploy { init_swarm: bool },
    /// Before an upgrade: how the deployment differs from its own spec (what is not drift left out).
    Drift,
    /// The upgrade's new spec: the checks a changed spec needs.
    Upgrade,
    /// The previous spec again after a failed upgrade.
    Rollback,
}

/// Whether one-shot jobs whose configuration changed run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    Run,
    /// A rollback: the newer migration already ran, and an older one must not run over its schema.
    Keep,
}

/// A spec rendered, read back and checked, with its changes from what runs: ready to apply.
pub trait Staged {
    fn is_empty(&self) -> bool;
    fn lines(&self) -> Vec<ChangeLine>;
    /// Applies the changes in start order, waiting for each group to be ready.
    fn apply(&self, jobs: Jobs) -> Result<()>;
    /// The long-running services of the deployment that do not run all their containers or tasks healthy,
    /// each with why.
    fn unhealthy(&self) -> Result<Vec<String>>;
    /// Restarts the containers (compose) or tasks (swarm) of `service` one at a time, each ready before the
    /// next; how many.
    fn restart(&self, service: &str) -> Result<usize>;
}

/// A way of running a deployment on the Docker Engine.
pub trait Backend {
    fn target(&self) -> Target;
    /// Renders `spec` into rendered/, reads the manifest back, runs the checks `purpose` needs, and compares
    /// the result with what runs.
    fn stage<'s>(&'s self, spec: &Spec, purpose: Purpose) -> Result<Box<dyn Staged + 's>>;
    /// What runs, one row per service.
    fn status(&self, spec: &Spec) -> Result<Status>;
    /// Whether a rollback shows its change lines. A compose rollback puts back, container by container, what
    /// the failed upgrade's lines just listed; a Swarm rollback is a deploy of the previous spec and says so.
    fn shows_rollback(&self) -> bool;
}
