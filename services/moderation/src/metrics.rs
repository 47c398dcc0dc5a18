//! What the engine did in this process, in Prometheus' text format: messages checked and their outcome, time
//! spent checking, matches by rule, and the rules in force. (The p99 a send pays is measured in the bench,
//! docs/benchmarks.md.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::engine::Verdict;
use crate::spec::Action;

/// The counters of one process's engine.
#[derive(Debug, Default)]
pub(crate) struct EngineMetrics {
    passed: AtomicU64,
    flagged: AtomicU64,
    masked: AtomicU64,
    blocked: AtomicU64,
    micros: AtomicU64,
    refresh_errors: AtomicU64,
    /// Matches by rule id: at most the rules an app ever had in this process's life (25 at a time).
    by_rule: Mutex<BTreeMap<String, u64>>,
}

impl EngineMetrics {
    pub(crate) fn checked(&self, verdict: &Verdict, took: Duration) {
        let counter = match verdict.action() {
            None => &self.passed,
            Some(Action::Flag) => &self.flagged,
            Some(Action::Mask) => &self.masked,
            Some(Action::Block) => &self.blocked,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if !verdict.matches.is_empty() {
            let mut by_rule = self.by_rule.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for matched in &verdict.matches {
                *by_rule.entry(matched.rule_id.clone()).or_default() += 1;
            }
        }
    }

    pub(crate) fn refresh_failed(&self) {
        self.refresh_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, rules: usize, version: Option<i64>) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut text = String::new();
        let name = "comet_moderation_checks_total";
        let _ = writeln!(text, "# HELP {name} Messages the rules checked, by outcome.\n# TYPE {name} counter");
        for (outcome, counter) in
            [("passed", &self.passed), ("flagged", &self.flagged), ("masked", &self.masked), ("blocked", &self.blocked)]
        {
            let _ = writeln!(text, "{name}{{outcome=\"{outcome}\"}} {}", load(counter));
        }
        let name = "comet_moderation_check_seconds_total";
        let _ = writeln!(text, "# HELP {name} Time spent checking messages.\n# TYPE {name} counter");
        let _ = writeln!(text, "{name} {}", load(&self.micros) as f64 / 1e6);
        let name = "comet_moderation_rule_matches_total";
        let _ = writeln!(text, "# HELP {name} Messages each rule matched.\n# TYPE {name} counter");
        let by_rule = self.by_rule.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (rule, count) in by_rule.iter() {
            let _ = writeln!(text, "{name}{{rule=\"{rule}\"}} {count}");
        }
        let name = "comet_moderation_refresh_errors_total";
        let _ = writeln!(text, "# HELP {name} Polls of the rules' change counter that failed.\n# TYPE {name} counter");
        let _ = writeln!(text, "{name} {}", load(&self.refresh_errors));
        let name = "comet_moderation_rules";
        let _ = writeln!(text, "# HELP {name} Enabled rules this process runs.\n# TYPE {name} gauge\n{name} {rules}");
        if let Some(version) = version {
            let name = "comet_moderation_rules_version";
            let _ = writeln!(
                text,
                "# HELP {name} The change counter the rules were compiled at.\n# TYPE {name} gauge\n{name} {version}"
            );
        }
        text
    }
}
