//! The views of `cometctl scale` and `cometctl playbook`: a plan diff, the playbooks, a run's steps.

use std::io;

use super::Printer;
use super::views::new_table;
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
