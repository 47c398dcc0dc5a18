//! Observability and backups: Prometheus's targets up (its own API, asked inside its container), and the
//! age of the last complete backup set and of the last restore drill (from the backup target and
//! history.jsonl, gathered by `doctor`).

use super::Check;
use super::stores::Probe;

/// Prometheus's `/api/v1/targets`, from inside its container.
pub fn targets_command() -> Vec<String> {
    ["wget", "-q", "-O", "-", "http://127.0.0.1:9090/api/v1/targets?state=active"]
        .iter()
        .map(|word| (*word).to_owned())
        .collect()
}

/// `enabled`: observability.prometheus in the spec; `probe`: the API's answer (`None`: no container runs).
pub fn targets(enabled: bool, probe: Option<&Probe>) -> Check {
    if !enabled {
        return Check::skip("observability.targets", "Prometheus is turned off (observability.prometheus: false)");
    }
    let Some(probe) = probe else {
        return Check::fail("observability.targets", "no Prometheus container runs", "`cometctl deploy` starts it");
    };
    let answer = match probe {
        Ok(output) if output.exit_code == Some(0) => serde_json::from_str::<serde_json::Value>(&output.output)
            .map_err(|error| format!("not Prometheus's JSON: {error}")),
        Ok(output) => Err(format!("exited {:?}", output.exit_code)),
        Err(error) => Err(error.clone()),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(why) => {
            return Check::fail("observability.targets", format!("Prometheus's API: {why}"), "read its logs");
        }
    };
    let active = answer["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
    let down: Vec<String> = active
        .iter()
        .filter(|target| target["health"].as_str() != Some("up"))
        .map(|target| {
            format!(
                "{} {}",
                target["labels"]["job"].as_str().unwrap_or("?"),
                target["labels"]["instance"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if down.is_empty() {
        Check::pass("observability.targets", format!("{} targets up", active.len()))
    } else {
        Check::warn(
            "observability.targets",
            format!("{} of {} targets down: {}", down.len(), active.len(), down.join(", ")),
            "the alert TargetDown names the same ones; check those containers",
        )
    }
}

/// A backup set older than this warns (a daily schedule and its slack).
pub const BACKUP_WARN_HOURS: u64 = 26;
/// A backup set older than this fails.
pub const BACKUP_FAIL_DAYS: u64 = 7;
/// A restore drill older than this warns (CometChat's guide asks for monthly restore tests).
pub const DRILL_WARN_DAYS: u64 = 31;

/// What `doctor` found about backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFacts {
    /// Where the sets are, as shown.
    pub location: String,
    /// The newest complete set: its id, when it finished, and the parts it holds. `Err` when the target could
    /// not be read (why).
    pub newest: Result<Option<(String, u64, Vec<String>)>, String>,
    /// The last restore drill: when, and whether it passed.
    pub last_drill: Option<(u64, bool)>,
    pub now: u64,
}

/// `backups.age`: the newest complete set within a day (warn past 26 h, fail past 7 days), and a restore drill
/// that passed within a month (warn otherwise).
pub fn backups(facts: &BackupFacts) -> Check {
    const ID: &str = "backups.age";
    let threshold = format!(
        "newest set warn > {BACKUP_WARN_HOURS} h, fail > {BACKUP_FAIL_DAYS} d; last drill passed within {DRILL_WARN_DAYS} d"
    );
    let newest = match &facts.newest {
        Err(why) => return Check::skip(ID, format!("{} could not be read: {why}", facts.location)),
        Ok(None) => {
            return Check::fail(
                ID,
                format!("no complete backup set in {}", facts.location),
                "take one: `cometctl backup`, and schedule it (cron or a systemd timer)",
            )
            .with_threshold(threshold);
        }
        Ok(Some(newest)) => newest,
    };
    let (id, finished, parts) = newest;
    let hours = facts.now.saturating_sub(*finished) / 3600;
    let drill = match facts.last_drill {
        None => "no restore drill yet".to_owned(),
        Some((at, passed)) => {
            format!(
                "last drill {} days ago, {}",
                facts.now.saturating_sub(at) / 86_400,
                if passed { "passed" } else { "FAILED" }
            )
        }
    };
    let evidence = format!("newest set {id} ({}) is {hours} h old; {drill}", parts.join(", "));
    let check = if hours > BACKUP_FAIL_DAYS * 24 {
        Check::fail(ID, evidence, "the backup schedule stopped: run `cometctl backup` and check the schedule's logs")
    } else if hours > BACKUP_WARN_HOURS {
        Check::warn(ID, evidence, "the last scheduled backup did not run: `cometctl backup`, then check the schedule")
    } else {
        match facts.last_drill {
            Some((at, true)) if facts.now.saturating_sub(at) <= DRILL_WARN_DAYS * 86_400 => Check::pass(ID, evidence),
            _ => Check::warn(ID, evidence, "prove the backups restore: `cometctl restore <id> --verify` (monthly)"),
        }
    };
    check.with_threshold(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::plan::observed::ExecOutput;

    #[test]
    fn backups_age_holds_the_newest_set_and_the_last_drill_to_their_limits() {
        let day = 86_400;
        let facts = |age: u64, drill: Option<(u64, bool)>| BackupFacts {
            location: "/srv/chat/backups".to_owned(),
            newest: Ok(Some(("20261207T000000Z".to_owned(), 100 * day - age, vec!["tidb".to_owned()]))),
            last_drill: drill.map(|(ago, passed)| (100 * day - ago, passed)),
            now: 100 * day,
        };
        assert_eq!(backups(&facts(3600, Some((day, true)))).outcome, Outcome::Pass);
        assert_eq!(backups(&facts(3600, None)).outcome, Outcome::Warn, "no drill yet");
        assert_eq!(backups(&facts(3600, Some((day, false)))).outcome, Outcome::Warn, "the drill failed");
        assert_eq!(backups(&facts(3600, Some((40 * day, true)))).outcome, Outcome::Warn, "the drill is old");
        assert_eq!(backups(&facts(2 * day, Some((day, true)))).outcome, Outcome::Warn);
        assert_eq!(backups(&facts(8 * day, Some((day, true)))).outcome, Outcome::Fail);
        let none = BackupFacts { newest: Ok(None), ..facts(0, None) };
        assert_eq!(backups(&none).outcome, Outcome::Fail);
        let unreadable = BackupFacts { newest: Err("no credentials".to_owned()), ..facts(0, None) };
        assert_eq!(backups(&unreadable).outcome, Outcome::Skip);
    }

    #[test]
    fn targets_are_read() {
        assert_eq!(targets(false, None).outcome, Outcome::Skip);
        assert_eq!(targets(true, None).outcome, Outcome::Fail);
        let answer = |text: &str| -> Probe { Ok(ExecOutput { exit_code: Some(0), output: text.to_owned() }) };
        let up = answer(r#"{"data":{"activeTargets":[{"health":"up","labels":{"job":"api","instance":"a"}}]}}"#);
        assert_eq!(targets(true, Some(&up)).outcome, Outcome::Pass);
        let down = answer(r#"{"data":{"activeTargets":[{"health":"down","labels":{"job":"api","instance":"a"}}]}}"#);
        assert_eq!(targets(true, Some(&down)).outcome, Outcome::Warn);
    }
}
