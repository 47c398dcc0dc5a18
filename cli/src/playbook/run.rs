//! Running a playbook: inputs resolved (declared ones only, every one without a default given), then either
//! each step described (`--dry-run`: no lock, no journal, nothing changed) or the steps run in order under
//! the deployment's playbook lock, each recorded in the run's journal. A failed step ends the run (exit 3,
//! naming the step); `--resume` continues the newest run of the playbook from its first step that did not
//! end ok, with its inputs (those given now replace them). A lock left by a run that was killed is removed
//! only with `--force-unlock`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::catalog::Loaded;
use super::journal::{self, Entry, Outcome};
use super::model::Playbook;
use super::steps::{self, Inputs};
use crate::context::Context;
use crate::error::{CheckFailed, Refusal};
use crate::folder::DeploymentFolder;
use crate::plan::history::rfc3339;
use crate::printer::Printer;
use crate::sizing::Profile;

/// How a run was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--input name=value`, in the order given.
    pub inputs: Vec<(String, String)>,
    pub dry_run: bool,
    pub resume: bool,
    pub force_unlock: bool,
    /// Confirms every step that asks.
    pub yes: bool,
}

/// What holds the playbook lock, as journal/lock says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    playbook: String,
    run: String,
    since: String,
}

/// Runs (or with `dry_run` describes) `loaded` on the deployment folder `dir`.
pub fn run(dir: &Path, printer: &Printer, profile: &Profile, loaded: &Loaded, options: &Options) -> Result<()> {
    let playbook = &loaded.playbook;
    let context = Context::new(dir, printer);
    let folder = &context.folder;
    let now = || rfc3339(context.clock.now_unix_seconds());
    if options.dry_run {
        let inputs = resolve_inputs(playbook, &BTreeMap::new(), &options.inputs)?;
        return dry_run(dir, printer, profile, playbook, &inputs);
    }
    let resumed = if options.resume { Some(resumable(folder, playbook)?) } else { None };
    let base = resumed.as_ref().map(|(_, standing)| standing.inputs.clone()).unwrap_or_default();
    let inputs = resolve_inputs(playbook, &base, &options.inputs)?;
    let run_id = match &resumed {
        Some((run, _)) => run.clone(),
        None => journal::run_id(&now(), &playbook.name),
    };
    let _lock = Lock::take(folder, &playbook.name, &run_id, &now(), options.force_unlock, printer)?;
    let first = match &resumed {
        Some((_, standing)) => {
            let step = standing.next.unwrap_or(1);
            if standing.digest != loaded.digest {
                printer.warning(&format!(
                    "{} changed since run {run_id} began; resuming at step {step} of the playbook as it is now",
                    loaded.origin
                ));
            }
            let entry = Entry::Resume { time: now(), step, digest: loaded.digest.clone(), inputs: inputs.clone() };
            folder.append_journal(&run_id, &entry)?;
            printer.note(&format!("resuming run {run_id} at step {step}"));
            step
        }
        None => {
            let entry = Entry::Run {
                time: now(),
                playbook: playbook.name.clone(),
                origin: loaded.origin.clone(),
                digest: loaded.digest.clone(),
                steps: playbook.steps.len(),
                inputs: inputs.clone(),
            };
            folder.append_journal(&run_id, &entry)?;
            1
        }
    };
    let total = playbook.steps.len();
    let started = Instant::now();
    for (index, step) in playbook.steps.iter().enumerate().skip(first - 1) {
        let number = index + 1;
        let title = step.title();
        printer.note(&format!("step {number}/{total}: {title}"));
        folder.append_journal(&run_id, &Entry::Start { time: now(), step: number, title: title.clone() })?;
        let step_started = Instant::now();
        // A fresh context: the steps before may have changed cometctl.yaml.
        let outcome = steps::execute(&Context::new(dir, printer), profile, step, &inputs, options.yes);
        let seconds = step_started.elapsed().as_secs_f64();
        let (result, output) = match &outcome {
            Ok(output) => (Outcome::Ok, output.clone()),
            Err(error) => (Outcome::Failed, format!("{error:#}")),
        };
        folder.append_journal(
            &run_id,
            &Entry::End { time: now(), step: number, result, seconds, output: output.clone() },
        )?;
        if let Err(error) = outcome {
            folder.append_journal(&run_id, &Entry::Finish { time: now(), result: Outcome::Failed })?;
            return Err(CheckFailed(format!(
                "playbook {} stopped at step {number}/{total} ({title}): {error:#}\n  the journal is {}/journal/{run_id}.jsonl; \
                 fix the cause, then `cometctl playbook run {} --resume` continues from this step",
                playbook.name,
                dir.display(),
                playbook.name
            ))
            .into());
        }
        printer.note(&format!("step {number}/{total} done in {seconds:.1}s: {output}"));
    }
    folder.append_journal(&run_id, &Entry::Finish { time: now(), result: Outcome::Ok })?;
    printer.result(&format!(
        "playbook {}: {} steps done in {:.1}s (run {run_id})",
        playbook.name,
        total + 1 - first,
        started.elapsed().as_secs_f64()
    ))?;
    Ok(())
}

fn dry_run(dir: &Path, printer: &Printer, profile: &Profile, playbook: &Playbook, inputs: &Inputs) -> Result<()> {
    let total = playbook.steps.len();
    printer.result(&format!(
        "playbook {} (dry run: nothing changes; each step as the deployment is now)",
        playbook.name
    ))?;
    for (index, step) in playbook.steps.iter().enumerate() {
        printer.result(&format!("step {}/{total}: {}", index + 1, step.title()))?;
        match steps::describe(&Context::new(dir, printer), profile, step, inputs) {
            Ok(lines) => {
                for line in lines {
                    printer.result(&format!("  {line}"))?;
                }
            }
            Err(error) => printer.result(&format!("  cannot tell now: {error:#}"))?,
        }
    }
    Ok(())
}

/// The inputs of a run: `base` (a resumed run's), then the defaults for what `base` lacks, then `given`.
fn resolve_inputs(playbook: &Playbook, base: &Inputs, given: &[(String, String)]) -> Result<Inputs> {
    let mut inputs = Inputs::new();
    for input in &playbook.inputs {
        if let Some(value) = base.get(&input.name).or(input.default.as_ref()) {
            inputs.insert(input.name.clone(), value.clone());
        }
    }
    let declared: Vec<&str> = playbook.inputs.iter().map(|input| input.name.as_str()).collect();
    for (name, value) in given {
        if !declared.contains(&name.as_str()) {
            let known = if declared.is_empty() { "none".to_owned() } else { declared.join(", ") };
            return Err(
                Refusal(format!("`{name}` is not an input of playbook {} (inputs: {known})", playbook.name)).into()
            );
        }
        inputs.insert(name.clone(), value.clone());
    }
    let missing: Vec<&str> = declared.iter().copied().filter(|name| !inputs.contains_key(*name)).collect();
    if !missing.is_empty() {
        return Err(Refusal(format!(
            "playbook {} needs {}: give --input {}=VALUE",
            playbook.name,
            missing.join(", "),
            missing[0]
        ))
        .into());
    }
    Ok(inputs)
}

/// The newest run of `playbook` and where it stands; refused when there is none or it finished.
fn resumable(folder: &DeploymentFolder, playbook: &Playbook) -> Result<(String, journal::Standing)> {
    let suffix = format!("-{}", playbook.name);
    let run = folder.journals()?.into_iter().rev().find(|run| run.ends_with(&suffix)).ok_or_else(|| {
        Refusal(format!(
            "nothing to resume: playbook {} has no run in {}/journal",
            playbook.name,
            folder.root().display()
        ))
    })?;
    let entries: Vec<Entry> = folder.journal(&run)?;
    let standing = journal::standing(&entries)
        .ok_or_else(|| Refusal(format!("journal {run} does not begin with its run: it cannot be resumed")))?;
    match standing.next {
        None => Err(Refusal(format!(
            "nothing to resume: run {run} of playbook {} finished every step; run it again without --resume",
            playbook.name
        ))
        .into()),
        Some(step) if step > playbook.steps.len() => Err(Refusal(format!(
            "run {run} stopped at step {step}, and the playbook has only {} steps now",
            playbook.steps.len()
        ))
        .into()),
        Some(_) => Ok((run, standing)),
    }
}

/// The playbook lock, released when dropped.
struct Lock<'f> {
    folder: &'f DeploymentFolder,
}

impl<'f> Lock<'f> {
    fn take(
        folder: &'f DeploymentFolder,
        playbook: &str,
        run: &str,
        since: &str,
        force: bool,
        printer: &Printer,
    ) -> Result<Lock<'f>> {
        let holder = Holder {
            pid: std::process::id(),
            playbook: playbook.to_owned(),
            run: run.to_owned(),
            since: since.to_owned(),
        };
        let text = serde_json::to_string(&holder)?;
        match folder.take_lock(&text)? {
            Ok(()) => return Ok(Lock { folder }),
            Err(_) if force => {
                printer.warning("--force-unlock: removing the playbook lock another run left");
                folder.release_lock()?;
            }
            Err(existing) => {
                let held = serde_json::from_str::<Holder>(&existing).ok();
                let who = held.as_ref().map_or_else(
                    || "an unreadable lock".to_owned(),
                    |held| {
                        format!("playbook {} (run {}, pid {}, since {})", held.playbook, held.run, held.pid, held.since)
                    },
                );
                let gone = held.as_ref().is_some_and(|held| !Path::new(&format!("/proc/{}", held.pid)).exists());
                let advice = if gone {
                    "that process no longer runs on this host: if no other host runs playbooks on this folder, pass \
                     --force-unlock"
                } else {
                    "wait for it to finish (a second run at once could undo its steps)"
                };
                return Err(
                    Refusal(format!("{}/journal/lock is held by {who}: {advice}", folder.root().display())).into()
                );
            }
        }
        match folder.take_lock(&text)? {
            Ok(()) => Ok(Lock { folder }),
            Err(_) => Err(Refusal("another run took the playbook lock just now".to_owned()).into()),
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        // Nothing to do with an error here: the next run reports a lock that is left.
        let _ = self.folder.release_lock();
    }
}
