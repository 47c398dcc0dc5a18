//! `upgrade`, one flow for both backends: refused unless the Engine runs exactly what cometctl.yaml renders
//! (otherwise a rollback could not tell what "previous" is) and every long-running service is healthy; then
//! the new spec is staged (its checks refuse before anything changes) and applied: Compose replaces the
//! stateless roles one container at a time, start-first, each gated on its health check; Swarm's
//! `update_config` rolls them. On failure the previous spec is applied again without running its older
//! migration (`Jobs::Keep`), the command exits 3, and cometctl.yaml keeps the previous version. Every attempt
//! is recorded in history.jsonl.

use std::time::Instant;

use anyhow::Result;

use super::backend::{Backend, Jobs, Purpose};
use crate::context::Context;
use crate::error::Refusal;
use crate::plan::history::{Attempt, HistoryRecord};
use crate::spec::{SPEC_FILE, Spec};

/// Moves the deployment of `spec` to `next` with `backend`, or back to `spec` if `next` fails.
pub fn upgrade(context: &Context<'_>, backend: &dyn Backend, spec: &Spec, next: &Spec) -> Result<()> {
    let printer = context.printer;
    let target = backend.target();
    let deployment = spec.name.as_str();
    let current = backend.stage(spec, Purpose::Drift)?;
    if !current.is_empty() {
        return Err(Refusal(format!(
            "the deployment differs from cometctl.yaml ({} changes; see `cometctl diff {target}`): deploy it with \
             `cometctl deploy {target}` before upgrading",
            current.lines().len()
        ))
        .into());
    }
    let sick = current.unhealthy()?;
    if !sick.is_empty() {
        return Err(Refusal(format!(
            "refusing to upgrade an unhealthy deployment: {}; fix it first (`cometctl status`)",
            sick.join(", ")
        ))
        .into());
    }
    let (from, to) = (spec.images.comet.reference(), next.images.comet.reference());
    let title = format!("upgrade {deployment} {from} → {to}");
    let staged = backend.stage(next, Purpose::Upgrade)?;
    printer.change_lines(&title, &staged.lines())?;
    let started = Instant::now();
    let attempt = Attempt { action: "upgrade", target, from: spec, to: next };
    match staged.apply(Jobs::Run) {
        Ok(()) => {
            if !context.folder.write_upgraded_spec(spec, next)? {
                printer.warning(&format!(
                    "{SPEC_FILE} could not be edited in place (its images are not written in block style), so it was \
                     written whole: comments in it are gone"
                ));
            }
            let seconds = started.elapsed().as_secs_f64();
            record(context, attempt, "ok", seconds, "")?;
            printer.result(&format!("{title}: done in {seconds:.1}s"))?;
            Ok(())
        }
        Err(error) => {
            printer.warning(&format!("{error:#}"));
            printer.warning(&format!("rolling back to {from}"));
            let rolled_back = backend.stage(spec, Purpose::Rollback).and_then(|previous| {
                if backend.shows_rollback() {
                    printer.change_lines(&format!("rollback {deployment} to {from}"), &previous.lines())?;
                }
                previous.apply(Jobs::Keep)
            });
            let seconds = started.elapsed().as_secs_f64();
            let result = if rolled_back.is_ok() { "rolled-back" } else { "failed" };
            record(context, attempt, result, seconds, &first_line(&error))?;
            rolled_back?;
            Err(error.context(format!("upgrade to {to} failed and was rolled back to {from} in {seconds:.1}s")))
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
