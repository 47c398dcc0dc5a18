use super::edit::with_scalar;
use super::*;
use crate::domain::Target;

fn sample_spec() -> Spec {
    sized_for_tests("100k", Target::Swarm)
}

#[test]
fn written_spec_parses_back_to_the_same_value() {
    let spec = sample_spec();
    let yaml = to_yaml(&spec).expect("yaml");
    let parsed = parse("cometctl.yaml", &yaml).expect("parses");
    assert_eq!(parsed, spec);
}

/// Replaces the first occurrence of `from` in the sample spec, parses, and returns the error text.
#[track_caller]
fn error_after(from: &str, to: &str) -> String {
    let yaml = to_yaml(&sample_spec()).expect("yaml");
    assert!(yaml.contains(from), "sample spec has no {from:?}");
    let broken = yaml.replacen(from, to, 1);
    match parse("cometctl.yaml", &broken) {
        Ok(_) => panic!("{from:?} -> {to:?} must be refused"),
        Err(error) => error.to_string(),
    }
}

#[track_caller]
fn check(from: &str, to: &str, location: &str, fragment: &str) {
    let message = error_after(from, to);
    assert!(message.starts_with(&format!("cometctl.yaml:{location}")), "location {location}: {message}");
    assert!(message.contains(fragment), "fragment {fragment:?}: {message}");
}

#[test]
fn bad_specs_name_file_line_column_and_the_problem() {
    let yaml = to_yaml(&sample_spec()).expect("yaml");
    let line_of =
        |needle: &str| yaml.lines().position(|line| line.starts_with(needle)).map(|index| index + 1).expect("line");
    let target_line = line_of("target:");
    let mau_line = line_of("mau:");
    let name_line = line_of("name:");
    // Wrong enum value, wrong type, unknown key, malformed YAML, invalid values checked after parsing.
    check("target: swarm", "target: nomad", &format!("{target_line}:"), "nomad");
    check("mau: 100000", "mau: lots", &format!("{mau_line}:"), "not a number");
    check("mau: 100000", "mau: -4", &format!("{mau_line}:"), "negative");
    check("name: comet", "name: Comet_Prod", &format!("{name_line}:"), "DNS label");
    check("target: swarm", "target: swarm\nreplicas: 3", &format!("{}:", target_line + 1), "replicas");
    check("domain: chat.example.com", "domain: [unclosed", "", "");
    check("  partitions: 24", "  partitions: 0", "", "partitions");
    check("  partitions: 24", "  partitions: many", "", "");
    check("version: 1", "version: 2", &format!("{}:1", line_of("version:")), "must be 1");
    check("    tag: v8.5.1", "    tag: latest", "", "explicit version tag");
    check("domain: chat.example.com", "domain: not a host", &format!("{}:1", line_of("domain:")), "host name");
    check("  cert_file: tls/cert.pem", "  cert_file: \"a: b\"", "", "relative path");
    check("  cert_file: tls/cert.pem", "  cert_file: ../outside.pem", "", "relative path");
    check("  key_file: tls/key.pem", "  key_file: /etc/key.pem", "", "relative path");
    check("  ingress_class: nginx", "  ingress_class: \"x: y\"", "", "IngressClass");
    check("  storage_class: \"\"", "  storage_class: \"fast #ssd\"", "", "StorageClass");
    check("  destination: backups", "  destination: \"x\\ny\"", "", "backup.destination");
    for (from, to) in [("  http_port: 80", "  http_port: 0"), ("  http_port: 80", "  http_port: 70000")] {
        check(from, to, &format!("{}:", line_of("  http_port:")), "use 1 to 65535");
    }
    check("  https_port: 443", "  https_port: -1", &format!("{}:", line_of("  https_port:")), "use 1 to 65535");
    check(
        "  https_port: 443",
        "  https_port: 80",
        &format!("{}:3", line_of("  https_port:")),
        "differ from edge.http_port",
    );
}

#[test]
fn published_ports_default_to_80_and_443_for_specs_written_before_them() {
    let spec = sample_spec();
    assert_eq!((spec.edge.http_port.get(), spec.edge.https_port.get()), (80, 443));
    let yaml = to_yaml(&spec).expect("yaml");
    assert!(yaml.contains("  http_port: 80\n  https_port: 443\n"), "init writes both ports:\n{yaml}");
    let older = yaml.replace("  http_port: 80\n", "").replace("  https_port: 443\n", "");
    assert_eq!(parse("cometctl.yaml", &older).expect("an older spec still loads"), spec);
    let moved =
        yaml.replace("  http_port: 80\n", "  http_port: 8080\n").replace("  https_port: 443\n", "  https_port: 8443\n");
    let parsed = parse("cometctl.yaml", &moved).expect("other ports");
    assert_eq!((parsed.edge.http_port.get(), parsed.edge.https_port.get()), (8080, 8443));
}

#[test]
fn semantic_errors_point_at_the_key() {
    let message = error_after("  partitions: 24", "  partitions: 0");
    let yaml = to_yaml(&sample_spec()).expect("yaml");
    let line = yaml.lines().position(|line| line.trim_start().starts_with("partitions:")).expect("line") + 1;
    assert!(message.starts_with(&format!("cometctl.yaml:{line}:")), "{message}");
}

#[test]
fn empty_and_non_mapping_documents_are_refused() {
    for text in ["", "just a string", "- a\n- b\n", "version: 1\n"] {
        assert!(parse("x.yaml", text).is_err(), "{text:?} must be refused");
    }
}

#[test]
fn an_image_change_keeps_every_other_line_and_the_operators_comments() {
    let spec = sized_for_tests("10k", Target::Compose);
    let written = to_yaml(&spec).expect("yaml");
    // The operator's own comments, one on its own line and one after the tag.
    let text = written.replacen("images:\n", "images:\n  # pinned by the platform team, ticket OPS-12\n", 1);
    let tag_line = text.lines().find(|line| line.trim_start().starts_with("tag:")).expect("a tag line");
    let text = text.replacen(tag_line, &format!("{tag_line}  # keep in step with staging"), 1);
    let mut next = spec.clone();
    next.images.comet = ImageRef::new("registry.local:5000/comet-server", "9.9.9");

    let edited = edited("cometctl.yaml", &text, &spec, &next).expect("edited in place");
    assert_eq!(parse("cometctl.yaml", &edited).expect("parses"), next);
    assert!(edited.contains("# pinned by the platform team, ticket OPS-12\n"), "{edited}");
    let changed: Vec<(&str, &str)> =
        text.lines().zip(edited.lines()).filter(|(before, after)| before != after).collect();
    assert_eq!(changed.len(), 2, "only the repository and the tag lines change: {changed:#?}");
    assert_eq!(text.lines().count(), edited.lines().count());
    assert!(edited.contains("tag: \"9.9.9\"  # keep in step with staging"), "{edited}");
}

#[test]
fn text_that_does_not_spell_the_keys_in_block_style_is_left_to_a_whole_write() {
    let spec = sized_for_tests("10k", Target::Compose);
    let mut next = spec.clone();
    next.images.comet.tag = "9.9.9".to_owned();
    assert_eq!(edited("cometctl.yaml", "version: 1\n", &spec, &next), None);
    assert_eq!(with_scalar("  tag: 1", 6, "\"2\"").as_deref(), Some("  tag: \"2\""));
    assert_eq!(with_scalar("  replicas: 1 # c", 11, "3").as_deref(), Some("  replicas: 3 # c"));
}

#[test]
fn a_plan_change_edits_only_the_changed_numbers() {
    let spec = sized_for_tests("10k", Target::Compose);
    let text = to_yaml(&spec).expect("yaml").replacen("plan:\n", "plan:\n  # sized with the platform team\n", 1);
    let mut next = spec.clone();
    next.mau = "50k".parse().expect("mau");
    if let Some(api) = next.plan.services.get_mut(&crate::domain::ServiceKey::Api) {
        api.replicas += 2;
        api.cpu_millis.limit += 500;
    }
    let edited = edited("cometctl.yaml", &text, &spec, &next).expect("edited in place");
    assert_eq!(parse("cometctl.yaml", &edited).expect("parses"), next);
    assert!(edited.contains("# sized with the platform team\n"), "{edited}");
    let changed = text.lines().zip(edited.lines()).filter(|(before, after)| before != after).count();
    assert_eq!(changed, 3, "mau, the api's replicas and its CPU limit");
    assert_eq!(differences(&spec, &next).len(), 3);
}

#[test]
fn integrations_default_to_none_and_bad_entries_are_located() {
    let spec = sample_spec();
    assert!(spec.integrations.allow_hosts.is_empty());
    assert_eq!(spec.integrations.moderation_custom_api.url, "");
    // A spec written before the section existed loads with the defaults.
    let yaml = to_yaml(&spec).expect("yaml");
    let start = yaml.find("\nintegrations:").expect("the section is written");
    let end = yaml[start + 1..].find("\n\n").map_or(yaml.len(), |offset| start + 1 + offset);
    let without = format!("{}{}", &yaml[..start], &yaml[end..]);
    assert!(!without.contains("integrations"), "{without}");
    assert_eq!(parse("cometctl.yaml", &without).expect("old spec"), spec);

    let line_of =
        |needle: &str| yaml.lines().position(|line| line.starts_with(needle)).map(|index| index + 1).expect(needle);
    let hosts = line_of("  allow_hosts:");
    for bad in ["10.0.0.0/33", "not a host", "fd00::/129", "http://hooks.internal"] {
        check("  allow_hosts: []", &format!("  allow_hosts: [\"{bad}\"]"), &format!("{hosts}:"), "allow_hosts[0]");
    }
    let url = line_of("    url:");
    check("    url: \"\"", "    url: ftp://moderation.internal", &format!("{url}:"), "http(s)://");
    check("    url: \"\"", "    url: https://user:pw@moderation.internal/check", &format!("{url}:"), "credentials");
    check("    username: \"\"", "    username: moderator", "", "needs the url");
    check("    timeout_ms: 2000", "    timeout_ms: 0", "", "1 to 15000");
    check("    timeout_ms: 2000", "    timeout_ms: 15001", "", "1 to 15000");

    // Good entries of every kind parse.
    let good = yaml
        .replacen("  allow_hosts: []", "  allow_hosts: [hooks.internal, 10.0.0.0/8, \"fd00::/8\", 192.168.1.7]", 1)
        .replacen("    url: \"\"", "    url: https://moderation.internal:8443/check?v=1", 1)
        .replacen("    username: \"\"", "    username: comet", 1);
    let parsed = parse("cometctl.yaml", &good).expect("good integrations");
    assert_eq!(parsed.integrations.allow_hosts.len(), 4);
    assert_eq!(parsed.integrations.moderation_custom_api.username, "comet");
}
