//! `cometctl backup`, `backup list`, `backup verify ID` and `cometctl restore ID`: thin wiring to `backup`; the result on stdout (a table
//! or `--output json`), progress and notes on stderr.

use anyhow::Result;

use crate::args::{BackupAction, BackupArgs, RestoreArgs};
use crate::backup::{self, Request, RestoreRequest};
use crate::context::Context;
use crate::error::{EXIT_CHECK_FAILED, EXIT_OK};
use crate::folder;

pub fn run(context: &Context<'_>, args: &BackupArgs) -> Result<u8> {
    let printer = context.printer;
    match &args.action {
        None => {
            let request = Request { only: args.only.clone(), to: args.to.clone() };
            let manifest = backup::create(context, &request)?;
            if printer.is_json() {
                printer.json(&manifest)?;
            } else {
                printer.backup_manifest(&manifest)?;
            }
            Ok(EXIT_OK)
        }
        Some(BackupAction::List(list)) => {
            let context = Context::new(&list.folder.dir, printer);
            let location = backup::location(&context, list.from.as_deref())?;
            let sets = backup::Target::open(&location)?.list()?;
            if printer.is_json() {
                printer.json(&sets.iter().map(backup::ListedView::from).collect::<Vec<_>>())?;
            } else if sets.is_empty() {
                printer.note(&format!("no backup sets in {location}"));
            } else {
                printer.backup_sets(&sets)?;
            }
            Ok(EXIT_OK)
        }
        Some(BackupAction::Prune(prune)) => {
            let context = Context::new(&prune.folder.dir, printer);
            let target = backup::Target::open(&backup::location(&context, prune.from.as_deref())?)?;
            let sets: Vec<(String, bool)> = target
                .list()?
                .iter()
                .map(|set| (set.id().to_owned(), matches!(set, backup::Listed::Complete { .. })))
                .collect();
            let policy = backup::prune::Policy {
                daily: prune.keep_daily,
                weekly: prune.keep_weekly,
                monthly: prune.keep_monthly,
            };
            let decisions = backup::prune::plan(&sets, policy);
            if prune.yes {
                for decision in decisions.iter().filter(|decision| !decision.keep) {
                    target.remove(&decision.id)?;
                }
            }
            if printer.is_json() {
                printer.json(&decisions)?;
            } else {
                printer.backup_prune(&decisions, prune.yes)?;
            }
            Ok(EXIT_OK)
        }
        Some(BackupAction::Verify(verify)) => {
            let context = Context::new(&verify.folder.dir, printer);
            let target = backup::Target::open(&backup::location(&context, verify.from.as_deref())?)?;
            // An unknown id is named before a missing key.
            target.manifest(&verify.id)?;
            let key = backup::existing_key(&context)?;
            let verification = backup::verify(&target, &verify.id, &key)?;
            if printer.is_json() {
                printer.json(&verification)?;
            } else {
                printer.backup_verification(&verification)?;
            }
            Ok(if verification.ok { EXIT_OK } else { EXIT_CHECK_FAILED })
        }
    }
}

pub fn restore(context: &Context<'_>, args: &RestoreArgs) -> Result<u8> {
    let from = backup::location(context, args.from.as_deref())?;
    let printer = context.printer;
    if args.verify {
        let request = backup::DrillRequest {
            id: args.id.clone(),
            from,
            rto: args.rto.unwrap_or(std::time::Duration::from_secs(3600)),
            keep_scratch: args.keep_scratch,
        };
        let drill = backup::drill(context, &folder::read_profile(None)?, &request)?;
        printer.restore_drill(&drill)?;
        return Ok(if drill.pass { EXIT_OK } else { EXIT_CHECK_FAILED });
    }
    let request = RestoreRequest { id: args.id.clone(), from, only: args.only.clone(), yes: args.yes };
    let restored = backup::restore(context, &request)?;
    if printer.is_json() {
        printer.json(&restored)?;
    } else {
        for part in &restored.parts {
            printer.result(&format!("restored {}: {}", part.part, part.detail))?;
        }
    }
    Ok(EXIT_OK)
}
