//! `cometctl playbook list|show|run`: the playbooks from the catalogue (embedded, `--playbooks DIR`, or a
//! file by path), the run in `playbook::run`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::args::{PlaybookListArgs, PlaybookRunArgs, PlaybookShowArgs, PlaybookSourceArgs};
use crate::error::Refusal;
use crate::folder::{self, Overrides};
use crate::playbook::{self, Loaded, Source, catalog};
use crate::printer::Printer;

pub fn list(printer: &Printer, args: &PlaybookListArgs) -> Result<()> {
    let loaded = catalog::all(&sources(&args.source)?).map_err(|error| Refusal(error.to_string()))?;
    printer.playbooks(&loaded)?;
    Ok(())
}

pub fn show(printer: &Printer, args: &PlaybookShowArgs) -> Result<()> {
    printer.playbook(&load(&args.source, &args.playbook)?)?;
    Ok(())
}

pub fn run(printer: &Printer, args: &PlaybookRunArgs) -> Result<()> {
    let loaded = load(&args.source, &args.playbook)?;
    let inputs = args
        .inputs
        .iter()
        .map(|text| {
            text.split_once('=')
                .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
                .ok_or_else(|| Refusal(format!("--input `{text}` is not NAME=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = playbook::Options {
        inputs,
        dry_run: args.dry_run,
        resume: args.resume,
        force_unlock: args.force_unlock,
        yes: args.yes,
    };
    let profile = folder::read_profile(args.profile.as_deref())?;
    playbook::run::run(&args.folder.dir, printer, &profile, &loaded, &options)
}

fn sources(args: &PlaybookSourceArgs) -> Result<BTreeMap<String, Source>> {
    let overrides = match &args.playbooks {
        Some(dir) => folder::read_overrides(dir, Overrides::Playbooks).map_err(|error| Refusal(error.to_string()))?,
        None => BTreeMap::new(),
    };
    let dir = args.playbooks.as_deref().map(|dir| dir.display().to_string()).unwrap_or_default();
    Ok(catalog::sources(&overrides, &dir))
}

/// A playbook by name from the catalogue, or from the file `reference` names.
fn load(args: &PlaybookSourceArgs, reference: &str) -> Result<Loaded> {
    let path = Path::new(reference);
    let source = if reference.ends_with(".yaml") || reference.ends_with(".yml") || reference.contains('/') {
        let text = String::from_utf8(folder::read_bytes(path)?)
            .map_err(|_| Refusal(format!("{reference} is not UTF-8 text")))?;
        Source { origin: reference.to_owned(), text }
    } else {
        let sources = sources(args)?;
        catalog::find(&sources, reference).cloned().ok_or_else(|| {
            let names: Vec<&str> = sources.keys().filter_map(|file| file.strip_suffix(".yaml")).collect();
            Refusal(format!("there is no playbook `{reference}`; cometctl knows: {}", names.join(", ")))
        })?
    };
    catalog::load(&source).map_err(|error| Refusal(error.to_string()).into())
}
