//! Helpers: a fresh temporary folder per test and a way to run cometctl in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, 0, "cometctl failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs cometctl with `args` in `cwd`, colour off and no inherited COMETCTL_ variables.
pub fn cometctl(cwd: &Path, args: &[&str]) -> Run {
    cometctl_with(cwd, args, &[])
}

/// `cometctl` with variables of its own set (and no inherited AWS_ ones).
pub fn cometctl_with(cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cometctl"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("COMETCTL_DIR")
        .env_remove("COMETCTL_TEMPLATES")
        .env("NO_COLOR", "1");
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL"] {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied());
    Run::from(command.output().expect("cometctl runs"))
}

/// A temporary folder that lives as long as the value.
pub fn workspace() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

/// `init` a deployment folder `deploy` inside `root` with extra arguments.
pub fn init(root: &Path, extra: &[&str]) -> PathBuf {
    let dir = root.join("deploy");
    let dir_text = dir.to_string_lossy().into_owned();
    let mut args = vec!["init", "--dir", dir_text.as_str()];
    args.extend_from_slice(extra);
    cometctl(root, &args).success();
    dir
}

/// Every file below `root` with its bytes, sorted by relative path.
pub fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("below root").to_string_lossy().into_owned();
                files.push((relative, std::fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

// Third-party validators and fully rendered deployments.

pub struct Outcome {
    pub success: bool,
    pub output: String,
}

/// Runs `program args` in `cwd`, stdout and stderr together.
pub fn run_tool(program: &Path, args: &[&str], cwd: &Path) -> Outcome {
    let output = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", program.display()));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Outcome { success: output.status.success(), output: text }
}

/// A third-party tool, found on PATH or at a documented place; a clear failure when it is absent.
pub fn tool(name: &str, extra_places: &[&str]) -> PathBuf {
    let from_env = std::env::var_os(format!("COMET_TOOL_{}", name.to_uppercase().replace('-', "_"))).map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    let places = from_env.into_iter().chain(extra_places.iter().map(PathBuf::from)).chain(on_path);
    for place in places {
        if place.is_file() {
            return place;
        }
    }
    panic!("validator `{name}` not found: run `bash .ci/install-tools.sh` (installs every validator the tests use)")
}

/// A deployment folder made by `cometctl init` with `init_args`, then `render --target all`.
pub struct Deployment {
    _root: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Deployment {
    pub fn rendered(init_args: &[&str]) -> Deployment {
        Deployment::rendered_with(init_args, |spec| spec.to_owned())
    }

    /// Like `rendered`, with the spec `init` wrote replaced by `edit(spec)` before the render.
    pub fn rendered_with(init_args: &[&str], edit: impl FnOnce(&str) -> String) -> Deployment {
        let root = tempfile::tempdir().expect("temporary folder");
        let dir = root.path().join("deploy");
        let dir_text = dir.to_string_lossy().into_owned();
        let cometctl = PathBuf::from(env!("CARGO_BIN_EXE_cometctl"));
        let mut args = vec!["init", "--quiet", "--dir", dir_text.as_str()];
        args.extend_from_slice(init_args);
        let init = run_tool(&cometctl, &args, root.path());
        assert!(init.success, "init failed: {}", init.output);
        let spec_path = dir.join("cometctl.yaml");
        let spec = std::fs::read_to_string(&spec_path).expect("read the spec");
        std::fs::write(&spec_path, edit(&spec)).expect("write the spec");
        let render = run_tool(&cometctl, &["render", "--target", "all", "--dir", &dir_text], root.path());
        assert!(render.success, "render failed: {}", render.output);
        Deployment { _root: root, dir }
    }

    pub fn rendered_dir(&self) -> PathBuf {
        self.dir.join("rendered")
    }

    /// Rendered files below `folder` (relative to rendered/) whose names end with `suffix`, sorted.
    pub fn files(&self, folder: &str, suffix: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.rendered_dir().join(folder)];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.to_string_lossy().ends_with(suffix) {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }
}

// Editing a spec the way an operator would, in the block layout `init` writes.

/// The 1-based line of `plan.services.<service>.replicas` in `spec`.
pub fn replicas_line(spec: &str, service: &str) -> usize {
    let key = format!("\n    {service}:\n      replicas: ");
    let at = spec.find(&key).unwrap_or_else(|| panic!("no plan.services.{service}.replicas in the spec"));
    spec[..at].lines().count() + 2
}

/// `spec` with `plan.services.<service>.replicas` set to `replicas`.
pub fn with_replicas(spec: &str, service: &str, replicas: u32) -> String {
    let line = replicas_line(spec, service);
    let mut lines: Vec<String> = spec.lines().map(str::to_owned).collect();
    lines[line - 1] = format!("      replicas: {replicas}");
    lines.join("\n") + "\n"
}

/// `spec` with Prometheus, Grafana and Loki turned off.
pub fn without_observability(spec: &str) -> String {
    let on = "observability:\n  prometheus: true\n  grafana: true\n  loki: true\n";
    assert!(spec.contains(on), "the spec does not turn every observability part on");
    spec.replace(on, "observability:\n  prometheus: false\n  grafana: false\n  loki: false\n")
}
