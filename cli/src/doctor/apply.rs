//! `doctor --apply`: the fixes that are safe and local to this host, from a report's warns and fails:
//! kernel settings written to /proc/sys (and kept in /etc/sysctl.d/90-comet.conf for the next boot),
//! transparent huge pages set to `madvise`, and the Docker daemon's open-files drop-in, which is printed,
//! not installed (restarting the daemon restarts every container, so that is the operator's call).

use anyhow::{Context as _, Result};

use crate::checks::Outcome;
use crate::checks::host::NOFILE_DROP_IN;
use crate::checks::report::Report;
use crate::domain::thresholds::THRESHOLDS;

/// Where the sysctl values are kept for the next boot.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-comet.conf";

/// One fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// A kernel setting: the sysctl key, its file and the value.
    Sysctl { key: &'static str, path: &'static str, value: String },
    /// A value written to a file of /sys (not kept across a reboot).
    Sys { path: &'static str, value: &'static str },
    /// A file the operator installs; its path and content.
    Print { path: &'static str, text: String },
}

impl Fix {
    /// What the fix changes, as shown before it is applied.
    pub fn describe(&self) -> String {
        match self {
            Fix::Sysctl { key, value, .. } => format!("set {key} = {value} (now and in {SYSCTL_FILE})"),
            Fix::Sys { path, value } => format!("write `{value}` to {path} (until the next boot)"),
            Fix::Print { path, .. } => format!("print {path} for you to install (nothing is changed)"),
        }
    }
}

/// The fixes the report calls for.
pub fn plan(report: &Report) -> Vec<Fix> {
    let mut fixes = Vec::new();
    for finding in report.checks.iter().filter(|finding| matches!(finding.outcome, Outcome::Warn | Outcome::Fail)) {
        match finding.id {
            "host.somaxconn" => fixes.push(Fix::Sysctl {
                key: "net.core.somaxconn",
                path: "/proc/sys/net/core/somaxconn",
                value: THRESHOLDS.somaxconn.warn.to_string(),
            }),
            "host.netdev_max_backlog" => fixes.push(Fix::Sysctl {
                key: "net.core.netdev_max_backlog",
                path: "/proc/sys/net/core/netdev_max_backlog",
                value: THRESHOLDS.netdev_max_backlog.warn.to_string(),
            }),
            "host.overcommit" => fixes.push(Fix::Sysctl {
                key: "vm.overcommit_memory",
                path: "/proc/sys/vm/overcommit_memory",
                value: "1".to_owned(),
            }),
            "host.thp" => {
                fixes.push(Fix::Sys { path: "/sys/kernel/mm/transparent_hugepage/enabled", value: "madvise" })
            }
            "host.nofile" => fixes.push(Fix::Print {
                path: NOFILE_DROP_IN,
                text: "[Service]\nLimitNOFILE=1048576\n# then: systemctl daemon-reload && systemctl restart docker \
                       (restarts every container)\n"
                    .to_owned(),
            }),
            _ => {}
        }
    }
    fixes
}

/// Applies the fixes; returns a line per change made (a `Print` fix is returned as its file, to be shown).
pub fn apply(fixes: &[Fix]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut kept: Vec<(String, String)> = std::fs::read_to_string(SYSCTL_FILE)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    for fix in fixes {
        match fix {
            Fix::Sysctl { key, path, value } => {
                std::fs::write(path, value).with_context(|| format!("writing {path} (as root?)"))?;
                kept.retain(|(kept_key, _)| kept_key != key);
                kept.push(((*key).to_owned(), value.clone()));
                done.push(format!("{key} = {value}"));
            }
            Fix::Sys { path, value } => {
                std::fs::write(path, value).with_context(|| format!("writing {path} (as root?)"))?;
                done.push(format!("{path}: {value}"));
            }
            Fix::Print { path, text } => done.push(format!("install {path}:\n{text}")),
        }
    }
    if fixes.iter().any(|fix| matches!(fix, Fix::Sysctl { .. })) {
        let text: String = kept.iter().map(|(key, value)| format!("{key} = {value}\n")).collect();
        let header = "# Written by `cometctl doctor --apply`.\n";
        let temporary = format!("{SYSCTL_FILE}.tmp");
        std::fs::write(&temporary, format!("{header}{text}")).with_context(|| format!("writing {temporary}"))?;
        std::fs::rename(&temporary, SYSCTL_FILE).with_context(|| format!("replacing {SYSCTL_FILE}"))?;
        done.push(format!("kept in {SYSCTL_FILE}"));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;
    use crate::checks::catalog::Selection;

    #[test]
    fn only_safe_local_fixes_are_planned() {
        let selection = Selection::all();
        let report = Report::new(
            &selection,
            vec![
                Check::warn("host.somaxconn", "128", ""),
                Check::warn("host.thp", "always", ""),
                Check::fail("host.nofile", "20000", ""),
                Check::fail("redis.policy", "allkeys-random", ""),
                Check::pass("host.overcommit", "1"),
            ],
        );
        let fixes = plan(&report);
        assert_eq!(fixes.len(), 3, "{fixes:?}");
        assert!(
            fixes
                .iter()
                .any(|fix| matches!(fix, Fix::Sysctl { key: "net.core.somaxconn", value, .. } if value == "4096"))
        );
        assert!(fixes.iter().any(|fix| matches!(fix, Fix::Print { .. })));
        assert!(fixes.iter().all(|fix| !fix.describe().is_empty()));
    }
}
