//! Observability and backups: Prometheus's targets up (its own API, asked inside its container), and the
//! age of the last good backup per store (backups arrive with issue #8; until then a skip that says so).

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

pub fn backups() -> Check {
    Check::skip("backups.age", "cometctl backup arrives with issue #8: no backup record to read yet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::plan::observed::ExecOutput;

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
