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
    let output = Command::new(env!("CARGO_BIN_EXE_cometctl"))
        .args(args)
        .current_dir(cwd)
        .env_remove("COMETCTL_DIR")
        .env_remove("COMETCTL_TEMPLATES")
        .env("NO_COLOR", "1")
        .output()
        .expect("cometctl runs");
    Run::from(output)
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
