//! `cometctl backup --only config`, `backup list` and `backup verify` on a deployment folder (no Docker needed
//! for this part; the database part is tested end to end in tests/deploy): what a set holds, that it opens
//! only with the deployment's key, and that a changed, cut or interrupted set is never taken for a good one.

use std::io::BufReader;
use std::path::Path;

use cometctl::backup::crypt::{self, BackupKey};
use serde_json::Value;

use crate::support::{cometctl, init, workspace};

fn set_dir(dir: &Path, id: &str) -> std::path::PathBuf {
    dir.join("backups").join(id)
}

fn key_of(dir: &Path) -> BackupKey {
    BackupKey::from_hex(&std::fs::read_to_string(dir.join("secrets/backup.key")).expect("the key")).expect("hex")
}

/// The names inside the set's config part, decrypted with `key`.
fn archived_names(part: &Path, key: &BackupKey) -> Vec<String> {
    let mut plain = Vec::new();
    crypt::decrypt(&mut BufReader::new(std::fs::File::open(part).expect("part")), key, &mut plain).expect("opens");
    let mut archive = tar::Archive::new(plain.as_slice());
    archive
        .entries()
        .expect("a tar")
        .map(|entry| entry.expect("entry").path().expect("path").to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_config_backup_holds_the_folder_but_its_key_and_verifies_until_touched() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let dir_text = dir.to_string_lossy().into_owned();
    let run = cometctl(root.path(), &["backup", "--dir", &dir_text, "--only", "config", "--output", "json"]).success();
    assert!(run.stderr.contains("keep a copy outside this host"), "the new key is announced: {}", run.stderr);
    let manifest: Value = serde_json::from_str(&run.stdout).expect("the manifest on stdout");
    let id = manifest["id"].as_str().expect("an id").to_owned();
    assert_eq!(manifest["parts"][0]["name"], "config");
    let skipped: Vec<&str> = manifest["skipped"]
        .as_array()
        .map_or(vec![], |list| list.iter().filter_map(|item| item["name"].as_str()).collect());
    assert!(skipped.is_empty(), "--only config asks for nothing else: {skipped:?}");

    let key = key_of(&dir);
    let names = archived_names(&set_dir(&dir, &id).join("config.tar.enc"), &key);
    for expected in ["cometctl.yaml", "secrets/api_key", "secrets/db_password", "tls/cert.pem", "tls/key.pem"] {
        assert!(names.iter().any(|name| name == expected), "{expected} is in the set: {names:?}");
    }
    assert!(!names.iter().any(|name| name.contains("backup.key")), "the key never goes into its own backup");
    assert_eq!(manifest["parts"][0]["items"]["files"], names.len(), "the manifest counts what is there");
    let stored = std::fs::read(set_dir(&dir, &id).join("config.tar.enc")).expect("part");
    let secret = std::fs::read_to_string(dir.join("secrets/api_key")).expect("secret");
    assert!(!String::from_utf8_lossy(&stored).contains(secret.trim()), "parts are encrypted at rest");

    let listed = cometctl(root.path(), &["backup", "list", "--dir", &dir_text, "--output", "json"]).success();
    let listed: Value = serde_json::from_str(&listed.stdout).expect("json");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["complete"], true);

    let verified = cometctl(root.path(), &["backup", "verify", &id, "--dir", &dir_text]);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    assert!(verified.stdout.contains("verified"), "{}", verified.stdout);

    // One changed byte in the part: verify fails and names it.
    let mut changed = stored.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x40;
    std::fs::write(set_dir(&dir, &id).join("config.tar.enc"), &changed).expect("tamper");
    let refused = cometctl(root.path(), &["backup", "verify", &id, "--dir", &dir_text, "--output", "json"]);
    assert_eq!(refused.code, 3, "{}\n{}", refused.stdout, refused.stderr);
    let report: Value = serde_json::from_str(&refused.stdout).expect("json");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|check| check["ok"] == false)
        .filter_map(|check| check["part"].as_str())
        .collect();
    assert_eq!(failed, ["config"], "{report}");

    // A manifest rewritten to match the changed part: its MAC no longer matches.
    let manifest_path = set_dir(&dir, &id).join("manifest.json");
    let mut rewritten: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("read")).expect("json");
    let digest = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&changed).iter().map(|byte| format!("{byte:02x}")).collect::<String>()
    };
    rewritten["parts"][0]["sha256"] = Value::from(digest);
    std::fs::write(&manifest_path, rewritten.to_string()).expect("rewrite");
    let refused = cometctl(root.path(), &["backup", "verify", &id, "--dir", &dir_text]);
    assert_eq!(refused.code, 3, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stdout.contains("MAC does not match"), "{}", refused.stdout);

    // Another deployment's key opens nothing.
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).expect("json")).expect("restore the manifest");
    std::fs::write(set_dir(&dir, &id).join("config.tar.enc"), &stored).expect("restore the part");
    std::fs::write(dir.join("secrets/backup.key"), BackupKey::generate().expect("key").to_hex()).expect("other key");
    let refused = cometctl(root.path(), &["backup", "verify", &id, "--dir", &dir_text]);
    assert_eq!(refused.code, 3, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stdout.contains("not this deployment's key"), "{}", refused.stdout);
}

#[test]
fn an_interrupted_set_is_listed_as_incomplete_and_bad_requests_change_nothing() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let dir_text = dir.to_string_lossy().into_owned();
    std::fs::create_dir_all(dir.join("backups/20261207T000000Z.partial")).expect("an interrupted set");
    let listed = cometctl(root.path(), &["backup", "list", "--dir", &dir_text, "--output", "json"]).success();
    let listed: Value = serde_json::from_str(&listed.stdout).expect("json");
    assert_eq!(listed[0]["complete"], false, "{listed}");

    let unknown = cometctl(root.path(), &["backup", "--dir", &dir_text, "--only", "tidb,floppy"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("floppy"), "{}", unknown.stderr);
    let missing = cometctl(root.path(), &["backup", "verify", "20990101T000000Z", "--dir", &dir_text]);
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("no backup set 20990101T000000Z"), "{}", missing.stderr);
    // The database part needs a running deployment: without one the backup fails and leaves no set behind.
    let no_deployment = cometctl(root.path(), &["backup", "--dir", &dir_text, "--only", "tidb,config"]);
    assert_ne!(no_deployment.code, 0, "{}", no_deployment.stdout);
    let entries = std::fs::read_dir(dir.join("backups")).expect("backups").count();
    assert_eq!(entries, 1, "refused and failed requests wrote no set");

    // A cometctl.yaml that does not parse is named, never replaced by a default target.
    std::fs::write(dir.join("cometctl.yaml"), "backup: [\n").expect("break the spec");
    let broken = cometctl(root.path(), &["backup", "list", "--dir", &dir_text]);
    assert_eq!(broken.code, 2, "{}\n{}", broken.stdout, broken.stderr);
    assert!(broken.stderr.contains("cometctl.yaml"), "{}", broken.stderr);
}

#[test]
fn a_config_part_restores_a_folder_on_a_new_host_and_never_overwrites_silently() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let dir_text = dir.to_string_lossy().into_owned();
    let run = cometctl(root.path(), &["backup", "--dir", &dir_text, "--only", "config", "--output", "json"]).success();
    let id = serde_json::from_str::<Value>(&run.stdout).expect("json")["id"].as_str().expect("id").to_owned();
    let backups = dir.join("backups").to_string_lossy().into_owned();

    // A new host: an empty folder with only the key the operator kept.
    let fresh = root.path().join("fresh");
    let fresh_text = fresh.to_string_lossy().into_owned();
    let no_key = cometctl(root.path(), &["restore", &id, "--from", &backups, "--dir", &fresh_text]);
    assert_eq!(no_key.code, 2, "{}", no_key.stderr);
    assert!(no_key.stderr.contains("no backup key"), "{}", no_key.stderr);
    std::fs::create_dir_all(fresh.join("secrets")).expect("secrets");
    std::fs::copy(dir.join("secrets/backup.key"), fresh.join("secrets/backup.key")).expect("the kept key");
    let restored =
        cometctl(root.path(), &["restore", &id, "--from", &backups, "--dir", &fresh_text, "--only", "config"])
            .success();
    assert!(restored.stdout.contains("restored config"), "{}", restored.stdout);
    for file in ["cometctl.yaml", "secrets/api_key", "secrets/db_password", "tls/cert.pem", "tls/key.pem"] {
        assert_eq!(std::fs::read(fresh.join(file)).expect(file), std::fs::read(dir.join(file)).expect(file), "{file}");
    }
    let history = std::fs::read_to_string(fresh.join("history.jsonl")).expect("history");
    assert!(history.contains("\"action\":\"restore\""), "{history}");

    // A file that differs is never overwritten without --yes, and nothing is written then.
    let spec = std::fs::read_to_string(fresh.join("cometctl.yaml")).expect("spec");
    std::fs::write(fresh.join("cometctl.yaml"), format!("{spec}# an operator's edit\n")).expect("edit");
    let refused = cometctl(root.path(), &["restore", &id, "--from", &backups, "--dir", &fresh_text]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("cometctl.yaml") && refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(std::fs::read_to_string(fresh.join("cometctl.yaml")).expect("spec").ends_with("# an operator's edit\n"));
    cometctl(root.path(), &["restore", &id, "--from", &backups, "--dir", &fresh_text, "--yes"]).success();
    assert_eq!(std::fs::read_to_string(fresh.join("cometctl.yaml")).expect("spec"), spec);

    // A set that does not verify restores nothing.
    let part = set_dir(&dir, &id).join("config.tar.enc");
    let mut bytes = std::fs::read(&part).expect("part");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&part, bytes).expect("tamper");
    std::fs::write(fresh.join("cometctl.yaml"), "changed").expect("edit");
    let refused = cometctl(root.path(), &["restore", &id, "--from", &backups, "--dir", &fresh_text, "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("does not verify"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(fresh.join("cometctl.yaml")).expect("spec"), "changed", "nothing restored");
}

#[test]
fn prune_shows_what_goes_and_deletes_only_with_yes() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let dir_text = dir.to_string_lossy().into_owned();
    let run = cometctl(root.path(), &["backup", "--dir", &dir_text, "--only", "config", "--output", "json"]).success();
    let newest = serde_json::from_str::<Value>(&run.stdout).expect("json")["id"].as_str().expect("id").to_owned();
    // Older sets, copies of the real one under older ids, and an interrupted one.
    for old in ["20250101T030000Z", "20250102T030000Z", "20250102T150000Z"] {
        let target = set_dir(&dir, old);
        std::fs::create_dir_all(&target).expect("set");
        for file in ["manifest.json", "config.tar.enc"] {
            std::fs::copy(set_dir(&dir, &newest).join(file), target.join(file)).expect("copy");
        }
    }
    std::fs::create_dir_all(dir.join("backups/20250103T000000Z.partial")).expect("interrupted");
    let args =
        ["backup", "prune", "--dir", &dir_text, "--keep-daily", "2", "--keep-weekly", "0", "--keep-monthly", "0"];
    let shown = cometctl(root.path(), &[&args[..], &["--output", "json"]].concat()).success();
    let plan: Value = serde_json::from_str(&shown.stdout).expect("json");
    let going: Vec<&str> = plan
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|decision| decision["keep"] == false)
        .filter_map(|decision| decision["id"].as_str())
        .collect();
    assert_eq!(going, ["20250103T000000Z", "20250102T030000Z", "20250101T030000Z"], "{plan}");
    assert_eq!(std::fs::read_dir(dir.join("backups")).expect("backups").count(), 5, "nothing deleted without --yes");
    cometctl(root.path(), &[&args[..], &["--yes"]].concat()).success();
    let mut left: Vec<String> = std::fs::read_dir(dir.join("backups"))
        .expect("backups")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["20250102T150000Z".to_owned(), newest], "the newest of each of two days");
}

/// A bucket of its own on the test S3 store, and the variables cometctl reads to reach it.
fn test_bucket() -> (String, Vec<(&'static str, String)>, rusty_s3::Bucket, rusty_s3::Credentials) {
    let (url, key, secret) = comet_testkit::s3();
    comet_testkit::require_s3(&url);
    let name = format!("cometctl-{}", std::process::id())
        + &format!(
            "-{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").subsec_nanos()
        );
    let bucket = rusty_s3::Bucket::new(url.parse().expect("url"), rusty_s3::UrlStyle::Path, name.clone(), "us-east-1")
        .expect("bucket");
    let credentials = rusty_s3::Credentials::new(key.clone(), secret.clone());
    let create = rusty_s3::actions::CreateBucket::new(&bucket, &credentials);
    use rusty_s3::S3Action as _;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime
        .block_on(reqwest::Client::new().put(create.sign(std::time::Duration::from_secs(60))).send())
        .expect("create bucket")
        .status();
    assert!(status.is_success(), "creating bucket {name}: {status}");
    let vars = vec![
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_ENDPOINT_URL", url),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    (name, vars, bucket, credentials)
}

fn put_object(bucket: &rusty_s3::Bucket, credentials: &rusty_s3::Credentials, key: &str, bytes: Vec<u8>) {
    use rusty_s3::S3Action as _;
    let url = bucket.put_object(Some(credentials), key).sign(std::time::Duration::from_secs(60));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime.block_on(reqwest::Client::new().put(url).body(bytes).send()).expect("put").status();
    assert!(status.is_success(), "PUT {key}: {status}");
}

#[test]
fn a_set_on_s3_lists_verifies_restores_and_a_changed_object_fails_verify() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let dir_text = dir.to_string_lossy().into_owned();
    let (name, vars, bucket, credentials) = test_bucket();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let target = format!("s3://{name}/prod/eu");
    let run = |args: &[&str]| crate::support::cometctl_with(root.path(), args, &vars);

    let taken = run(&["backup", "--dir", &dir_text, "--only", "config", "--to", &target, "--output", "json"]).success();
    let manifest: Value = serde_json::from_str(&taken.stdout).expect("the manifest");
    let id = manifest["id"].as_str().expect("id").to_owned();
    assert!(!dir.join("backups").exists(), "nothing was written locally");

    // An interrupted set: a part without its manifest.
    put_object(&bucket, &credentials, "prod/eu/20000101T000000Z/config.tar.enc", b"cut short".to_vec());
    let listed = run(&["backup", "list", "--dir", &dir_text, "--from", &target, "--output", "json"]).success();
    let listed: Value = serde_json::from_str(&listed.stdout).expect("json");
    let sets: Vec<(&str, bool)> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|set| (set["id"].as_str().unwrap_or_default(), set["complete"].as_bool().unwrap_or(true)))
        .collect();
    assert_eq!(sets, [("20000101T000000Z", false), (id.as_str(), true)], "{listed}");

    let verified = run(&["backup", "verify", &id, "--dir", &dir_text, "--from", &target]).success();
    assert!(verified.stdout.contains("config"), "{}", verified.stdout);

    // The set restores into a new host's folder that has only the kept key.
    let fresh = root.path().join("new-host");
    std::fs::create_dir_all(fresh.join("secrets")).expect("folder");
    std::fs::copy(dir.join("secrets/backup.key"), fresh.join("secrets/backup.key")).expect("the kept key");
    let fresh_text = fresh.to_string_lossy().into_owned();
    run(&["restore", &id, "--only", "config", "--from", &target, "--dir", &fresh_text]).success();
    assert_eq!(
        std::fs::read(fresh.join("cometctl.yaml")).expect("restored spec"),
        std::fs::read(dir.join("cometctl.yaml")).expect("spec")
    );

    // A part changed in the bucket fails verify (exit 3), naming it.
    put_object(&bucket, &credentials, &format!("prod/eu/{id}/config.tar.enc"), b"not what was written".to_vec());
    let changed = run(&["backup", "verify", &id, "--dir", &dir_text, "--from", &target]);
    assert_eq!(changed.code, 3, "{}\n{}", changed.stdout, changed.stderr);
    assert!(changed.stdout.contains("config"), "{}", changed.stdout);

    // Without credentials nothing is attempted, and the error names the variables.
    let bare = cometctl(root.path(), &["backup", "list", "--dir", &dir_text, "--from", &target]);
    assert_eq!(bare.code, 2, "{}", bare.stderr);
    assert!(bare.stderr.contains("AWS_ACCESS_KEY_ID") && bare.stderr.contains("AWS_ENDPOINT_URL"), "{}", bare.stderr);
}

#[test]
fn a_part_larger_than_one_upload_goes_up_in_pieces_and_verifies() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let dir_text = dir.to_string_lossy().into_owned();
    // 20 MiB that does not compress: the config part is bigger than one 16 MiB upload.
    let mut blob = vec![0_u8; 20 * 1024 * 1024];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for byte in &mut blob {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = (state >> 24) as u8;
    }
    std::fs::create_dir_all(dir.join("rendered")).expect("rendered/");
    std::fs::write(dir.join("rendered/blob.bin"), &blob).expect("blob");
    let (name, vars, _bucket, _credentials) = test_bucket();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let target = format!("s3://{name}");
    let run = |args: &[&str]| crate::support::cometctl_with(root.path(), args, &vars);
    let taken = run(&["backup", "--dir", &dir_text, "--only", "config", "--to", &target, "--output", "json"]).success();
    let manifest: Value = serde_json::from_str(&taken.stdout).expect("the manifest");
    assert!(manifest["parts"][0]["bytes"].as_u64() > Some(20 * 1024 * 1024), "{manifest}");
    let id = manifest["id"].as_str().expect("id");
    let verified = run(&["backup", "verify", id, "--dir", &dir_text, "--from", &target, "--output", "json"]).success();
    let verification: Value = serde_json::from_str(&verified.stdout).expect("json");
    assert_eq!(verification["ok"], true, "{verification}");
}
