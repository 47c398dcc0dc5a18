use std::os::unix::fs::PermissionsExt;

use crate::support::{cometctl, init, tree, workspace};

const SECRETS: [&str; 8] = [
    "api_key",
    "auth_key",
    "db_password",
    "db_root_password",
    "grafana_admin_password",
    "mongodb_password",
    "redis_password",
    "token_signing_key",
];

#[test]
fn init_writes_spec_private_secrets_and_a_dev_certificate() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "100k"]);
    let spec = std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec");
    assert!(spec.contains("mau: 100000"), "{spec}");
    assert!(spec.contains("target: swarm"), "the recommended target is the default: {spec}");

    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("secrets")), 0o700);
    let mut values = Vec::new();
    for name in SECRETS {
        let path = dir.join("secrets").join(name);
        assert_eq!(mode(&path), 0o600, "{name}");
        let value = std::fs::read_to_string(&path).expect("secret");
        let value = value.trim_end().to_owned();
        assert_eq!(value.len(), 64, "{name}");
        assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        assert!(!spec.contains(&value), "secret {name} leaked into the spec");
        values.push(value);
    }
    values.sort();
    values.dedup();
    assert_eq!(values.len(), SECRETS.len(), "every secret is distinct");

    assert_eq!(mode(&dir.join("tls/key.pem")), 0o600);
    let cert = std::fs::read_to_string(dir.join("tls/cert.pem")).expect("cert");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
}

#[test]
fn init_refuses_to_overwrite_and_force_keeps_secrets() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let secrets_before = tree(&dir.join("secrets"));
    let tls_before = tree(&dir.join("tls"));
    let spec_before = std::fs::read(dir.join("cometctl.yaml")).expect("spec");

    let dir_text = dir.to_string_lossy().into_owned();
    let again = cometctl(root.path(), &["init", "--mau", "50k", "--dir", &dir_text]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already exists") && again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(std::fs::read(dir.join("cometctl.yaml")).expect("spec"), spec_before, "a refused init changes nothing");

    let forced = cometctl(root.path(), &["init", "--mau", "50k", "--dir", &dir_text, "--force"]).success();
    assert!(forced.stderr.contains("kept"), "{}", forced.stderr);
    assert_eq!(tree(&dir.join("secrets")), secrets_before, "--force keeps every secret");
    assert_eq!(tree(&dir.join("tls")), tls_before, "--force keeps the certificate");
    let spec_after = std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec");
    assert!(spec_after.contains("mau: 50000"), "{spec_after}");
}

#[test]
fn sizing_prints_json_and_writes_nothing() {
    let root = workspace();
    let run =
        cometctl(root.path(), &["sizing", "--mau", "250k", "--concurrency", "high", "--output", "json"]).success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(plan["mau"], 250_000);
    assert_eq!(plan["load"]["peak_connections"], 25_000);
    assert_eq!(plan["recommended_target"], "k8s");
    assert_eq!(plan["target"], "k8s");
    assert_eq!(plan["allocation"]["stores"]["redis"]["mode"], "cluster");
    assert!(std::fs::read_dir(root.path()).expect("read_dir").next().is_none(), "sizing wrote a file");
}

#[test]
fn sizing_table_shows_plan_assumptions_and_warnings() {
    let root = workspace();
    let run = cometctl(root.path(), &["sizing", "--mau", "300k", "--target", "swarm"]).success();
    for fragment in
        ["peak connections", "gateway", "TiDB", "min.insync.replicas 2", "capacity: gateway_connections", "*"]
    {
        assert!(run.stdout.contains(fragment), "{fragment:?} missing from:\n{}", run.stdout);
    }
    assert!(run.stderr.contains("warning:") && run.stderr.contains("use k8s"), "{}", run.stderr);
}

#[test]
fn init_json_reports_plan_and_files() {
    let root = workspace();
    let run = cometctl(root.path(), &["init", "--mau", "25k", "--dir", "deploy", "--output", "json"]).success();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(report["plan"]["mau"], 25_000);
    let files = report["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["path"] == "cometctl.yaml" && f["change"] == "created"), "{files:?}");
    assert_eq!(files.iter().filter(|f| f["path"].as_str().is_some_and(|p| p.starts_with("secrets/"))).count(), 8);
}
