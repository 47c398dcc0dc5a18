//! A playbook run's journal, one JSON line per event in journal/<run>.jsonl of the deployment folder: the
//! run (playbook, origin, digest, inputs), each step's start and end (result, seconds, output), a resume, the
//! finish. Where a `--resume` continues is read from it. Pure: `folder` reads and writes the lines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Entry {
    Run {
        time: String,
        playbook: String,
        origin: String,
        digest: String,
        steps: usize,
        inputs: BTreeMap<String, String>,
    },
    Resume {
        time: String,
        step: usize,
        digest: String,
        inputs: BTreeMap<String, String>,
    },
    Start {
        time: String,
        step: usize,
        title: String,
    },
    End {
        time: String,
        step: usize,
        result: Outcome,
        seconds: f64,
        output: String,
    },
    Finish {
        time: String,
        result: Outcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
}

/// Where a run stands, read from its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub playbook: String,
    pub digest: String,
    /// The inputs in force: the run's, then each resume's.
    pub inputs: BTreeMap<String, String>,
    /// The first step (1-based) that has not ended ok; `None` when every step did.
    pub next: Option<usize>,
    pub steps: usize,
}

/// The standing of a run from its entries; `None` when they do not begin with a run entry.
pub fn standing(entries: &[Entry]) -> Option<Standing> {
    let Some(Entry::Run { playbook, digest, steps, inputs, .. }) = entries.first() else {
        return None;
    };
    let mut standing = Standing {
        playbook: playbook.clone(),
        digest: digest.clone(),
        inputs: inputs.clone(),
        next: None,
        steps: *steps,
    };
    let mut done = vec![false; *steps];
    for entry in entries {
        match entry {
            Entry::Resume { inputs, digest, .. } => {
                standing.inputs = inputs.clone();
                standing.digest = digest.clone();
            }
            Entry::End { step, result, .. } => {
                if let Some(slot) = step.checked_sub(1).and_then(|index| done.get_mut(index)) {
                    *slot = *result == Outcome::Ok;
                }
            }
            _ => {}
        }
    }
    standing.next = done.iter().position(|ok| !ok).map(|index| index + 1);
    Some(standing)
}

/// A run's id: its start time and the playbook (`20261207T104500Z-grow`), so ids sort by time.
pub fn run_id(time_rfc3339: &str, playbook: &str) -> String {
    let compact: String = time_rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{compact}-{playbook}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(step: usize, result: Outcome) -> Entry {
        Entry::End { time: String::new(), step, result, seconds: 0.0, output: String::new() }
    }

    #[test]
    fn the_next_step_is_the_first_that_did_not_end_ok_and_resumes_change_the_inputs() {
        let run = Entry::Run {
            time: String::new(),
            playbook: "grow".to_owned(),
            origin: String::new(),
            digest: "a".to_owned(),
            steps: 3,
            inputs: BTreeMap::from([("to".to_owned(), "25k".to_owned())]),
        };
        let mut entries = vec![run, at(1, Outcome::Ok), at(2, Outcome::Failed)];
        let first = standing(&entries).expect("a run");
        assert_eq!((first.next, first.inputs["to"].as_str()), (Some(2), "25k"));
        entries.push(Entry::Resume {
            time: String::new(),
            step: 2,
            digest: "b".to_owned(),
            inputs: BTreeMap::from([("to".to_owned(), "50k".to_owned())]),
        });
        entries.push(Entry::Start { time: String::new(), step: 2, title: String::new() });
        let interrupted = standing(&entries).expect("a run");
        assert_eq!(
            (interrupted.next, interrupted.inputs["to"].as_str(), interrupted.digest.as_str()),
            (Some(2), "50k", "b")
        );
        entries.extend([at(2, Outcome::Ok), at(3, Outcome::Ok)]);
        assert_eq!(standing(&entries).expect("a run").next, None);
        assert_eq!(standing(&entries[1..]), None);
        assert_eq!(run_id("2026-12-07T10:45:00Z", "grow"), "20261207T104500Z-grow");
    }
}
