//! Bad input: every row must exit non-zero, name the problem, and leave nothing behind.

use crate::support::{cometctl, init, replicas_line, tree, with_replicas, workspace};

#[track_caller]
fn refused(args: &[&str], code: i32, fragment: &str) {
    let root = workspace();
    let run = cometctl(root.path(), args);
    assert_eq!(run.code, code, "{args:?}\nstderr: {}", run.stderr);
    assert!(run.stderr.contains(fragment), "{args:?}: {fragment:?} missing from stderr:\n{}", run.stderr);
    assert!(tree(root.path()).is_empty(), "{args:?} wrote files");
}

#[test]
fn bad_arguments() {
    // clap exits 2 for usage errors, as documented.
    refused(&["sizing", "--mau", "abc"], 2, "not a number");
    refused(&["sizing", "--mau", "-5"], 2, "negative");
    refused(&["sizing", "--mau", "0"], 2, "zero");
    refused(&["sizing", "--mau", "1.5"], 2, "whole number");
    refused(&["sizing", "--mau", "10x"], 2, "not a number");
    refused(&["sizing", "--mau", "999999999999999"], 2, "absurd");
    refused(&["sizing", "--mau", "6m"], 2, "split users across several deployments");
    refused(&["sizing", "--mau", "10k", "--target", "nomad"], 2, "nomad");
    refused(&["sizing", "--mau", "10k", "--concurrency", "lots"], 2, "baseline");
    refused(&["sizing", "--mau", "10k", "--concurrency", "150%"], 2, "at most 100");
    refused(&["sizing", "--mau", "10k", "--retention-days", "0"], 2, "at least 1 day");
    refused(&["init", "--mau", "10k", "--dir", "deploy", "--name", "Bad_Name"], 2, "DNS label");
    refused(&["init", "--mau", "10k", "--dir", "deploy", "--domain", "not a domain"], 2, "host name");
    refused(&["sizing"], 2, "--mau");
    refused(&["render", "--dir", "nowhere"], 2, "cometctl init");
    refused(&["launch"], 2, "unrecognized subcommand");
}

/// Edits the spec of a fresh deployment (10k, Swarm) and expects `render` to refuse with `fragment` at a
/// `cometctl.yaml:line:col` and to leave the folder as it was; returns the error output and the edited spec.
#[track_caller]
fn bad_spec(edit: impl Fn(&str) -> String, fragment: &str) -> (String, String) {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let spec_path = dir.join("cometctl.yaml");
    let original = std::fs::read_to_string(&spec_path).expect("spec");
    let edited = edit(&original);
    assert_ne!(edited, original, "the edit changed nothing");
    std::fs::write(&spec_path, &edited).expect("write spec");
    let before = tree(&dir);
    let run = cometctl(&dir, &["render"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(has_location(&run.stderr), "no cometctl.yaml:line:col in:\n{}", run.stderr);
    assert!(run.stderr.contains(fragment), "{fragment:?} missing from:\n{}", run.stderr);
    assert_eq!(tree(&dir), before, "a refused render changed the folder");
    (run.stderr, edited)
}

/// Whether `text` holds `cometctl.yaml:<line>:<col>:`.
fn has_location(text: &str) -> bool {
    text.match_indices("cometctl.yaml:").any(|(at, found)| {
        let mut parts = text[at + found.len()..].splitn(3, ':');
        let is_number =
            |part: Option<&str>| part.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        is_number(parts.next()) && is_number(parts.next())
    })
}

#[test]
fn bad_specs() {
    bad_spec(|s| s.replace("target: swarm", "target: nomad"), "unknown variant `nomad`");
    bad_spec(|s| s.replace("mau: 10000", "mau: lots"), "not a number");
    bad_spec(|s| s.replace("version: 1", "version: 1\nreplicas: 3"), "unknown field `replicas`");
    bad_spec(|s| s.replace("  prometheus: true", "  prometheus: maybe"), "boolean");
    bad_spec(|s| s.replace("domain: chat.example.com", "domain: [unclosed"), "cometctl.yaml:");
    bad_spec(|s| s.replace("      partitions: 12", "      partitions: 0"), "partitions` must be at least 1");
    bad_spec(|s| s.replace("      replication_factor: 3", "      replication_factor: 5"), "replication_factor");
    bad_spec(|s| s.replace("    tag: v8.5.1", "    tag: latest"), "explicit version tag");
    bad_spec(|s| s.replace("name: comet", "name: \"Comet!\""), "DNS label");
    bad_spec(|s| format!("{s}\n\t- broken: [\n"), "cometctl.yaml:");
    bad_spec(|_| "just a string\n".to_owned(), "expected");
    bad_spec(|s| s.replace("  https_port: 443", "  https_port: 80"), "must differ from edge.http_port");
    bad_spec(|s| s.replace("  http_port: 80", "  http_port: 65536"), "use 1 to 65535");
}

/// Plans that cannot run are refused at the `replicas` line to change, naming its path and the fix.
#[test]
fn plans_without_a_needed_service_are_refused() {
    for (edits, path, fix) in [
        (&[("pd", 0), ("tikv", 3)][..], "pd", "set tikv to 0 too for a standalone TiDB"),
        (&[("api", 0)][..], "api", "must be at least 1"),
        (&[("pd", 0), ("tikv", 0), ("tidb", 2)][..], "tidb", "must be 1 while pd and tikv are 0"),
    ] {
        let edit =
            |spec: &str| edits.iter().fold(spec.to_owned(), |spec, &(service, n)| with_replicas(&spec, service, n));
        let (stderr, spec) = bad_spec(edit, &format!("`plan.services.{path}.replicas` "));
        assert!(stderr.contains(fix), "{edits:?}: {fix:?} missing from:\n{stderr}");
        let line = replicas_line(&spec, path);
        assert!(stderr.contains(&format!("cometctl.yaml:{line}:7:")), "{edits:?}: not at line {line}:\n{stderr}");
    }
}

#[test]
fn broken_profile_and_templates_are_refused() {
    let root = workspace();
    std::fs::write(root.path().join("profile.yaml"), "name: x\nunknown: 1\n").expect("write");
    let run = cometctl(root.path(), &["sizing", "--mau", "10k", "--profile", "profile.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("profile.yaml"), "{}", run.stderr);

    let empty = root.path().join("empty-templates");
    std::fs::create_dir(&empty).expect("mkdir");
    let dir = init(root.path(), &["--mau", "10k"]);
    let run = cometctl(&dir, &["render", "--templates", &empty.to_string_lossy()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("holds no templates"), "{}", run.stderr);
}
