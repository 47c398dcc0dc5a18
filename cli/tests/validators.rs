//! Rendered artifacts checked by the ecosystem's own validators, for the tiers the issue names: 10k on
//! Compose, 100k on Swarm and 250k (high concurrency, Redis cluster) on Kubernetes. Each deployment renders
//! every target, so each validator sees three sizes.

use std::path::Path;

use crate::support::{run_tool as run, tool, Deployment};

const KUBERNETES_VERSION: &str = "1.32.0";

fn deployments() -> Vec<(&'static str, Deployment)> {
    vec![
        ("10k compose", Deployment::rendered(&["--mau", "10k", "--target", "compose"])),
        ("100k swarm", Deployment::rendered(&["--mau", "100k", "--target", "swarm"])),
        ("250k high k8s", Deployment::rendered(&["--mau", "250k", "--concurrency", "high", "--target", "k8s"])),
    ]
}

#[track_caller]
fn assert_valid(what: &str, tier: &str, outcome: crate::support::Outcome) {
    assert!(outcome.success, "{what} rejected the {tier} render:\n{}", outcome.output);
}

#[test]
fn docker_compose_accepts_compose_and_stack_files() {
    let docker_compose = tool("docker-compose", &["/usr/bin/docker-compose"]);
    for (tier, deployment) in deployments() {
        let rendered = deployment.rendered_dir();
        for file in ["compose.yaml", "stack.yaml"] {
            let outcome = run(&docker_compose, &["-f", file, "config", "-q"], &rendered);
            assert_valid(&format!("docker-compose config ({file})"), tier, outcome);
        }
    }
}

#[test]
fn docker_stack_loader_accepts_the_stack_file() {
    let docker = tool("docker", &["/usr/local/bin/docker", "/usr/bin/docker"]);
    for (tier, deployment) in deployments() {
        let outcome = run(&docker, &["stack", "config", "-c", "stack.yaml"], &deployment.rendered_dir());
        assert_valid("docker stack config", tier, outcome);
    }
}

#[test]
fn nginx_accepts_the_edge_config_with_the_dev_certificate() {
    let nginx = tool("nginx", &["/usr/sbin/nginx"]);
    for (tier, deployment) in deployments() {
        // The container mounts the certificate at /etc/nginx/tls; here it is the one `init` generated.
        let conf = std::fs::read_to_string(deployment.rendered_dir().join("nginx/nginx.conf")).expect("nginx.conf");
        let tls_dir = deployment.dir.join("tls");
        let local = conf.replace("/etc/nginx/tls/", &format!("{}/", tls_dir.display()));
        assert_ne!(local, conf, "nginx.conf does not read its certificate from /etc/nginx/tls/");
        let test_conf = deployment.dir.join("nginx-test.conf");
        std::fs::write(&test_conf, local).expect("write");
        let outcome = run(&nginx, &["-t", "-q", "-c", &test_conf.to_string_lossy()], &deployment.dir);
        assert_valid("nginx -t", tier, outcome);
    }
}

#[test]
fn promtool_accepts_scrape_config_and_alert_rules() {
    let promtool = tool("promtool", &["/usr/bin/promtool"]);
    for (tier, deployment) in deployments() {
        let prometheus = deployment.rendered_dir().join("prometheus");
        assert_valid("promtool check config", tier, run(&promtool, &["check", "config", "prometheus.yml"], &prometheus));
        assert_valid("promtool check rules", tier, run(&promtool, &["check", "rules", "alerts.yml"], &prometheus));
        let rules = std::fs::read_to_string(prometheus.join("alerts.yml")).expect("alerts.yml");
        // The alerts the issue asks for, by the metric each one watches.
        for needle in [
            "node_cpu_seconds_total",
            "node_memory_MemAvailable_bytes",
            "node_filesystem_avail_bytes",
            "up == 0",
            "tidb_server_handle_query_duration_seconds_bucket",
            "comet_kafka_consumer_lag",
            "redis_memory_used_bytes",
            "comet_gateway_connection_errors_total",
            "comet_http_requests_total",
            "container_start_time_seconds",
        ] {
            assert!(rules.contains(needle), "{tier}: alerts.yml has no rule on {needle}");
        }
    }
}

#[test]
fn kubernetes_validate_accepts_every_manifest() {
    let validator = tool("kubernetes-validate", &["/opt/comet-tools/venv/bin/kubernetes-validate"]);
    for (tier, deployment) in deployments() {
        let manifests = deployment.files("k8s", ".yaml");
        assert!(manifests.len() >= 5, "{tier}: too few manifests: {manifests:?}");
        let mut args = vec!["-k".to_owned(), KUBERNETES_VERSION.to_owned(), "--strict".to_owned()];
        args.extend(manifests.iter().map(|path| path.to_string_lossy().into_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let outcome = run(&validator, &args, &deployment.dir);
        assert_valid("kubernetes-validate", tier, outcome);
    }
}

#[test]
fn kubernetes_manifests_cover_the_required_kinds() {
    let deployment = Deployment::rendered(&["--mau", "250k", "--target", "k8s"]);
    let mut kinds = std::collections::BTreeSet::new();
    for path in deployment.files("k8s", ".yaml") {
        let text = std::fs::read_to_string(&path).expect("manifest");
        kinds.extend(text.lines().filter_map(|line| line.strip_prefix("kind: ")).map(|kind| kind.trim().trim_matches('"').to_owned()));
    }
    for kind in [
        "Namespace",
        "Deployment",
        "StatefulSet",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "Job",
    ] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
}

#[test]
fn grafana_dashboards_are_valid_json_with_known_datasources() {
    let deployment = Deployment::rendered(&["--mau", "100k"]);
    let dashboards = deployment.files("grafana/dashboards", ".json");
    let names: Vec<String> =
        dashboards.iter().filter_map(|path| path.file_stem()).map(|stem| stem.to_string_lossy().into_owned()).collect();
    for expected in ["overview", "infrastructure", "websocket", "api", "databases", "kafka", "logs"] {
        assert!(names.iter().any(|name| name == expected), "no {expected} dashboard in {names:?}");
    }
    let mut uids = std::collections::BTreeSet::new();
    for path in &dashboards {
        let text = std::fs::read_to_string(path).expect("dashboard");
        let dashboard: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()));
        let uid = dashboard["uid"].as_str().unwrap_or_else(|| panic!("{} has no uid", path.display())).to_owned();
        assert!(uids.insert(uid.clone()), "uid {uid} used twice");
        let panels = dashboard["panels"].as_array().map_or(0, Vec::len);
        assert!(panels > 0, "{} has no panels", path.display());
        for datasource in datasource_uids(&dashboard) {
            assert!(
                matches!(datasource.as_str(), "prometheus" | "loki" | "-- Grafana --" | "grafana"),
                "{} refers to unknown datasource uid {datasource}",
                path.display()
            );
        }
    }
    let datasources = std::fs::read_to_string(deployment.rendered_dir().join("grafana/provisioning/datasources/datasources.yaml"))
        .expect("datasources.yaml");
    assert!(datasources.contains("uid: prometheus") || datasources.contains("\"prometheus\""), "{datasources}");
}

/// Every `datasource.uid` anywhere in a dashboard.
fn datasource_uids(value: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            if let Some(uid) = map.get("datasource").and_then(|d| d.get("uid")).and_then(|u| u.as_str()) {
                found.push(uid.to_owned());
            }
            for child in map.values() {
                found.extend(datasource_uids(child));
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| found.extend(datasource_uids(item))),
        _ => {}
    }
    found
}

#[test]
fn loki_and_promtail_configs_parse_as_yaml_with_their_key_sections() {
    // No Loki or Promtail binary can be installed here to run `-verify-config`; the YAML and its top-level
    // sections are checked instead, and the README says so.
    let deployment = Deployment::rendered(&["--mau", "100k"]);
    let check = |relative: &str, sections: &[&str]| {
        let path = deployment.rendered_dir().join(relative);
        let text = std::fs::read_to_string(&path).expect(relative);
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{relative} is not YAML: {error}"));
        for section in sections {
            assert!(value.get(section).is_some(), "{relative} has no `{section}` section");
        }
    };
    check("loki/loki.yaml", &["server", "common", "schema_config", "limits_config", "compactor"]);
    check("promtail/promtail.yaml", &["server", "positions", "clients", "scrape_configs"]);
    assert!(Path::new(&deployment.rendered_dir().join("promtail/promtail.yaml")).is_file());
}
