//! Issue #17, item 8: the rendered stacks against the CIS Docker Benchmark and the Kubernetes hardening checks,
//! judged by third-party tools: trivy's misconfiguration scan on every Kubernetes manifest set, compose-lint on
//! every compose.yaml and stack.yaml, hadolint on every Dockerfile of the repository (the image scan is in
//! `images`). The rule (docs/operations/security.md): no HIGH or CRITICAL finding on our own services, and every
//! other finding is listed on that page with its reason; a listed finding that no longer occurs fails too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Deployment, run_tool, tool};

/// Where the accepted findings are documented, relative to the repository root.
const SECURITY_DOC: &str = "docs/operations/security.md";

/// The services whose manifests are wholly ours: the comet-server roles and jobs, the NGINX edge, and on
/// Kubernetes the manifests of cometctl's own objects (named after their file, see `kubernetes_service`).
const OUR_SERVICES: &[&str] = &[
    "api",
    "gateway",
    "relay",
    "migrate",
    "moderation",
    "notifications",
    "webhooks",
    "nginx",
    "config",
    "secrets",
    "namespace",
    "network-policies",
    "ingress",
];

/// The deployments the scans cover: the Compose default, Kubernetes with MongoDB, and Redis Cluster.
fn deployments() -> Vec<(&'static str, Deployment)> {
    vec![
        ("10k", Deployment::rendered(&["--mau", "10k", "--target", "compose"])),
        (
            "250k with moderation",
            Deployment::rendered_with(&["--mau", "250k", "--target", "k8s"], crate::validators::with_moderation),
        ),
        ("1.5m", Deployment::rendered(&["--mau", "1.5m"])),
    ]
}

/// One finding of one tool, with the service it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    tool: &'static str,
    check: String,
    severity: String,
    /// The rendered file (`compose.yaml`, `stack.yaml`) or `k8s`.
    place: String,
    service: String,
    message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Finding { tool, check, severity, place, service, message } = self;
        write!(formatter, "{tool} {check} ({severity}) in {place}, service {service}: {message}")
    }
}

/// A row of the accepted-findings table.
#[derive(Debug)]
struct Accepted {
    tool: String,
    check: String,
    severity: String,
    places: BTreeSet<String>,
    services: BTreeSet<String>,
}

impl Accepted {
    fn covers(&self, finding: &Finding) -> bool {
        self.tool == finding.tool
            && self.check == finding.check
            && self.severity == finding.severity
            && self.places.contains(&finding.place)
            && self.services.contains(&finding.service)
    }
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_path_buf()
}

/// The accepted-findings table of docs/operations/security.md: every row under `## Accepted findings`.
fn accepted_findings() -> Vec<Accepted> {
    let text = std::fs::read_to_string(repository_root().join(SECURITY_DOC)).expect("read the security page");
    let section = text.split("\n## Accepted findings").nth(1).expect("the page has an `## Accepted findings` section");
    let list = |cell: &str| cell.split(',').map(|item| item.trim().trim_matches('`').to_owned()).collect();
    let rows: Vec<Accepted> = section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter(|line| line.starts_with('|') && !line.starts_with("|---") && !line.starts_with("| tool "))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert!(
                cells.len() >= 6,
                "{SECURITY_DOC}: a row needs tool, check, severity, where, services, reason: {line}"
            );
            assert!(!cells[5].is_empty(), "{SECURITY_DOC}: a row without a reason: {line}");
            Accepted {
                tool: cells[0].to_owned(),
                check: cells[1].to_owned(),
                severity: cells[2].to_lowercase(),
                places: list(cells[3]),
                services: list(cells[4]),
            }
        })
        .collect();
    assert!(!rows.is_empty(), "{SECURITY_DOC} lists no accepted finding");
    for row in &rows {
        if matches!(row.severity.as_str(), "high" | "critical") {
            let ours: Vec<&String> = row.services.iter().filter(|s| OUR_SERVICES.contains(&s.as_str())).collect();
            assert!(ours.is_empty(), "{SECURITY_DOC} accepts a {} finding on our own services {ours:?}", row.severity);
        }
    }
    rows
}

/// Applies the rule to everything `tool` found, against the table's rows for that tool.
#[track_caller]
fn assert_findings_follow_the_rule(tool: &str, findings: &[Finding]) {
    let accepted: Vec<Accepted> = accepted_findings().into_iter().filter(|row| row.tool == tool).collect();
    let problems = rule_problems(findings, &accepted);
    assert!(problems.is_empty(), "{tool}: {} problems:\n{}", problems.len(), problems.join("\n"));
}

/// What breaks the rule: a HIGH or CRITICAL finding on our own services (whatever the table says), a finding no
/// row covers, and a row's service that no finding matches any more.
fn rule_problems(findings: &[Finding], accepted: &[Accepted]) -> Vec<String> {
    let mut problems = Vec::new();
    for finding in findings {
        if matches!(finding.severity.as_str(), "high" | "critical") && OUR_SERVICES.contains(&finding.service.as_str())
        {
            problems.push(format!("on our own service (fix the template): {finding}"));
        } else if !accepted.iter().any(|row| row.covers(finding)) {
            problems.push(format!("not in {SECURITY_DOC} (fix the template, or add a row with the reason): {finding}"));
        }
    }
    for row in accepted {
        let stale: Vec<&String> = row
            .services
            .iter()
            .filter(|service| !findings.iter().any(|finding| &finding.service == *service && row.covers(finding)))
            .collect();
        if !stale.is_empty() {
            problems.push(format!(
                "{SECURITY_DOC} accepts {} {} ({}) for {stale:?}, which no longer have it: remove them from the row",
                row.tool, row.check, row.severity
            ));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// A compose service's name without its member number: `kafka-2` is `kafka`.
fn service_name(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((base, number)) if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) => base.to_owned(),
        _ => name.to_owned(),
    }
}

/// A Kubernetes manifest's service: its file name without the order prefix and extension.
fn kubernetes_service(target: &str) -> String {
    let file = Path::new(target).file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    match file.split_once('-') {
        Some((order, rest)) if order.chars().all(|c| c.is_ascii_digit()) => rest.to_owned(),
        _ => file,
    }
}

fn parse_json(what: &str, output: &str) -> Value {
    // The JSON document is the tool's stdout; anything it logs comes after it (stderr is appended).
    let start = output.find('{').unwrap_or_else(|| panic!("{what} printed no JSON:\n{output}"));
    let mut stream = serde_json::Deserializer::from_str(&output[start..]).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => value,
        _ => panic!("{what} printed no JSON document:\n{output}"),
    }
}

#[test]
fn compose_lint_finds_nothing_undocumented_in_compose_and_stack_files() {
    let compose_lint = tool("compose-lint", &["/opt/comet-tools/venv/bin/compose-lint"]);
    let mut findings = BTreeSet::new();
    for (tier, deployment) in deployments() {
        for file in ["compose.yaml", "stack.yaml"] {
            let outcome = run_tool(
                &compose_lint,
                &["check", "--format", "json", "--fail-on", "low", "--no-pager", file],
                &deployment.rendered_dir(),
            );
            let report = parse_json(&format!("compose-lint on the {tier} {file}"), &outcome.output);
            let errors = report["errors"].as_array().map_or(0, Vec::len);
            assert_eq!(errors, 0, "compose-lint could not read the {tier} {file}: {}", report["errors"]);
            for item in report["findings"].as_array().into_iter().flatten() {
                let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
                findings.insert(Finding {
                    tool: "compose-lint",
                    check: text("rule_id"),
                    severity: text("severity").to_lowercase(),
                    place: file.to_owned(),
                    service: service_name(&text("service")),
                    message: text("message"),
                });
            }
        }
    }
    assert!(!findings.is_empty(), "compose-lint reported nothing at all: is it the pinned version?");
    assert_findings_follow_the_rule("compose-lint", &findings.into_iter().collect::<Vec<_>>());
}

#[test]
fn trivy_finds_nothing_undocumented_in_the_kubernetes_manifests() {
    let trivy = tool("trivy", &["/opt/comet-tools/venv/bin/trivy"]);
    let rendered = deployments();
    // One scan per deployment, side by side: each takes a few seconds of one core.
    let reports: Vec<(&str, Value)> = std::thread::scope(|scope| {
        let scans: Vec<_> = rendered
            .iter()
            .map(|(tier, deployment)| {
                let trivy = &trivy;
                scope.spawn(move || {
                    let manifests = deployment.rendered_dir().join("k8s");
                    let outcome = run_tool(
                        trivy,
                        &["config", "--skip-check-update", "--quiet", "--format", "json", &manifests.to_string_lossy()],
                        &deployment.dir,
                    );
                    assert!(outcome.success, "trivy config failed on the {tier} manifests:\n{}", outcome.output);
                    (*tier, parse_json(&format!("trivy config on the {tier} manifests"), &outcome.output))
                })
            })
            .collect();
        scans.into_iter().map(|scan| scan.join().expect("a trivy scan")).collect()
    });
    let mut findings = BTreeSet::new();
    let mut scanned = 0;
    for (tier, report) in &reports {
        let results = report["Results"].as_array().unwrap_or_else(|| panic!("trivy: no Results for {tier}: {report}"));
        scanned += results.len();
        for result in results {
            let service = kubernetes_service(result["Target"].as_str().unwrap_or_default());
            for item in result["Misconfigurations"].as_array().into_iter().flatten() {
                let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
                findings.insert(Finding {
                    tool: "trivy",
                    check: text("ID"),
                    severity: text("Severity").to_lowercase(),
                    place: "k8s".to_owned(),
                    service: service.clone(),
                    message: text("Message"),
                });
            }
        }
    }
    assert!(scanned >= 15, "trivy scanned only {scanned} manifests");
    assert_findings_follow_the_rule("trivy", &findings.into_iter().collect::<Vec<_>>());
}

/// Every Dockerfile of the repository (none today: the comet-server image is assembled in Rust and the test
/// stand-ins are imported root filesystems), linted by hadolint; a warning or error fails.
#[test]
fn hadolint_passes_every_dockerfile_of_the_repository() {
    let hadolint = tool("hadolint", &["/opt/comet-tools/venv/bin/hadolint"]);
    let version = run_tool(&hadolint, &["--version"], &repository_root());
    assert!(version.success && version.output.contains("2.15"), "hadolint is not the pinned 2.15: {}", version.output);
    for dockerfile in dockerfiles(&repository_root()) {
        let outcome =
            run_tool(&hadolint, &["--failure-threshold", "warning", &dockerfile.to_string_lossy()], &repository_root());
        assert!(outcome.success, "hadolint refused {}:\n{}", dockerfile.display(), outcome.output);
    }
}

/// Files named `Dockerfile`, `Dockerfile.*` or `*.Dockerfile` below `root`, outside build output and VCS data.
fn dockerfiles(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                    pending.push(path);
                }
            } else if name == "Dockerfile" || name.starts_with("Dockerfile.") || name.ends_with(".Dockerfile") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_rule_catches_what_it_must() {
    // The checks above pass only if the rule works: a HIGH finding on a comet-server role is refused even when a
    // row would cover it, an unlisted finding is refused, and a listed one passes.
    let finding = |check: &str, severity: &str, service: &str| Finding {
        tool: "trivy",
        check: check.to_owned(),
        severity: severity.to_owned(),
        place: "k8s".to_owned(),
        service: service.to_owned(),
        message: String::new(),
    };
    let row = Accepted {
        tool: "trivy".to_owned(),
        check: "KSV-0014".to_owned(),
        severity: "high".to_owned(),
        places: ["k8s".to_owned()].into(),
        services: ["kafka".to_owned(), "api".to_owned()].into(),
    };
    assert!(row.covers(&finding("KSV-0014", "high", "kafka")));
    assert!(!row.covers(&finding("KSV-0014", "medium", "kafka")), "a changed severity needs a new look");
    assert!(!row.covers(&finding("KSV-0015", "high", "kafka")));
    assert_eq!(service_name("kafka-12"), "kafka");
    assert_eq!(service_name("redis-cluster-init"), "redis-cluster-init");
    assert_eq!(kubernetes_service("/x/rendered/k8s/12-network-policies.yaml"), "network-policies");
    let problems = rule_problems(&[finding("KSV-0014", "high", "api"), finding("KSV-9999", "low", "kafka")], &[row]);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("accepts trivy KSV-0014 (high) for [\"kafka\"]"), "stale row: {problems:#?}");
    assert!(problems[1].starts_with("not in") && problems[1].contains("KSV-9999"), "unlisted: {problems:#?}");
    assert!(problems[2].starts_with("on our own service") && problems[2].contains("api"), "ours: {problems:#?}");
}
