//! `cometctl scale` and `cometctl playbook` on deployment folders that run nowhere (the Docker Engine is
//! asked, and finds nothing of them): the plan diff and its confirmation, the playbooks shipped and their dry
//! runs, malformed playbooks, the lock, the journal, and resuming a run that failed or was killed. Runs
//! against a live deployment are in tests/deploy.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{cometctl, init, workspace};

/// A deployment folder whose name no other test deploys.
fn folder(root: &Path, mau: &str) -> (PathBuf, String) {
    let dir = init(root, &["--mau", mau, "--target", "compose", "--name", "playbook-test"]);
    let text = dir.to_string_lossy().into_owned();
    (dir, text)
}

fn journal_entries(dir: &Path) -> Vec<Value> {
    let journal = dir.join("journal");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&journal)
        .map(|entries| entries.filter_map(|entry| Some(entry.ok()?.path())).collect())
        .unwrap_or_default();
    runs.retain(|path| path.extension().is_some_and(|extension| extension == "jsonl"));
    runs.sort();
    let Some(last) = runs.last() else { return vec![] };
    std::fs::read_to_string(last)
        .expect("journal")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn ends_of(entries: &[Value], step: u64) -> Vec<&str> {
    entries
        .iter()
        .filter(|entry| entry["event"] == "end" && entry["step"] == step)
        .filter_map(|entry| entry["result"].as_str())
        .collect()
}

#[test]
fn scale_shows_the_plan_diff_and_changes_nothing_unconfirmed() {
    let root = workspace();
    let (dir, dir_text) = folder(root.path(), "10k");
    let before = std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec");

    let refused = cometctl(root.path(), &["scale", "api=3", "gateway=2", "--dir", &dir_text]);
    assert_eq!(refused.code, 2, "no terminal and no --yes: {}", refused.stderr);
    assert!(refused.stdout.contains("plan.services.api.replicas"), "the plan diff is shown: {}", refused.stdout);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec"), before, "nothing changed");

    for (args, expected) in [
        (vec!["scale", "tikv=5"], "store"),
        (vec!["scale", "api=none"], "SERVICE=REPLICAS"),
        (vec!["scale", "chat=2"], "not a service"),
        (vec!["scale", "api=0", "--yes"], "plan.services.api.replicas"),
        (vec!["scale"], "nothing to scale"),
    ] {
        let mut args = args;
        args.extend(["--dir", &dir_text]);
        let run = cometctl(root.path(), &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
    assert_eq!(std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec"), before, "nothing changed");

    let done = cometctl(root.path(), &["scale", "api=3", "--yes", "--dir", &dir_text]).success();
    assert!(done.stdout.contains("only cometctl.yaml changed"), "{}", done.stdout);
    let after = std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec");
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(old, new)| old != new).collect();
    assert_eq!(changed, [("      replicas: 1", "      replicas: 3")], "one line, edited in place");
    let again = cometctl(root.path(), &["scale", "api=3", "--dir", &dir_text]).success();
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
}

#[test]
fn a_redis_mode_change_is_a_migration_and_refused() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "150k", "--target", "k8s", "--name", "playbook-test"]);
    let dir_text = dir.to_string_lossy().into_owned();
    let run = cometctl(root.path(), &["scale", "--mau", "300k", "--yes", "--dir", &dir_text]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("migration, not a scale"), "{}", run.stderr);
}

#[test]
fn the_shipped_playbooks_list_show_and_dry_run() {
    let root = workspace();
    let (dir, dir_text) = folder(root.path(), "10k");
    let listed = cometctl(root.path(), &["playbook", "list", "--output", "json"]).success();
    let listed: Vec<Value> = serde_json::from_str(&listed.stdout).expect("json");
    let names: Vec<&str> = listed.iter().filter_map(|playbook| playbook["name"].as_str()).collect();
    for expected in
        ["grow", "rolling-restart", "troubleshoot-502", "troubleshoot-kafka-lag", "troubleshoot-redis-evictions"]
    {
        assert!(names.contains(&expected), "{expected} is shipped: {names:?}");
    }
    for playbook in &listed {
        assert!(playbook["steps"].as_array().is_some_and(|steps| !steps.is_empty()), "{playbook}");
        assert!(playbook["description"].as_str().is_some_and(|text| !text.is_empty()), "{playbook}");
    }
    let shown = cometctl(root.path(), &["playbook", "show", "grow"]).success();
    assert!(shown.stdout.contains("to (required)") && shown.stdout.contains("scale --mau ${to}"), "{}", shown.stdout);

    // A set for the restore drill to name (a dry run says which it would restore).
    cometctl(root.path(), &["backup", "--only", "config", "--dir", &dir_text]).success();
    let spec = std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec");
    for name in names {
        let mut args = vec!["playbook", "run", name, "--dry-run", "--dir", &dir_text];
        match name {
            "grow" => args.extend(["--input", "to=25k"]),
            "rolling-restart" => args.extend(["--input", "service=api"]),
            "rotate-secrets" => args.extend(["--input", "secret=api_key"]),
            "node-maintenance" => args.extend(["--input", "node=nowhere"]),
            _ => {}
        }
        let run = cometctl(root.path(), &args).success();
        assert!(run.stdout.contains("dry run"), "{name}: {}", run.stdout);
        let steps = listed
            .iter()
            .find(|playbook| playbook["name"] == name)
            .and_then(|p| p["steps"].as_array())
            .map_or(0, Vec::len);
        assert_eq!(run.stdout.matches("\nstep ").count(), steps, "{name} describes every step: {}", run.stdout);
        if name == "node-maintenance" {
            // No such node here (or no swarm): the node steps say why, the others are described.
            let why = ["no swarm node `nowhere`", "manages no swarm"];
            assert!(why.iter().any(|why| run.stdout.contains(why)), "{name}: {}", run.stdout);
        } else {
            assert!(!run.stdout.contains("cannot tell now"), "{name}: {}", run.stdout);
        }
    }
    let grow =
        cometctl(root.path(), &["playbook", "run", "grow", "--dry-run", "--input", "to=25k", "--dir", &dir_text])
            .success();
    assert!(grow.stdout.contains("mau: 10000 → 25000") || grow.stdout.contains("mau: 10k → 25k"), "{}", grow.stdout);
    assert_eq!(std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec"), spec, "a dry run changes nothing");
    assert!(!dir.join("journal").exists(), "a dry run keeps no journal");

    let missing = cometctl(root.path(), &["playbook", "run", "grow", "--dir", &dir_text]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("needs to: give --input to=VALUE"), "{}", missing.stderr);
    let unknown = cometctl(root.path(), &["playbook", "run", "grow", "--input", "too=1", "--dir", &dir_text]);
    assert!(unknown.code == 2 && unknown.stderr.contains("not an input"), "{}", unknown.stderr);
    let nothing = cometctl(root.path(), &["playbook", "run", "no-such", "--dir", &dir_text]);
    assert!(nothing.code == 2 && nothing.stderr.contains("cometctl knows: grow"), "{}", nothing.stderr);
}

#[test]
fn a_malformed_playbook_file_names_line_and_column_and_runs_nothing() {
    let root = workspace();
    let (dir, dir_text) = folder(root.path(), "10k");
    let file = root.path().join("broken.yaml");
    std::fs::write(
        &file,
        "name: broken\ndescription: d\nsteps:\n  - confirm: ok\n  - doctor: { only: [host.nofiles] }\n",
    )
    .expect("write");
    let file_text = file.to_string_lossy().into_owned();
    let run = cometctl(root.path(), &["playbook", "run", &file_text, "--yes", "--dir", &dir_text]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("{file_text}:5:")), "file:line:col: {}", run.stderr);
    assert!(!dir.join("journal").exists(), "nothing ran");
}

#[test]
fn a_failed_step_stops_the_run_and_resume_continues_from_it_after_the_fix() {
    let root = workspace();
    let (dir, dir_text) = folder(root.path(), "10k");
    let file = root.path().join("replicas.yaml");
    std::fs::write(
        &file,
        "name: replicas\ndescription: set the API's replicas\ninputs:\n  - { name: n, description: replicas }\nsteps:\n  \
         - pause: { for: 0s, reason: first }\n  - scale: { replicas: { api: \"${n}\" } }\n  - pause: { for: 0s, reason: last }\n",
    )
    .expect("write");
    let file_text = file.to_string_lossy().into_owned();
    let failed = cometctl(root.path(), &["playbook", "run", &file_text, "--input", "n=0", "--yes", "--dir", &dir_text]);
    assert_eq!(failed.code, 3, "a failed step exits 3: {}", failed.stderr);
    assert!(failed.stderr.contains("stopped at step 2/3") && failed.stderr.contains("--resume"), "{}", failed.stderr);
    assert!(!dir.join("journal/lock").exists(), "a run that ended releases the lock");
    let entries = journal_entries(&dir);
    assert_eq!(
        (ends_of(&entries, 1), ends_of(&entries, 2), ends_of(&entries, 3)),
        (vec!["ok"], vec!["failed"], vec![])
    );

    let resumed = cometctl(
        root.path(),
        &["playbook", "run", &file_text, "--resume", "--input", "n=2", "--yes", "--dir", &dir_text],
    )
    .success();
    assert!(resumed.stderr.contains("at step 2"), "{}", resumed.stderr);
    let entries = journal_entries(&dir);
    assert_eq!(ends_of(&entries, 1), ["ok"], "step 1 is not run again");
    assert_eq!((ends_of(&entries, 2), ends_of(&entries, 3)), (vec!["failed", "ok"], vec!["ok"]));
    let spec = std::fs::read_to_string(dir.join("cometctl.yaml")).expect("spec");
    assert!(spec.contains("  api:\n      replicas: 2"), "the fixed step scaled: {spec}");
    let finished = cometctl(root.path(), &["playbook", "run", &file_text, "--resume", "--dir", &dir_text]);
    assert!(finished.code == 2 && finished.stderr.contains("nothing to resume"), "{}", finished.stderr);
}

#[test]
fn a_killed_run_leaves_its_lock_which_refuses_a_second_run_until_forced_and_resumed() {
    let root = workspace();
    let (dir, dir_text) = folder(root.path(), "10k");
    let file = root.path().join("slow.yaml");
    std::fs::write(
        &file,
        "name: slow\ndescription: three pauses\ninputs:\n  - { name: wait, description: the middle pause }\nsteps:\n  \
         - pause: { for: 0s, reason: first }\n  - pause: { for: \"${wait}\", reason: middle }\n  - pause: { for: 0s, reason: last }\n",
    )
    .expect("write");
    let file_text = file.to_string_lossy().into_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cometctl"))
        .args(["playbook", "run", &file_text, "--input", "wait=10m", "--dir", &dir_text])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !journal_entries(&dir).iter().any(|entry| entry["event"] == "start" && entry["step"] == 2) {
        assert!(Instant::now() < deadline, "the run reached step 2");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(dir.join("journal/lock").exists(), "a killed run cannot release its lock");

    let refused = cometctl(root.path(), &["playbook", "run", &file_text, "--resume", "--dir", &dir_text]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("no longer runs on this host") && refused.stderr.contains("--force-unlock"),
        "{}",
        refused.stderr
    );
    let resumed = cometctl(
        root.path(),
        &["playbook", "run", &file_text, "--resume", "--force-unlock", "--input", "wait=0s", "--dir", &dir_text],
    )
    .success();
    assert!(resumed.stdout.contains("2 steps done"), "steps 2 and 3 ran: {}", resumed.stdout);
    let entries = journal_entries(&dir);
    assert_eq!(
        (ends_of(&entries, 1), ends_of(&entries, 2), ends_of(&entries, 3)),
        (vec!["ok"], vec!["ok"], vec!["ok"])
    );
    assert!(!dir.join("journal/lock").exists());
}

#[test]
fn bench_refuses_what_it_cannot_measure_before_it_begins() {
    let root = workspace();
    let (_dir, dir_text) = folder(root.path(), "10k");
    for (args, expected) in [
        (vec!["bench", "--rate", "1000"], "edge.rate_limit_per_second"),
        (vec!["bench", "--sockets", "1"], "edge.ws_connections_per_ip"),
        (vec!["bench", "--duration", "11m"], "--duration"),
        (vec!["bench", "--duration", "soon"], "duration"),
        (vec!["bench"], "deploy it first"),
    ] {
        let mut args = args;
        args.extend(["--dir", &dir_text]);
        let run = cometctl(root.path(), &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
}
