//! What the commands show: the sizing plan, status rows, change lines and file summaries, each as a table
//! (or text) on the terminal or as JSON with `--output json`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io;

use comfy_table::{CellAlignment, Table, presets};
use serde::Serialize;

use super::{BOLD, Printer, RED, YELLOW};
use crate::checks::Outcome;
use crate::checks::report::Report;
use crate::domain::{ServiceKey, Target};
use crate::plan::lines::ChangeLine;
use crate::plan::status::ServiceStatus;
use crate::sizing::{Plan, RedisMode};

/// One line of a render or init summary.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    Removed,
    Kept,
}

impl Change {
    fn label(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Removed => "removed",
            Change::Kept => "kept",
        }
    }
}

impl Printer {
    /// `doctor`'s verdict: the checks grouped by area, each with its outcome, id, evidence, threshold and
    /// fix, then the summary; or the report as JSON.
    pub fn doctor_report(&self, report: &Report) -> io::Result<()> {
        if self.is_json() {
            return self.json(report);
        }
        let mut out = String::new();
        let width = report.checks.iter().map(|finding| finding.id.len()).max().unwrap_or(0);
        let mut area = None;
        for finding in &report.checks {
            if area != Some(finding.area) {
                area = Some(finding.area);
                out.push_str(&format!("\n{}\n", self.paint(BOLD, finding.area.as_str())));
            }
            let label = match finding.outcome {
                Outcome::Pass => "pass".to_owned(),
                Outcome::Warn => self.paint(YELLOW, "WARN"),
                Outcome::Fail => self.paint(RED, "FAIL"),
                Outcome::Skip => "skip".to_owned(),
            };
            out.push_str(&format!("  {label}  {:<width$}  {}: {}\n", finding.id, finding.title, finding.evidence));
            let indent = " ".repeat(width + 10);
            if matches!(finding.outcome, Outcome::Warn | Outcome::Fail) {
                if !finding.threshold.is_empty() {
                    out.push_str(&format!("{indent}threshold: {}\n", finding.threshold));
                }
                if !finding.fix.is_empty() {
                    out.push_str(&format!("{indent}fix: {}\n", finding.fix));
                }
            }
        }
        let summary = &report.summary;
        out.push_str(&format!(
            "\n{} pass, {} warn, {} fail, {} skip\n",
            summary.pass, summary.warn, summary.fail, summary.skip
        ));
        self.stdout(&out)
    }

    /// The sizing plan: tables on stdout, or the plan as JSON.
    pub fn plan(&self, plan: &Plan) -> io::Result<()> {
        if self.is_json() {
            return self.json(plan);
        }
        let mut out = String::new();
        let load = &plan.load;
        out.push_str(&self.paint(
            BOLD,
            &format!(
                "Sizing plan: {} MAU, {} concurrency ({}%) = {} peak connections; target {} (recommended: {})\n",
                plan.mau,
                plan.concurrency,
                load.concurrency_percent,
                load.peak_connections,
                plan.target,
                plan.recommended_target
            ),
        ));

        out.push_str(&format!("\nLoad at peak\n{}\n", load_table(plan)));

        out.push_str(&format!(
            "\nServices (CPU in cores, memory in MiB, storage in GiB per replica)\n{}\n",
            services_table(plan)
        ));
        if !plan.not_deployed.is_empty() {
            out.push_str(
                "\nNot deployed (replicas 0; to turn one on, set plan.services.<service>.replicas in cometctl.yaml)\n",
            );
            for held in &plan.not_deployed {
                out.push_str(&format!(
                    "  {} ({} when on): {}\n",
                    held.service.dns_name(),
                    held.replicas_when_deployed,
                    held.reason
                ));
            }
        }

        out.push_str(&format!("\nStorage\n{}\n", storage_table(plan)));

        out.push_str(&format!("\nStores\n{}\n", stores_table(plan)));

        let totals = &plan.totals;
        out.push_str(&format!(
            "\nTotal: {} vCPU / {} GiB reserved, {} vCPU / {} GiB at limits, {} GiB storage \
             (per-node agents counted once)\n",
            totals.vcpu_request,
            totals.memory_gib_request,
            totals.vcpu_limit,
            totals.memory_gib_limit,
            totals.storage_gib
        ));

        out.push_str(&format!(
            "\nAssumptions (* = provisional figure, to be replaced by docs/benchmarks.md)\n{}\n",
            assumptions_table(plan)
        ));
        self.stdout(&out)?;
        for warning in &plan.warnings {
            self.warning(warning);
        }
        Ok(())
    }

    /// `cometctl status` as a table on stdout.
    pub fn service_status(&self, rows: &[ServiceStatus]) -> io::Result<()> {
        let mut table = new_table(&["service", "running", "healthy", "image", "ports", "uptime"]);
        for row in rows {
            let uptime = row.uptime_seconds.map_or("-".to_owned(), |seconds| match seconds {
                0..60 => format!("{seconds}s"),
                60..3600 => format!("{}m", seconds / 60),
                3600..86400 => format!("{}h", seconds / 3600),
                _ => format!("{}d", seconds / 86400),
            });
            let health = if row.unhealthy > 0 {
                self.paint(RED, &format!("{} ({} unhealthy)", row.healthy, row.unhealthy))
            } else {
                row.healthy.to_string()
            };
            table.add_row(vec![
                row.service.clone(),
                if row.completed > 0 {
                    format!("{}/{} ({} completed)", row.running, row.desired, row.completed)
                } else {
                    format!("{}/{}", row.running, row.desired)
                },
                health,
                row.images.join(", "),
                row.ports.join(", "),
                uptime,
            ]);
        }
        self.stdout(&format!("{table}\n"))
    }

    /// What a command did to files.
    pub fn changes(&self, title: &str, changes: &[FileChange]) -> io::Result<()> {
        if self.is_json() {
            return self.json(&changes);
        }
        if self.quiet {
            return Ok(());
        }
        let mut table = new_table(&["file", "change"]);
        for change in changes {
            table.add_row(vec![change.path.clone(), change.change.label().to_owned()]);
        }
        let unchanged = changes.iter().filter(|change| change.change == Change::Unchanged).count();
        let summary = if unchanged == changes.len() && !changes.is_empty() {
            format!("{title}: no changes ({} files)", changes.len())
        } else {
            format!("{title}: {} files, {} changed", changes.len(), changes.len() - unchanged)
        };
        eprintln!("{table}\n{summary}");
        Ok(())
    }

    /// The lines of a `diff`, `deploy` or `upgrade` (a JSON array with `--output json`), then a count or
    /// "no changes".
    pub fn change_lines(&self, title: &str, lines: &[ChangeLine]) -> io::Result<()> {
        if self.is_json() {
            return self.json(&lines);
        }
        if lines.is_empty() {
            return self.result(&format!("{title}: no changes"));
        }
        for line in lines {
            self.result(&format!("{:<8} {:<10} {:<40} {}", line.action, line.kind, line.name, line.reason))?;
        }
        self.result(&format!("{title}: {} changes", lines.len()))
    }

    /// Which targets a render produced, for the closing line.
    pub fn next_steps(&self, lines: &[String]) {
        if !self.quiet && !self.is_json() {
            for line in lines {
                eprintln!("{line}");
            }
        }
    }

    pub fn target_list(targets: &[Target]) -> String {
        targets.iter().map(|target| target.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Load at peak.
fn load_table(plan: &Plan) -> Table {
    let load = &plan.load;
    let mut table = new_table(&["", "value"]);
    table.add_row(vec!["daily active users".to_owned(), load.daily_active_users.to_string()]);
    table.add_row(vec!["messages per day".to_owned(), load.messages_per_day.to_string()]);
    table.add_row(vec!["sends per second".to_owned(), load.peak_sends_per_second.to_string()]);
    table.add_row(vec!["deliveries per second".to_owned(), load.peak_deliveries_per_second.to_string()]);
    table.add_row(vec!["events per second".to_owned(), load.peak_events_per_second.to_string()]);
    table.add_row(vec!["SQL statements per second".to_owned(), load.peak_sql_statements_per_second.to_string()]);
    right_align(&mut table, 1);
    table
}

/// Replicas and resources per service.
fn services_table(plan: &Plan) -> Table {
    let mut table =
        new_table(&["service", "kind", "replicas", "cpu request", "cpu limit", "mem request", "mem limit", "storage"]);
    for (key, service) in &plan.allocation.services {
        let replicas =
            if key.is_global() { format!("{} per node", service.replicas) } else { service.replicas.to_string() };
        table.add_row(vec![
            key.dns_name().to_owned(),
            kind_label(*key).to_owned(),
            replicas,
            cores(service.cpu_millis.request),
            cores(service.cpu_millis.limit),
            service.memory_mib.request.to_string(),
            service.memory_mib.limit.to_string(),
            if service.storage_gib == 0 { "-".to_owned() } else { service.storage_gib.to_string() },
        ]);
    }
    for column in 2..8 {
        right_align(&mut table, column);
    }
    table
}

/// Storage per stateful service.
fn storage_table(plan: &Plan) -> Table {
    let mut table =
        new_table(&["service", "replicas", "GiB per replica", "growth GiB/month (all copies)", "bounded by"]);
    for line in &plan.storage {
        table.add_row(vec![
            line.service.dns_name().to_owned(),
            line.replicas.to_string(),
            line.per_replica_gib.to_string(),
            line.growth_gib_per_month.to_string(),
            line.bounded_by.to_owned(),
        ]);
    }
    for column in 1..4 {
        right_align(&mut table, column);
    }
    table
}

/// The topology of each store.
fn stores_table(plan: &Plan) -> Table {
    let stores = &plan.allocation.stores;
    let count = |key| plan.allocation.replicas(key);
    let mut table = new_table(&["store", "topology"]);
    table.add_row(vec![
        "TiDB".to_owned(),
        if plan.allocation.standalone_tidb() {
            format!(
                "standalone: {} TiDB on its embedded store, no PD or TiKV (no high availability)",
                count(ServiceKey::Tidb)
            )
        } else {
            format!("{} PD, {} TiKV, {} TiDB", count(ServiceKey::Pd), count(ServiceKey::Tikv), count(ServiceKey::Tidb))
        },
    ]);
    table.add_row(vec![
        "Kafka".to_owned(),
        format!(
            "{} brokers, {} partitions, replication factor {}, min.insync.replicas {}",
            count(ServiceKey::Kafka),
            stores.kafka.partitions,
            stores.kafka.replication_factor,
            stores.kafka.min_insync_replicas
        ),
    ]);
    table.add_row(vec![
        "Redis".to_owned(),
        match stores.redis.mode {
            RedisMode::Standalone => "standalone (1 node)".to_owned(),
            RedisMode::Cluster => format!(
                "cluster: {} shards x {} replica(s) = {} nodes",
                stores.redis.shards,
                stores.redis.replicas_per_shard,
                count(ServiceKey::Redis)
            ),
        },
    ]);
    table.add_row(vec![
        "MongoDB".to_owned(),
        if plan.allocation.deploys(ServiceKey::Mongodb) {
            format!("replica set {}, {} member(s)", stores.mongodb.replica_set, count(ServiceKey::Mongodb))
        } else {
            "not deployed".to_owned()
        },
    ]);
    table
}

/// The profile's assumptions, provisional ones marked.
fn assumptions_table(plan: &Plan) -> Table {
    let mut table = new_table(&["assumption", "value"]);
    for assumption in &plan.assumptions {
        let marker = if assumption.provisional { " *" } else { "" };
        table.add_row(vec![assumption.name.clone(), format!("{}{marker}", assumption.value)]);
    }
    table
}

pub(super) fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(header.iter().map(|cell| cell.to_uppercase()).collect::<Vec<_>>());
    table
}

fn right_align(table: &mut Table, column: usize) {
    if let Some(column) = table.column_mut(column) {
        column.set_cell_alignment(CellAlignment::Right);
    }
}

fn kind_label(key: ServiceKey) -> &'static str {
    match key.kind() {
        crate::domain::ServiceKind::Edge => "edge",
        crate::domain::ServiceKind::Role => "role",
        crate::domain::ServiceKind::Job => "job",
        crate::domain::ServiceKind::Store => "store",
        crate::domain::ServiceKind::Observability => "observability",
    }
}

fn cores(millis: u32) -> String {
    format!("{:.2}", f64::from(millis) / 1000.0)
}
