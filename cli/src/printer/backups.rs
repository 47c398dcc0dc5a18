//! The views of `cometctl backup`: the set just taken, the sets of a target, what `verify` found.

use std::io;

use super::views::new_table;
use super::{Printer, RED};
use crate::backup::manifest::Manifest;
use crate::backup::{Drill, Listed, ListedView, Verification, human_bytes};

impl Printer {
    pub fn backup_manifest(&self, manifest: &Manifest) -> io::Result<()> {
        let mut table = new_table(&["part", "size", "items", "consistency point"]);
        for part in &manifest.parts {
            let items: u64 = part.items.values().sum();
            let point = match (part.snapshot_at, part.schema) {
                (Some(at), Some(schema)) => format!("snapshot at {at} ms, schema {schema}"),
                _ => "-".to_owned(),
            };
            table.add_row(vec![part.name.clone(), human_bytes(part.bytes), items.to_string(), point]);
        }
        for skipped in &manifest.skipped {
            table.add_row(vec![skipped.name.clone(), "skipped".to_owned(), "-".to_owned(), skipped.reason.clone()]);
        }
        self.stdout(&format!("backup set {} (key {})\n{table}\n", manifest.id, manifest.encryption.key_id))
    }

    pub fn backup_sets(&self, sets: &[Listed]) -> io::Result<()> {
        let mut table = new_table(&["id", "complete", "parts", "size", "key"]);
        for set in sets {
            let view = ListedView::from(set);
            let complete =
                if view.complete { "yes".to_owned() } else { self.paint(RED, view.reason.as_deref().unwrap_or("no")) };
            table.add_row(vec![
                view.id,
                complete,
                view.parts.join(", "),
                human_bytes(view.bytes),
                view.key_id.unwrap_or_else(|| "-".to_owned()),
            ]);
        }
        self.stdout(&format!("{table}\n"))
    }

    pub fn backup_prune(&self, decisions: &[crate::backup::prune::Decision], deleted: bool) -> io::Result<()> {
        let mut table = new_table(&["id", "fate", "why"]);
        let going = if deleted { "deleted" } else { "would go" };
        for decision in decisions {
            let fate = if decision.keep { "keep".to_owned() } else { self.paint(RED, going) };
            table.add_row(vec![decision.id.clone(), fate, decision.why.join(", ")]);
        }
        let gone = decisions.iter().filter(|decision| !decision.keep).count();
        let footer = match (gone, deleted) {
            (0, _) => "nothing to prune".to_owned(),
            (n, true) => format!("{n} set(s) deleted"),
            (n, false) => format!("{n} set(s) would go: add --yes to delete them"),
        };
        self.stdout(&format!("{table}\n{footer}\n"))
    }

    pub fn backup_verification(&self, verification: &Verification) -> io::Result<()> {
        let mut table = new_table(&["part", "result", "detail"]);
        for check in &verification.checks {
            let result = if check.ok { "ok".to_owned() } else { self.paint(RED, "FAILED") };
            table.add_row(vec![check.part.clone(), result, check.detail.clone()]);
        }
        let verdict = if verification.ok { "verified" } else { "NOT verified" };
        self.stdout(&format!("backup set {}: {verdict}\n{table}\n", verification.id))
    }

    /// The drill's steps with their times, then the verdict against the RTO.
    pub fn restore_drill(&self, drill: &Drill) -> io::Result<()> {
        if self.is_json() {
            return self.json(drill);
        }
        let mut table = new_table(&["step", "result", "seconds", "detail"]);
        for step in &drill.steps {
            let result = if step.ok { "pass".to_owned() } else { self.paint(RED, "FAIL") };
            table.add_row(vec![step.step.to_owned(), result, format!("{:.1}", step.seconds), step.detail.clone()]);
        }
        let verdict = if drill.pass { "pass" } else { "FAIL" };
        self.stdout(&format!(
            "restore drill of {} into `{}`: {verdict} in {:.0}s (RTO {:.0}s)\n{table}\n",
            drill.id, drill.scratch, drill.seconds, drill.rto_seconds
        ))
    }
}
