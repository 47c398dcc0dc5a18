//! Finding the binaries and tools under test, and running them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `cometctl` binary of this build: `target/<profile>/cometctl`, beside the `deps/` folder this test
/// binary lives in. `cargo test --workspace` builds it before any test runs.
pub fn cometctl_binary() -> PathBuf {
    let this = std::env::current_exe().expect("current_exe");
    let profile_dir = this.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("cometctl");
    assert!(
        binary.is_file(),
        "{} is missing: build it first (`cargo build -p cometctl`; `cargo test --workspace` does so)",
        binary.display()
    );
    binary
}

pub struct Outcome {
    pub success: bool,
    pub output: String,
}

/// Runs `program args` in `cwd`, stdout and stderr together.
pub fn run(program: &Path, args: &[&str], cwd: &Path) -> Outcome {
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
        let root = tempfile::tempdir().expect("temporary folder");
        let dir = root.path().join("deploy");
        let dir_text = dir.to_string_lossy().into_owned();
        let cometctl = cometctl_binary();
        let mut args = vec!["init", "--quiet", "--dir", dir_text.as_str()];
        args.extend_from_slice(init_args);
        let init = run(&cometctl, &args, root.path());
        assert!(init.success, "init failed: {}", init.output);
        let render = run(&cometctl, &["render", "--target", "all", "--dir", &dir_text], root.path());
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
