//! What the alert and recording rules do, not only that promtool accepts them: promtool's rule unit tests
//! (tests/fixtures/alerts/*.test.yml) feed synthetic series to the rules cometctl renders and compare the
//! alerts that fire, with their labels and annotations. One fixture per flavour of the rules: Compose and
//! Swarm share rendered/prometheus/alerts.yml; Kubernetes embeds its own in the prometheus ConfigMap. Every
//! alert in the rendered rules must have a test in its fixture that makes it fire, so a new alert cannot
//! arrive untested.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Deployment, run_tool, tool, with_replicas, workspace};

/// The fixture folder, found from the crate rather than the working directory.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alerts").join(name)
}

#[test]
fn compose_and_swarm_alert_rules_pass_their_unit_tests() {
    // The fixture's spec: the 100k default, target swarm, deployment "comet".
    let deployment = Deployment::rendered(&["--mau", "100k"]);
    let prometheus = deployment.rendered_dir().join("prometheus");
    let rules = std::fs::read_to_string(prometheus.join("alerts.yml")).expect("read rendered prometheus/alerts.yml");
    check_rules("compose.test.yml", &rules, &prometheus);
}

#[test]
fn kubernetes_alert_rules_pass_their_unit_tests() {
    // The fixture's spec: the 100k default with target k8s, deployment "comet", and a three-member MongoDB (the
    // default plans deploy none), whose exporters bring the MongoDBDown alert.
    let deployment =
        Deployment::rendered_with(&["--mau", "100k", "--target", "k8s"], |spec| with_replicas(spec, "mongodb", 3));
    let rules = configmap_file(&deployment.rendered_dir().join("k8s/10-config.yaml"), "alerts.yml");
    let folder = workspace();
    std::fs::write(folder.path().join("alerts.yml"), &rules).expect("write alerts.yml from the ConfigMap");
    check_rules("k8s.test.yml", &rules, folder.path());
}

/// Checks that the fixture covers every alert of `rules`, then runs it with promtool in `folder`, which holds
/// the rules as `alerts.yml` (the name the fixtures' `rule_files` use).
#[track_caller]
fn check_rules(fixture_name: &str, rules: &str, folder: &Path) {
    let fixture_text = std::fs::read_to_string(fixture(fixture_name)).expect("read the alert test fixture");
    assert_every_alert_fires_in(fixture_name, &fixture_text, rules);

    std::fs::write(folder.join(fixture_name), &fixture_text).expect("copy the fixture next to alerts.yml");
    let promtool = tool("promtool", &["/usr/bin/promtool"]);
    let outcome = run_tool(&promtool, &["test", "rules", fixture_name], folder);
    assert!(
        outcome.success,
        "promtool test rules {fixture_name} failed against the rendered alerts.yml \
         (to debug: render as the fixture's header says and run promtool by hand):\n{}",
        outcome.output
    );
}

/// The text of `key` in the one ConfigMap of the multi-document manifest `path` that has it.
fn configmap_file(path: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(path).expect("read the k8s config manifest");
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()));
    let found: Vec<&str> = documents
        .iter()
        .filter(|document| document["kind"] == "ConfigMap")
        .filter_map(|document| document["data"][key].as_str())
        .collect();
    assert_eq!(found.len(), 1, "{}: expected one ConfigMap with the key {key}, found {}", path.display(), found.len());
    found[0].to_owned()
}

/// Fails unless every alert defined in `rules` has a test in the fixture that expects it to fire, and every
/// alert the fixture tests exists (a test of a renamed or removed alert would pass without testing anything).
#[track_caller]
fn assert_every_alert_fires_in(fixture_name: &str, fixture_text: &str, rules: &str) {
    let rules: Value = serde_saphyr::from_str(rules).expect("the rendered alerts.yml is YAML");
    let defined: BTreeSet<&str> = array(&rules["groups"])
        .iter()
        .flat_map(|group| array(&group["rules"]))
        .filter_map(|rule| rule["alert"].as_str())
        .collect();
    assert!(!defined.is_empty(), "no alert found in the rendered alerts.yml");

    let fixture: Value = serde_saphyr::from_str(fixture_text).expect("the alert test fixture is YAML");
    let tests: Vec<&Value> =
        array(&fixture["tests"]).iter().flat_map(|group| array(&group["alert_rule_test"])).collect();
    let tested: BTreeSet<&str> = tests.iter().filter_map(|test| test["alertname"].as_str()).collect();
    let fired: BTreeSet<&str> = tests
        .iter()
        .filter(|test| !array(&test["exp_alerts"]).is_empty())
        .filter_map(|test| test["alertname"].as_str())
        .collect();

    let untested: Vec<&str> = defined.difference(&fired).copied().collect();
    let unknown: Vec<&str> = tested.difference(&defined).copied().collect();
    assert!(
        untested.is_empty(),
        "alerts with no test that makes them fire in tests/fixtures/alerts/{fixture_name}: {untested:?}\n\
         add a test group with a series that fires each one and a healthy series that does not"
    );
    assert!(
        unknown.is_empty(),
        "tests/fixtures/alerts/{fixture_name} tests alerts that alerts.yml does not define: {unknown:?}"
    );
}

/// The items of a YAML sequence; nothing for a missing key.
fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}
