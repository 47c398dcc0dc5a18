//! `cometctl upgrade --version V` (or `--image KEY=REF`): moves a healthy compose deployment to new images.
//! The new version's migrate job runs once; stateless roles are replaced one container at a time,
//! start-first, each gated on its health check; on any failure the previous images are put back (the
//! migrate job is not run again) and the command exits 3. Every attempt is recorded in history.jsonl.
//! A deployment that runs on Swarm is upgraded by `commands::swarm::upgrade` (Swarm's own rolling update).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::args::UpgradeArgs;
use crate::commands::deploy::{self, Jobs};
use crate::domain::Target;
use crate::engine::{Engine, Health};
use crate::folder::{DeploymentFolder, Refusal};
use crate::printer::Printer;
use crate::spec::{ImageRef, Spec};

/// One line of history.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// RFC 3339, UTC.
    pub time: String,
    /// `deploy`, `upgrade`.
    pub action: String,
    pub target: String,
    /// The comet-server image before and after.
    pub from: String,
    pub to: String,
    /// `ok`, `no-changes`, `failed`, `rolled-back`.
    pub result: String,
    pub seconds: f64,
    #[serde(default)]
    pub detail: String,
}

impl HistoryRecord {
    pub fn new(
        action: &str,
        target: Target,
        from: &Spec,
        to: &Spec,
        result: &str,
        seconds: f64,
        detail: &str,
    ) -> HistoryRecord {
        HistoryRecord {
            time: rfc3339_now(),
            action: action.to_owned(),
            target: target.as_str().to_owned(),
            from: from.images.comet.reference(),
            to: to.images.comet.reference(),
            result: result.to_owned(),
            seconds: (seconds * 10.0).round() / 10.0,
            detail: detail.to_owned(),
        }
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no time-zone database needed).
fn rfc3339_now() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The spec with the requested images.
fn next_spec(spec: &Spec, args: &UpgradeArgs) -> Result<Spec> {
    if args.version.is_none() && args.image.is_empty() {
        return Err(
            Refusal("nothing to upgrade to: give --version V and/or --image KEY=REPOSITORY:TAG".to_owned()).into()
        );
    }
    let mut next = spec.clone();
    if let Some(version) = &args.version {
        next.images.comet.tag.clone_from(version);
    }
    for assignment in &args.image {
        let (key, reference) = assignment
            .split_once('=')
            .ok_or_else(|| Refusal(format!("--image `{assignment}` is not KEY=REPOSITORY:TAG")))?;
        let parsed = ImageRef::parse(reference)
            .ok_or_else(|| Refusal(format!("--image `{assignment}`: `{reference}` has no :TAG")))?;
        let slot = next.images.get_mut(key).ok_or_else(|| {
            let keys: Vec<&str> = spec.images.named().iter().map(|(key, _)| *key).collect();
            Refusal(format!("--image `{assignment}`: `{key}` is not an image key ({})", keys.join(", ")))
        })?;
        *slot = parsed;
    }
    let problems = next.problems();
    if let Some((path, problem)) = problems.first() {
        return Err(Refusal(format!("the upgraded spec would be invalid: {path} {problem}")).into());
    }
    Ok(next)
}

/// Refuses unless every long-running container of the deployment runs and is healthy, and the Engine runs
/// exactly what cometctl.yaml says (otherwise a rollback could not tell what "previous" is).
fn check_healthy(engine: &Engine, folder: &DeploymentFolder, spec: &Spec) -> Result<()> {
    let (_, current) = deploy::prepare(folder, spec)?;
    let mut drift = deploy::plan(engine, &current)?;
    // A job that last ran from another version (the newer migration of a rolled-back upgrade) is not drift:
    // jobs do not run, and the upgrade runs its own migration anyway.
    for (_, changes) in &mut drift.services {
        changes.retain(|change| match change {
            crate::deploy::ContainerChange::Replace { desired, .. } => desired.ready != crate::deploy::Ready::Completed,
            _ => true,
        });
    }
    if !drift.is_empty() {
        return Err(Refusal(format!(
            "the deployment differs from cometctl.yaml ({} changes; see `cometctl diff compose`): deploy it with \
             `cometctl deploy compose` before upgrading",
            deploy::count(&drift)
        ))
        .into());
    }
    let jobs: Vec<&str> = current
        .containers
        .values()
        .flatten()
        .filter(|container| container.ready == crate::deploy::Ready::Completed)
        .map(|container| container.name.as_str())
        .collect();
    let sick: Vec<String> = engine
        .containers(spec.name.as_str())?
        .into_iter()
        .filter(|container| !jobs.contains(&container.name.as_str()))
        .filter(|container| !container.running || matches!(container.health, Health::Unhealthy | Health::Starting))
        .map(|container| {
            format!("{} ({})", container.name, if container.running { "not healthy" } else { "not running" })
        })
        .collect();
    if !sick.is_empty() {
        return Err(Refusal(format!(
            "refusing to upgrade an unhealthy deployment: {}; fix it first (`cometctl status`)",
            sick.join(", ")
        ))
        .into());
    }
    Ok(())
}

pub fn run(args: &UpgradeArgs, printer: &Printer) -> Result<()> {
    let folder = DeploymentFolder::new(&args.dir);
    let spec = folder.read_spec()?;
    let next = next_spec(&spec, args)?;
    if next == spec {
        printer.result(&format!("upgrade {}: already at {}; no changes", spec.name, spec.images.comet.reference()))?;
        return Ok(());
    }
    let engine = Engine::connect()?;
    if crate::commands::swarm::runs_on_swarm(&engine, spec.name.as_str())? {
        return crate::commands::swarm::upgrade(&engine, &folder, &spec, &next, printer);
    }
    check_healthy(&engine, &folder, &spec)?;
    let (_, desired) = deploy::prepare(&folder, &next)?;
    deploy::check_capacity(&engine, &desired)?;
    deploy::ensure_images(&engine, &desired.images, printer)?;
    let changes = deploy::plan(&engine, &desired)?;
    let title = format!("upgrade {} {} → {}", spec.name, spec.images.comet.reference(), next.images.comet.reference());
    deploy::print_lines(printer, &title, &changes)?;
    let started = std::time::Instant::now();
    match deploy::apply(&engine, &desired, &changes, printer, Jobs::Run) {
        Ok(()) => {
            folder.write_spec(&next)?;
            let seconds = started.elapsed().as_secs_f64();
            folder.append_history(&HistoryRecord::new("upgrade", Target::Compose, &spec, &next, "ok", seconds, ""))?;
            printer.result(&format!("{title}: done in {seconds:.1}s"))?;
            Ok(())
        }
        Err(error) => {
            printer.warning(&format!("{error:#}"));
            printer.warning(&format!("rolling back to {}", spec.images.comet.reference()));
            let (_, previous) = deploy::prepare(&folder, &spec)?;
            let back = deploy::plan(&engine, &previous)?;
            let rolled_back = deploy::apply(&engine, &previous, &back, printer, Jobs::Keep);
            let seconds = started.elapsed().as_secs_f64();
            let result = if rolled_back.is_ok() { "rolled-back" } else { "failed" };
            let detail = format!("{error:#}").lines().next().unwrap_or_default().to_owned();
            folder.append_history(&HistoryRecord::new(
                "upgrade",
                Target::Compose,
                &spec,
                &next,
                result,
                seconds,
                &detail,
            ))?;
            rolled_back?;
            Err(error.context(format!(
                "upgrade to {} failed and was rolled back to {} in {seconds:.1}s",
                next.images.comet.reference(),
                spec.images.comet.reference()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_the_tag_not_the_registry_port() {
        let parsed = ImageRef::parse("registry.local:5000/team/comet-server:1.2.3").expect("has a tag");
        assert_eq!(
            (parsed.repository.as_str(), parsed.tag.as_str()),
            ("registry.local:5000/team/comet-server", "1.2.3")
        );
        assert!(ImageRef::parse("registry.local:5000/team/comet-server").is_none());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = rfc3339_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
