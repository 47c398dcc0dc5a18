//! `cometctl doctor`: runs the selected checks (`doctor`), shows the verdict grouped by area (or as JSON),
//! and exits 0, 4 (worst is a warn) or 3 (a fail). `--apply` shows the safe local fixes, asks (or needs
//! `--yes` off a terminal), applies them and runs the checks again.

use anyhow::Result;

use crate::args::DoctorArgs;
use crate::checks::catalog::Selection;
use crate::context::Context;
use crate::doctor::{self, Request, apply};
use crate::error::Refusal;
use crate::printer::Confirmation;

pub fn run(context: &Context<'_>, args: &DoctorArgs) -> Result<u8> {
    let selection = Selection::new(&args.only, &args.skip).map_err(|error| Refusal(error.to_string()))?;
    let selection = if args.host_only { selection.host_only() } else { selection };
    if args.yes && !args.apply {
        return Err(Refusal("--yes confirms --apply; without --apply doctor changes nothing".to_owned()).into());
    }
    let request = Request { selection, host_only: args.host_only };
    let printer = context.printer;
    let report = doctor::run(context, &request)?;
    if !args.apply {
        printer.doctor_report(&report)?;
        return Ok(report.exit_code());
    }
    let fixes = apply::plan(&report);
    if fixes.is_empty() {
        printer.doctor_report(&report)?;
        printer.note("--apply: nothing to fix that is safe and local to this host");
        return Ok(report.exit_code());
    }
    let lines: Vec<String> = fixes.iter().map(apply::Fix::describe).collect();
    printer.note(&format!("--apply will:\n  {}", lines.join("\n  ")));
    if !args.yes {
        match printer.confirm("apply these changes?", "yes")? {
            Confirmation::Confirmed => {}
            Confirmation::NoTerminal => {
                return Err(Refusal(
                    "--apply changes this host: add --yes to confirm when not at a terminal".to_owned(),
                )
                .into());
            }
            Confirmation::Declined => return Err(Refusal("--apply not confirmed; nothing changed".to_owned()).into()),
        }
    }
    for line in apply::apply(&fixes)? {
        printer.note(&format!("applied: {line}"));
    }
    let after = doctor::run(context, &request)?;
    printer.doctor_report(&after)?;
    Ok(after.exit_code())
}
