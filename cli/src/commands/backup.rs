//! `cometctl backup`, `backup list`, `backup verify ID` and `cometctl restore ID`: thin wiring to `backup`; the result on stdout (a table
//! or `--output json`), progress and notes on stderr.

use anyhow::Result;

use crate::args::{BackupAction, BackupArgs, RestoreArgs};
use crate::backup::{self, Request, RestoreRequest};
use crate::context::Context;
use crate::error::{EXIT_CHECK_FAILED, EXIT_OK};

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
            let target = list.from.clone().map_or_else(|| backup::default_target(&context), Ok)?;
            let sets = backup::list(&target)?;
            if printer.is_json() {
                printer.json(&sets.iter().map(backup::ListedView::from).collect::<Vec<_>>())?;
            } else if sets.is_empty() {
                printer.note(&format!("no backup sets in {}", target.display()));
            } else {
                printer.backup_sets(&sets)?;
            }
            Ok(EXIT_OK)
        }
        Some(BackupAction::Prune(prune)) => {
            let context = Context::new(&prune.folder.dir, printer);
            let target = prune.from.clone().map_or_else(|| backup::default_target(&context), Ok)?;
            let sets: Vec<(String, bool)> = backup::list(&target)?
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
                let store = backup::LocalTarget::new(&target);
                for decision in decisions.iter().filter(|decision| !decision.keep) {
                    store.remove(&decision.id)?;
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
            let target = verify.from.clone().map_or_else(|| backup::default_target(&context), Ok)?;
            // An unknown id is named before a missing key.
            backup::LocalTarget::new(&target).manifest(&verify.id)?;
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
    let from = args.from.clone().map_or_else(|| backup::default_target(context), Ok)?;
    let request = RestoreRequest { id: args.id.clone(), from, only: args.only.clone(), yes: args.yes };
    let restored = backup::restore(context, &request)?;
    let printer = context.printer;
    if printer.is_json() {
        printer.json(&restored)?;
    } else {
        for part in &restored.parts {
            printer.result(&format!("restored {}: {}", part.part, part.detail))?;
        }
    }
    Ok(EXIT_OK)
}
