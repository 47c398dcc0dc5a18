//! `cometctl doctor` without a running deployment: its interface (flags, JSON shape, exit codes, bad input),
//! the host checks gathered for real on this machine, the one threshold table in the rendered alert rules,
//! and docs/operations/doctor.md listing every check. The checks of a running deployment are tested end to
//! end in tests/deploy/doctor.rs.

use std::path::Path;

use cometctl::checks::catalog::CATALOG;
use cometctl::domain::thresholds::THRESHOLDS;
use serde_json::Value;

use crate::support::{cometctl, init, workspace};

fn report(run: &crate::support::Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("doctor JSON: {error}\n{}", run.stdout))
}

/// The exit code the summary calls for.
fn expected_code(report: &Value) -> i32 {
    if report["summary"]["fail"].as_u64() > Some(0) {
        3
    } else if report["summary"]["warn"].as_u64() > Some(0) {
        4
    } else {
        0
    }
}

#[test]
fn doctor_without_a_folder_checks_this_host_against_the_default_plan_and_skips_the_rest_with_why() {
    let root = workspace();
    let run = cometctl(root.path(), &["doctor", "--output", "json"]);
    let report = report(&run);
    assert_eq!(run.code, expected_code(&report), "{}\n{}", run.stdout, run.stderr);
    let checks = report["checks"].as_array().expect("checks");
    let ids: Vec<&str> = checks.iter().filter_map(|check| check["id"].as_str()).collect();
    let catalogue: Vec<&str> = CATALOG.iter().map(|entry| entry.id).collect();
    assert_eq!(ids, catalogue, "every check of the catalogue, in order");
    for check in checks {
        for key in ["id", "area", "title", "outcome", "evidence", "threshold", "fix"] {
            assert!(check[key].is_string(), "{key} missing from {check}");
        }
        assert!(!check["evidence"].as_str().unwrap_or_default().is_empty(), "no evidence: {check}");
        let area = check["area"].as_str().unwrap_or_default();
        if area != "host" && area != "swarm" {
            assert_eq!(check["outcome"], "skip", "{check}");
            assert!(check["evidence"].as_str().unwrap_or_default().contains("no cometctl.yaml"), "{check}");
        }
    }
    let count = |outcome: &str| checks.iter().filter(|check| check["outcome"] == outcome).count() as u64;
    for outcome in ["pass", "warn", "fail", "skip"] {
        assert_eq!(report["summary"][outcome].as_u64(), Some(count(outcome)), "{outcome}");
    }
    // Gathered for real: the Engine's version and this kernel's settings are read, not skipped.
    let by_id = |id: &str| checks.iter().find(|check| check["id"] == id).cloned().unwrap_or_default();
    for id in ["host.os", "host.docker", "host.nofile", "host.somaxconn", "host.disk", "host.fsync"] {
        assert_ne!(by_id(id)["outcome"], "skip", "{id} was not gathered: {}", by_id(id));
    }
    assert!(by_id("host.docker")["evidence"].as_str().unwrap_or_default().contains("Docker Engine"));
}

#[test]
fn the_table_groups_checks_by_area_and_names_each_fix() {
    let root = workspace();
    let run = cometctl(root.path(), &["doctor", "--only", "host"]);
    assert!(matches!(run.code, 0 | 3 | 4), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("\nhost\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("\nstores\n"), "--only host shows only the host area:\n{}", run.stdout);
    assert!(run.stdout.contains("host.nofile"), "{}", run.stdout);
    if run.stdout.contains("  FAIL  ") {
        assert!(run.stdout.contains("fix: "), "a failed check without its fix:\n{}", run.stdout);
    }
    assert!(run.stdout.trim_end().ends_with("skip"), "the summary closes the table:\n{}", run.stdout);
}

#[test]
fn unknown_ids_and_misused_flags_exit_2_listing_the_ids() {
    let root = workspace();
    let unknown = cometctl(root.path(), &["doctor", "--only", "host.nofile,redis.polcy"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("unknown check `redis.polcy` in --only"), "{}", unknown.stderr);
    assert!(unknown.stderr.contains("redis.policy") && unknown.stderr.contains("host.fsync"), "{}", unknown.stderr);
    assert!(unknown.stdout.is_empty(), "nothing runs on bad input: {}", unknown.stdout);
    let skip = cometctl(root.path(), &["doctor", "--skip", "hosts"]);
    assert_eq!(skip.code, 2, "{}", skip.stderr);
    assert!(skip.stderr.contains("the areas are host, swarm"), "{}", skip.stderr);
    let yes = cometctl(root.path(), &["doctor", "--yes"]);
    assert_eq!(yes.code, 2, "{}", yes.stderr);
    assert!(yes.stderr.contains("--yes confirms --apply"), "{}", yes.stderr);
}

#[test]
fn apply_shows_its_changes_and_refuses_without_a_terminal() {
    let root = workspace();
    let fixable = "host.somaxconn,host.netdev_max_backlog,host.overcommit,host.thp";
    let before = report(&cometctl(root.path(), &["doctor", "--only", fixable, "--output", "json"]));
    let needs_fixing = before["checks"].as_array().expect("checks").iter().any(|check| check["outcome"] != "pass");
    let run = cometctl(root.path(), &["doctor", "--only", fixable, "--apply"]);
    if needs_fixing {
        assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("--apply will:"), "{}", run.stderr);
        assert!(run.stderr.contains("add --yes"), "{}", run.stderr);
        let after = report(&cometctl(root.path(), &["doctor", "--only", fixable, "--output", "json"]));
        assert_eq!(after["summary"], before["summary"], "a refused --apply changed the host");
    } else {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("nothing to fix"), "{}", run.stderr);
    }
}

#[test]
fn host_only_in_a_deployment_folder_checks_the_host_against_its_spec() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k", "--target", "compose"]);
    let dir = dir.to_string_lossy().into_owned();
    let run = cometctl(root.path(), &["doctor", "--dir", &dir, "--host-only", "--output", "json"]);
    let report = report(&run);
    assert_eq!(run.code, expected_code(&report), "{}", run.stderr);
    let checks = report["checks"].as_array().expect("checks");
    assert!(checks.iter().all(|check| check["area"] == "host"), "--host-only runs only host checks");
    let nofile = checks.iter().find(|check| check["id"] == "host.nofile").expect("host.nofile");
    assert!(nofile["threshold"].as_str().unwrap_or_default().contains("host.nofile (1048576)"), "{nofile}");
}

#[test]
fn the_alert_rules_use_the_threshold_table() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k", "--target", "compose"]);
    let dir_text = dir.to_string_lossy().into_owned();
    cometctl(root.path(), &["render", "--dir", &dir_text]).success();
    let rules = std::fs::read_to_string(Path::new(&dir).join("rendered/prometheus/alerts.yml")).expect("alerts.yml");
    let lag = format!("(comet_kafka_consumer_lag)) > {}", THRESHOLDS.kafka_consumer_lag.fail);
    assert!(rules.contains(&lag), "{lag} not in the rules");
    let disk = format!(") < {}", THRESHOLDS.disk_free_percent.warn as f64 / 100.0);
    assert!(rules.contains(&disk), "{disk} not in the rules");
    let redis = format!("redis_memory_max_bytes > {}", THRESHOLDS.redis_memory_percent.fail as f64 / 100.0);
    assert!(rules.contains(&redis), "{redis} not in the rules");
}

#[test]
fn docs_list_every_check() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations/doctor.md"))
        .expect("docs/operations/doctor.md");
    for entry in CATALOG {
        assert!(doc.contains(&format!("`{}`", entry.id)), "docs/operations/doctor.md does not list `{}`", entry.id);
    }
}

#[test]
fn without_an_engine_doctor_cannot_run_and_exits_1() {
    let root = workspace();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cometctl"))
        .args(["doctor", "--output", "json"])
        .current_dir(root.path())
        .env("DOCKER_HOST", format!("unix://{}/no-docker.sock", root.path().display()))
        .env("NO_COLOR", "1")
        .output()
        .expect("cometctl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the Docker Engine does not answer"), "{stderr}");
    assert!(output.stdout.is_empty(), "no verdict without an Engine");
}
