//! `cometctl scale` (issue #13): a new plan for the deployment, shown before it changes anything. The plan
//! diff (every value of cometctl.yaml that changes) and the deploy diff (what the Engine will create, replace
//! or remove) are printed, the operator confirms (`--yes` for scripts; off a terminal without it nothing
//! changes and the command exits 2), and the change goes through `deploy::change`, the flow `upgrade` uses:
//! refused on a drifted or unhealthy deployment, rolled back on failure, cometctl.yaml edited in place only
//! once the new plan runs. A deployment that runs nowhere gets its cometctl.yaml updated and nothing else.
//! `resize` is the pure part: which spec a request leads to, and why some things stay as they are.

mod resize;

use anyhow::Result;

pub use resize::{Request, ResizeError, Resized, assignment, resize, scalable_service};

use crate::context::Context;
use crate::deploy::{self, Choice, Move, Purpose};
use crate::error::Refusal;
use crate::plan::lines::ChangeLine;
use crate::printer::Confirmation;
use crate::sizing::Profile;
use crate::spec::{self, Difference, Spec};

/// What a scale would do, without doing it.
#[derive(Debug, Clone)]
pub struct Preview {
    pub next: Spec,
    pub warnings: Vec<String>,
    /// Every value of cometctl.yaml that changes.
    pub differences: Vec<Difference>,
    /// What deploying the next spec changes on the Engine (empty when nothing of the deployment runs).
    pub lines: Vec<ChangeLine>,
    /// Whether anything of the deployment runs on this Engine.
    pub deployed: bool,
}

/// The next spec for `request` and its diffs, nothing changed (the render of `rendered/` aside).
pub fn preview(context: &Context<'_>, profile: &Profile, request: &Request) -> Result<Preview> {
    let spec = context.spec()?;
    let Resized { next, warnings } = resize(spec, profile, request).map_err(|error| Refusal(error.to_string()))?;
    let differences = spec::differences(spec, &next);
    let backend = deploy::backend_for(context, Choice::Observed)?;
    let deployed = !backend.status(spec)?.services.is_empty();
    let lines = if deployed && !differences.is_empty() { backend.stage(&next, Purpose::Diff)?.lines() } else { vec![] };
    Ok(Preview { next, warnings, differences, lines, deployed })
}

/// Scales the deployment as `request` says; `yes` confirms without asking. Returns what changed, in a line.
pub fn run(context: &Context<'_>, profile: &Profile, request: &Request, yes: bool) -> Result<String> {
    let printer = context.printer;
    let spec = context.spec()?;
    let Resized { next, warnings } = resize(spec, profile, request).map_err(|error| Refusal(error.to_string()))?;
    for warning in &warnings {
        printer.warning(warning);
    }
    let title = format!("scale {}", spec.name);
    let differences = spec::differences(spec, &next);
    if differences.is_empty() {
        printer.result(&format!("{title}: the plan is already this; no changes"))?;
        return Ok("no changes".to_owned());
    }
    printer.plan_differences(&format!("plan {}", spec.name), &differences)?;
    let detail = summary(&differences);
    let backend = deploy::backend_for(context, Choice::Observed)?;
    if backend.status(spec)?.services.is_empty() {
        confirm(printer, yes, "write the new plan into cometctl.yaml")?;
        context.folder.write_changed_spec(spec, &next)?;
        printer.result(&format!(
            "{title}: nothing of `{}` runs on this Docker Engine, so only cometctl.yaml changed ({detail}); deploy it \
             with `cometctl deploy {}`",
            spec.name,
            spec.target.as_str()
        ))?;
        return Ok(format!("cometctl.yaml only: {detail}"));
    }
    let ask = |_: &[ChangeLine]| confirm(printer, yes, "apply this plan to the running deployment");
    let how = Move { action: "scale", title, previous: "the previous plan".to_owned(), detail, confirm: &ask };
    deploy::change(context, backend.as_ref(), spec, &next, &how)?;
    Ok(how.detail)
}

/// Goes on with `yes`, at a terminal when the operator types `yes`; refuses otherwise (nothing changed).
fn confirm(printer: &crate::printer::Printer, yes: bool, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    match printer.confirm(what, "yes")? {
        Confirmation::Confirmed => Ok(()),
        Confirmation::Declined => Err(Refusal("scale not confirmed; nothing changed".to_owned()).into()),
        Confirmation::NoTerminal => Err(Refusal(
            "scale changes the deployment: add --yes to confirm when not at a terminal; nothing changed".to_owned(),
        )
        .into()),
    }
}

/// The changed replicas in one line, for the history record (`api 2 → 4, gateway 1 → 2; mau 10000 → 50000`).
fn summary(differences: &[Difference]) -> String {
    let mut parts: Vec<String> = differences
        .iter()
        .filter_map(|difference| {
            let service = difference.path.strip_prefix("plan.services.")?.strip_suffix(".replicas")?;
            Some(format!("{service} {} → {}", difference.from_text(), difference.to_text()))
        })
        .collect();
    for key in ["mau", "concurrency"] {
        if let Some(difference) = differences.iter().find(|difference| difference.path == key) {
            parts.push(format!("{key} {} → {}", difference.from_text(), difference.to_text()));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;
