//! Deployment folders for the end-to-end tests: a 10k compose spec pointed at the stand-in images, cut down
//! to what this 2-core machine and the stand-ins can run, and a guard that destroys the deployment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use cometctl::domain::ServiceKey;
use cometctl::spec::{ImageRef, Port, Spec};

use crate::support::{Run, cometctl};

/// One end-to-end test at a time: they publish ports and need the host's CPUs.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// The stand-in images by spec key (`redis`, `tidb`, `kafka`, `nginx`), built once per test process.
pub fn stand_ins() -> &'static HashMap<String, String> {
    static IMAGES: OnceLock<HashMap<String, String>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let script = repository_root().join("tests/images/build.sh");
        let output = Command::new("bash").arg(&script).output().expect("bash runs tests/images/build.sh");
        assert!(output.status.success(), "tests/images/build.sh failed:\n{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, reference)| (key.trim().to_owned(), reference.trim().to_owned()))
            .collect()
    })
}

pub fn docker(args: &[&str]) -> (i32, String, String) {
    let output = Command::new("docker").args(args).output().expect("the docker CLI runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A deployment folder; destroys the deployment (volumes included) when dropped, passed or not.
pub struct Deployment {
    pub name: String,
    pub dir: PathBuf,
    pub root: tempfile::TempDir,
    pub https_port: u16,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.run(&["destroy", "--volumes", "--secrets", "--yes"]);
        // The comet-server images this deployment built (tags start with its name): 180 MB each in debug.
        let filter = format!("reference=*/*/comet-server:{}-*", self.name);
        let (_, images, _) = docker(&["images", "-q", "--filter", &filter]);
        for image in images.lines().filter(|line| !line.is_empty()) {
            let _ = docker(&["rmi", "-f", image]);
        }
    }
}

impl Deployment {
    /// `init --mau 10k --target compose`, then the spec is edited as an operator would for this machine.
    pub fn new(name: &str, http_port: u16, https_port: u16) -> Deployment {
        let root = tempfile::tempdir().expect("temporary folder");
        let dir = root.path().join(name);
        let dir_text = dir.to_string_lossy().into_owned();
        cometctl(root.path(), &["init", "--dir", &dir_text, "--mau", "10k", "--target", "compose", "--name", name])
            .success();
        let deployment = Deployment { name: name.to_owned(), dir, root, https_port };
        // A run killed before its guard dropped (the machine restarted mid-test) leaves its containers behind under
        // this same project name, and this run would then find a deployment where it expects none. Destroying by
        // name first makes every run start from nothing; on a clean engine it finds nothing to do.
        deployment.run(&["destroy", "--volumes", "--secrets", "--yes"]).success();
        deployment.edit(|spec| {
            let images = stand_ins();
            for key in ["redis", "tidb", "kafka", "nginx"] {
                let reference = images.get(key).unwrap_or_else(|| panic!("build.sh printed no `{key}` image"));
                *spec.images.get_mut(key).expect("image key") = ImageRef::parse(reference).expect("tagged");
            }
            // A tag of this test's own: other tests build, save and remove comet-server images too.
            spec.images.comet.tag = format!("{name}-0.1");
            spec.observability.prometheus = false;
            spec.observability.grafana = false;
            spec.observability.loki = false;
            spec.edge.http_port = Port::new(http_port).expect("a port");
            spec.edge.https_port = Port::new(https_port).expect("a port");
            // This machine's Docker daemon allows 20,000 open files per process; containers cannot exceed it.
            spec.host.nofile = 16_384;
            // The load generator of the upgrade test sends from one address.
            spec.edge.rate_limit_per_second = 1000;
            spec.edge.rate_limit_burst = 1000;
            let plan = &mut spec.plan;
            // Standalone TiDB (its stand-in is MariaDB), one broker (tansu), no MongoDB.
            for (key, replicas) in [
                (ServiceKey::Pd, 0),
                (ServiceKey::Tikv, 0),
                (ServiceKey::Mongodb, 0),
                (ServiceKey::Tidb, 1),
                (ServiceKey::Kafka, 1),
            ] {
                plan.services.get_mut(&key).expect("planned").replicas = replicas;
            }
            plan.stores.kafka.replication_factor = 1;
            plan.stores.kafka.min_insync_replicas = 1;
            plan.stores.kafka.partitions = 3;
            // A 2-core machine: no container may be limited to more CPUs than the host has.
            for service in plan.services.values_mut() {
                service.cpu_millis.limit = service.cpu_millis.limit.min(2000);
                service.cpu_millis.request = service.cpu_millis.request.min(service.cpu_millis.limit);
            }
        });
        deployment
    }

    /// Reads the spec, changes it and writes it back.
    pub fn edit(&self, change: impl FnOnce(&mut Spec)) {
        let path = self.dir.join("cometctl.yaml");
        let text = std::fs::read_to_string(&path).expect("spec");
        let mut spec = cometctl::spec::parse(&path.display().to_string(), &text).expect("valid spec");
        change(&mut spec);
        std::fs::write(&path, cometctl::spec::to_yaml(&spec).expect("spec as YAML")).expect("write spec");
    }

    pub fn spec(&self) -> Spec {
        let path = self.dir.join("cometctl.yaml");
        cometctl::spec::parse(&path.display().to_string(), &std::fs::read_to_string(&path).expect("spec"))
            .expect("valid spec")
    }

    /// Runs cometctl with `--dir` this deployment.
    pub fn run(&self, args: &[&str]) -> Run {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--dir", dir.as_str()]);
        cometctl(self.root.path(), &all)
    }

    /// Removes the comet-server image of the spec from the Engine, if it is there.
    pub fn remove_comet_image(&self) {
        let reference = self.spec().images.comet.reference();
        let _ = docker(&["rmi", "-f", &reference]);
    }

    /// Builds the comet-server image tagged `version` from the comet-server beside this cometctl.
    pub fn build_comet(&self, version: &str) {
        self.run(&["images", "build", "--version", version]).success();
    }

    /// `status --output json`, as JSON.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.run(&["status", "--output", "json"]).success().stdout).expect("status JSON")
    }

    /// The id of each container of the deployment, by name, with its running state.
    pub fn containers(&self) -> Vec<(String, String, bool)> {
        let filter = format!("label=io.comet.deployment={}", self.name);
        let (code, stdout, stderr) =
            docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}} {{.ID}} {{.State}}"]);
        assert_eq!(code, 0, "{stderr}");
        let mut rows: Vec<(String, String, bool)> = stdout
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                Some((parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()? == "running"))
            })
            .collect();
        rows.sort();
        rows
    }
}

/// Asserts that every service of `status` runs all its containers and those with a health check are
/// healthy; jobs (migrate) are exited and left out.
pub fn assert_all_healthy(status: &serde_json::Value) {
    let services = status["services"].as_array().expect("services");
    assert!(!services.is_empty(), "{status}");
    for service in services {
        let name = service["service"].as_str().unwrap_or_default();
        if name == "migrate" {
            continue;
        }
        assert_eq!(service["running"], service["containers"], "{name} is not fully running: {status}");
        assert_eq!(service["unhealthy"], 0, "{name} is unhealthy: {status}");
        assert_eq!(service["healthy"], service["running"], "{name} is not healthy: {status}");
    }
}

/// A deliberately broken comet-server: its `migrate` succeeds (and does nothing), its roles run but never
/// answer the health check. Built from C with the host's gcc, packaged by `cometctl images build`.
const BROKEN_COMET_SERVER: &str = r#"
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "migrate") == 0) return 0;
    if (argc > 1 && strcmp(argv[1], "health") == 0) return 1;
    for (;;) pause();
}
"#;

pub fn build_broken_comet(deployment: &Deployment, version: &str) {
    let source = deployment.root.path().join("broken-comet-server.c");
    let binary = deployment.root.path().join("broken-comet-server");
    std::fs::write(&source, BROKEN_COMET_SERVER).expect("write the C source");
    let status = Command::new("gcc").arg("-O1").arg("-o").arg(&binary).arg(&source).status().expect("gcc runs");
    assert!(status.success(), "gcc failed");
    let binary = binary.to_string_lossy().into_owned();
    deployment.run(&["images", "build", "--version", version, "--binary", &binary]).success();
}
