//! Moving a healthy deployment from its spec to a new one, one flow for both backends and for both commands
//! that do it: `upgrade` (new images) and `scale` (a new plan). Refused unless the Engine runs exactly what
//! cometctl.yaml renders (otherwise a rollback could not tell what "previous" is) and every long-running
//! service is healthy; then the new spec is staged (its checks refuse before anything changes), shown,
//! confirmed when the caller asks for it, and applied: Compose replaces the stateless roles one container at
//! a time, start-first, each gated on its health check; Swarm's `update_config` rolls them. On failure the
//! previous spec is applied again without running its older migration (`Jobs::Keep`), the command exits 3,
//! and cometctl.yaml keeps the previous spec. Every attempt is recorded in history.jsonl.

use std::time::Instant;

use anyhow::Result;

use super::backend::{Backend, Jobs, Purpose};
use crate::context::Context;
use crate::error::Refusal;
use crate::plan::history::{Attempt, HistoryRecord};
use crate::plan::lines::ChangeLine;
use crate::spec::{SPEC_FILE, Spec};

/// What kind of move a change is, for its messages and its history record.
pub struct Move<'a> {
    /// `upgrade`, `scale`: the history record's action.
    pub action: &'static str,
    /// The title of the change lines (`upgrade comet 0.1.0 → 0.2.0`).
    pub title: String,
    /// What the deployment goes back to on failure, for the messages (`0.1.0`, `the previous plan`).
    pub previous: String,
    /// A line of detail for the history record (`mau 10k → 50k`).
    pub detail: String,
    /// Asked after the change lines are shown and before anything changes; an error refuses the change.
    pub confirm: &'a dyn Fn(&[ChangeLine]) -> Result<()>,
}

impl std::fmt::Debug for Move<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Move").field("action", &self.action).field("title", &self.title).finish_non_exhaustive()
    }
}

/// `upgrade`: moves the deployment of `spec` to `next` (its images changed) with `backend`, or back to `spec`
/// if `next` fails.
pub fn upgrade(context: &Context<'_>, backend: &dyn Backend, spec: &Spec, next: &Spec) -> Result<()> {
    let (from, to) = (spec.images.comet.reference(), next.images.comet.reference());
    let how = Move {
        action: "upgrade",
        title: format!("upgrade {} {from} → {to}", spec.name),
        previous: from,
        detail: String::new(),
        confirm: &|_| Ok(()),
    };
    change(context, backend, spec, next, &how)
}

/// Moves the deployment of `spec` to `next` with `backend`, or back to `spec` if `next` fails.
pub fn change(context: &Context<'_>, backend: &dyn Backend, spec: &Spec, next: &Spec, how: &Move<'_>) -> Result<()> {
    let printer = context.printer;
    let target = backend.target();
    let current = backend.stage(spec, Purpose::Drift)?;
    if !current.is_empty() {
        return Err(Refusal(format!(
            "the deployment differs from cometctl.yaml ({} changes; see `cometctl diff {target}`): deploy it with \
             `cometctl deploy {target}` before you {} it",
            current.lines().len(),
            how.action
        ))
        .into());
    }
    let sick = current.unhealthy()?;
    if !sick.is_empty() {
        return Err(Refusal(format!(
            "refusing to {} an unhealthy deployment: {}; fix it first (`cometctl status`)",
            how.action,
            sick.join(", ")
        ))
        .into());
    }
    let staged = backend.stage(next, Purpose::Upgrade)?;
    let lines = staged.lines();
    printer.change_lines(&how.title, &lines)?;
    (how.confirm)(&lines)?;
    let started = Instant::now();
    let attempt = Attempt { action: how.action, target, from: spec, to: next };
    match staged.apply(Jobs::Run) {
        Ok(()) => {
            if !context.folder.write_changed_spec(spec, next)? {
                printer.warning(&format!(
                    "{SPEC_FILE} could not be edited in place (its keys are not all written in block style), so it \
                     was written whole: comments in it are gone"
                ));
            }
            let seconds = started.elapsed().as_secs_f64();
            record(context, attempt, "ok", seconds, &how.detail)?;
            printer.result(&format!("{}: done in {seconds:.1}s", how.title))?;
            Ok(())
        }
        Err(error) => {
            let previous = &how.previous;
            printer.warning(&format!("{error:#}"));
            printer.warning(&format!("rolling back to {previous}"));
            let rolled_back = backend.stage(spec, Purpose::Rollback).and_then(|staged| {
                if backend.shows_rollback() {
                    printer.change_lines(&format!("rollback {} to {previous}", spec.name), &staged.lines())?;
                }
                staged.apply(Jobs::Keep)
            });
            let seconds = started.elapsed().as_secs_f64();
            let result = if rolled_back.is_ok() { "rolled-back" } else { "failed" };
            let detail = [how.detail.clone(), first_line(&error)].join(" ").trim().to_owned();
            record(context, attempt, result, seconds, &detail)?;
            rolled_back?;
            Err(error.context(format!("{} failed and was rolled back to {previous} in {seconds:.1}s", how.title)))
        }
    }
}

/// Appends an attempt's outcome to history.jsonl, stamped with the clock's time.
pub(super) fn record(
    context: &Context<'_>,
    attempt: Attempt<'_>,
    result: &str,
    seconds: f64,
    detail: &str,
) -> Result<()> {
    let now = context.clock.now_unix_seconds();
    context.folder.append_history(&HistoryRecord::new(attempt, now, result, seconds, detail))
}

/// The first line of an error with its causes.
pub(super) fn first_line(error: &anyhow::Error) -> String {
    format!("{error:#}").lines().next().unwrap_or_default().to_owned()
}
