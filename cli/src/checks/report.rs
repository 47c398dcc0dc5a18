//! `doctor`'s verdict: every selected check of the catalogue with its area and title, a summary, and the
//! exit code (0 nothing warns or fails, 4 the worst is a warn, 3 anything fails). This is the JSON scripts
//! read: `{"checks":[{"id","area","title","outcome","evidence","threshold","fix"}],"summary":{…}}`.

use serde::Serialize;

use super::catalog::{Area, CATALOG, Selection};
use super::{Check, Outcome};

use crate::error::{EXIT_CHECK_FAILED as EXIT_FAIL, EXIT_CHECK_WARNED as EXIT_WARN};

/// One check as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub area: Area,
    pub title: &'static str,
    pub outcome: Outcome,
    pub evidence: String,
    pub threshold: String,
    pub fix: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Finding>,
    pub summary: Summary,
}

impl Report {
    /// The selected checks in catalogue order. A selected id no evaluation produced is a skip that says so
    /// (never a silent omission); checks outside the catalogue or the selection are left out.
    pub fn new(selection: &Selection, mut checks: Vec<Check>) -> Report {
        let mut findings = Vec::new();
        for entry in CATALOG.iter().filter(|entry| selection.contains(entry.id)) {
            let check = match checks.iter().position(|check| check.id == entry.id) {
                Some(index) => checks.swap_remove(index),
                None => Check::skip(entry.id, "not evaluated: no gathering step produced this check"),
            };
            findings.push(Finding {
                id: entry.id,
                area: entry.area,
                title: entry.title,
                outcome: check.outcome,
                evidence: check.evidence,
                threshold: check.threshold,
                fix: check.fix,
            });
        }
        let mut summary = Summary::default();
        for finding in &findings {
            match finding.outcome {
                Outcome::Pass => summary.pass += 1,
                Outcome::Warn => summary.warn += 1,
                Outcome::Fail => summary.fail += 1,
                Outcome::Skip => summary.skip += 1,
            }
        }
        Report { checks: findings, summary }
    }

    pub fn exit_code(&self) -> u8 {
        if self.summary.fail > 0 {
            EXIT_FAIL
        } else if self.summary.warn > 0 {
            EXIT_WARN
        } else {
            crate::error::EXIT_OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_decides_the_exit_code_and_nothing_is_omitted() {
        let selection = Selection::new(&["host.nofile".into(), "host.thp".into(), "host.swap".into()], &[])
            .expect("valid selection");
        let report = Report::new(&selection, vec![Check::pass("host.nofile", "ok")]);
        assert_eq!(report.checks.len(), 3);
        assert_eq!(report.summary.skip, 2);
        assert_eq!(report.exit_code(), 0);
        let report = Report::new(&selection, vec![Check::warn("host.thp", "always", "fix")]);
        assert_eq!(report.exit_code(), EXIT_WARN);
        let report = Report::new(
            &selection,
            vec![Check::warn("host.thp", "always", "fix"), Check::fail("host.swap", "on", "swapoff -a")],
        );
        assert_eq!(report.exit_code(), EXIT_FAIL);
        let json = serde_json::to_value(&report).expect("JSON");
        let first = &json["checks"][0];
        for key in ["id", "area", "title", "outcome", "evidence", "threshold", "fix"] {
            assert!(first.get(key).is_some(), "{key} missing from {first}");
        }
        assert_eq!(json["summary"]["fail"], 1);
    }
}
