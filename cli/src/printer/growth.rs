//! The views of `cometctl scale` and `cometctl playbook`: a plan diff, the playbooks, a run's steps.

use std::io;

use super::Printer;
use super::views::new_table;
use crate::playbook::Loaded;
use crate::spec::Difference;

impl Printer {
    /// Every value of cometctl.yaml that changes, `path: from → to`.
    pub fn plan_differences(&self, title: &str, differences: &[Difference]) -> io::Result<()> {
        if self.is_json() {
            return self.json(&differences);
        }
        let mut table = new_table(&["value", "now", "new"]);
        for difference in differences {
            table.add_row(vec![difference.path.clone(), difference.from_text(), difference.to_text()]);
        }
        self.stdout(&format!("{title}: {} values change\n{table}\n", differences.len()))
    }
}

/// A playbook as `list --output json` shows it.
#[derive(Debug, serde::Serialize)]
struct PlaybookView<'a> {
    name: &'a str,
    description: &'a str,
    origin: &'a str,
    inputs: &'a [crate::playbook::model::Input],
    steps: Vec<String>,
}

impl<'a> From<&'a Loaded> for PlaybookView<'a> {
    fn from(loaded: &'a Loaded) -> PlaybookView<'a> {
        let playbook = &loaded.playbook;
        PlaybookView {
            name: &playbook.name,
            description: playbook.description.trim(),
            origin: &loaded.origin,
            inputs: &playbook.inputs,
            steps: playbook.steps.iter().map(crate::playbook::Step::title).collect(),
        }
    }
}

impl Printer {
    pub fn playbooks(&self, loaded: &[Loaded]) -> io::Result<()> {
        if self.is_json() {
            return self.json(&loaded.iter().map(PlaybookView::from).collect::<Vec<_>>());
        }
        let mut table = new_table(&["playbook", "steps", "description"]);
        for one in loaded {
            let first_line = one.playbook.description.lines().next().unwrap_or_default().to_owned();
            table.add_row(vec![one.playbook.name.clone(), one.playbook.steps.len().to_string(), first_line]);
        }
        self.stdout(&format!("{table}\n"))
    }

    pub fn playbook(&self, loaded: &Loaded) -> io::Result<()> {
        let view = PlaybookView::from(loaded);
        if self.is_json() {
            return self.json(&view);
        }
        let mut text = format!("{} ({})\n{}\n", view.name, view.origin, view.description);
        if !view.inputs.is_empty() {
            text.push_str("\ninputs:\n");
            for input in view.inputs {
                let default =
                    input.default.as_ref().map_or(" (required)".to_owned(), |value| format!(" (default {value})"));
                text.push_str(&format!("  {}{default}: {}\n", input.name, input.description));
            }
        }
        text.push_str("\nsteps:\n");
        for (index, step) in view.steps.iter().enumerate() {
            text.push_str(&format!("  {}. {step}\n", index + 1));
        }
        self.stdout(&text)
    }
}

impl Printer {
    /// A bench's figures beside the plan's, then the verdict and its notes.
    pub fn bench_report(&self, report: &crate::bench::Report) -> io::Result<()> {
        if self.is_json() {
            return self.json(report);
        }
        let mut table = new_table(&["figure", "measured", "sized for"]);
        let sockets = &report.sockets;
        table.add_row(vec![
            "sockets held".to_owned(),
            format!("{} of {} ({} dropped)", sockets.held, sockets.requested, sockets.dropped),
            format!("{} peak connections", report.plan.peak_connections),
        ]);
        let sends = &report.sends;
        table.add_row(vec![
            "sends acknowledged".to_owned(),
            format!(
                "{:.1}/s of {:.1}/s offered ({} errors)",
                sends.acknowledged_per_second, sends.offered_per_second, sends.errors
            ),
            format!("{:.1}/s at the peak", report.plan.peak_sends_per_second),
        ]);
        let deliveries = &report.deliveries;
        table.add_row(vec![
            "deliveries".to_owned(),
            format!(
                "{:.1}/s ({} missing, {} duplicated)",
                deliveries.per_second, deliveries.missing, deliveries.duplicates
            ),
            String::new(),
        ]);
        let latency = &report.latency_ms;
        table.add_row(vec![
            "send → deliver".to_owned(),
            format!(
                "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                latency.p50, latency.p90, latency.p99, latency.max
            ),
            format!("p99 ≤ {} ms", crate::bench::report::P99_LIMIT.as_millis()),
        ]);
        let verdict = if report.pass { "pass" } else { "fail" };
        let mut text =
            format!("bench ({} MAU plan, {:.0}s): {verdict}\n{table}\n", report.plan.mau, report.duration_seconds);
        for error in &sends.first_errors {
            text.push_str(&format!("  error: {error}\n"));
        }
        for note in &report.notes {
            text.push_str(&format!("  {note}\n"));
        }
        self.stdout(&text)
    }
}
