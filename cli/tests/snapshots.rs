//! Whole rendered trees as snapshots: a change to any template shows up as a reviewable diff.

use crate::support::{cometctl, init, tree, workspace};

fn rendered_snapshot(mau: &str, target: &str, extra: &[&str]) -> String {
    let root = workspace();
    let mut args = vec!["--mau", mau, "--target", target];
    args.extend_from_slice(extra);
    let dir = init(root.path(), &args);
    cometctl(&dir, &["render"]).success();
    let mut out = String::new();
    // Dashboards are large JSON checked on their own (validators::grafana_dashboards_*); leaving them out
    // keeps these snapshots readable as manifests.
    for (path, bytes) in
        tree(&dir.join("rendered")).into_iter().filter(|(path, _)| !path.starts_with("grafana/dashboards/"))
    {
        out.push_str(&format!("===== {path} =====\n"));
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    out
}

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(env!("CARGO_PKG_VERSION")), "[VERSION]");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\{c}") }).collect()
}

#[test]
fn rendered_10k_compose() {
    settings().bind(|| insta::assert_snapshot!("rendered_10k_compose", rendered_snapshot("10k", "compose", &[])));
}

#[test]
fn rendered_100k_swarm() {
    settings().bind(|| insta::assert_snapshot!("rendered_100k_swarm", rendered_snapshot("100k", "swarm", &[])));
}

#[test]
fn rendered_250k_k8s() {
    settings().bind(|| {
        insta::assert_snapshot!("rendered_250k_k8s", rendered_snapshot("250k", "k8s", &["--concurrency", "high"]))
    });
}
