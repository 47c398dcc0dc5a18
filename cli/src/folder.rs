//! The deployment folder on disk: cometctl.yaml, secrets/, tls/ and rendered/. All of cometctl's file IO
//! goes through here, reads (the spec, rendered files read back, the files containers and Swarm objects are
//! made of, a folder of template overrides) as well as writes, and every write is atomic: a temporary file or
//! folder beside the target, then a rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use fs_err::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::error::Refusal;
use crate::plan::sha256_hex;
use crate::printer::views::{Change, FileChange};
use crate::render::RenderedTree;
use crate::sizing::Profile;
use crate::spec::{self, SPEC_FILE, Spec};

pub const SECRETS_DIR: &str = "secrets";
pub const RENDERED_DIR: &str = "rendered";
pub const TLS_DIR: &str = "tls";
/// The key backup sets are encrypted with, in secrets/ (never rendered, never backed up).
pub const BACKUP_KEY_FILE: &str = "backup.key";
/// One JSON object per line: every deploy, upgrade and rollback with its outcome.
pub const HISTORY_FILE: &str = "history.jsonl";
/// Playbook run journals (one `<run>.jsonl` each) and the playbook lock.
pub const JOURNAL_DIR: &str = "journal";
const LOCK_FILE: &str = "lock";

#[derive(Debug, Clone)]
pub struct DeploymentFolder {
    root: PathBuf,
}

impl DeploymentFolder {
    pub fn new(root: &Path) -> DeploymentFolder {
        DeploymentFolder { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn spec_path(&self) -> PathBuf {
        self.root.join(SPEC_FILE)
    }

    pub fn has_spec(&self) -> bool {
        self.spec_path().is_file()
    }

    /// Reads and parses cometctl.yaml; a missing one says how to make it.
    pub fn read_spec(&self) -> Result<Spec> {
        let path = self.spec_path();
        if !path.exists() {
            return Err(Refusal(format!(
                "no {SPEC_FILE} in {}: run `cometctl init --mau <N> --dir {}` first, or pass --dir with a deployment folder",
                self.root.display(),
                self.root.display()
            ))
            .into());
        }
        let text = fs_err::read_to_string(&path)?;
        spec::parse(&path.display().to_string(), &text).map_err(|error| Refusal(error.to_string()).into())
    }

    /// A file of rendered/ read back: its path and text.
    pub fn read_rendered(&self, name: &str) -> Result<(PathBuf, String)> {
        let path = self.root.join(RENDERED_DIR).join(name);
        let text = fs_err::read_to_string(&path)?;
        Ok((path, text))
    }

    pub fn create_root(&self) -> Result<()> {
        fs_err::create_dir_all(&self.root)
            .with_context(|| format!("creating the deployment folder {}", self.root.display()))
    }

    /// Writes `bytes` to `relative` atomically with `mode`; reports whether it changed anything.
    pub fn write_file(&self, relative: &str, bytes: &[u8], mode: u32) -> Result<Change> {
        let path = self.root.join(relative);
        let before = fs_err::read(&path).ok();
        if before.as_deref() == Some(bytes) {
            return Ok(Change::Unchanged);
        }
        let parent = path.parent().unwrap_or(&self.root);
        fs_err::create_dir_all(parent)?;
        let temporary = parent.join(format!(".{}.tmp-{}", file_name(&path), std::process::id()));
        let mut file =
            fs_err::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs_err::rename(&temporary, &path)?;
        Ok(if before.is_some() { Change::Updated } else { Change::Created })
    }

    /// Creates `relative` with `make()` only if it does not exist (secrets, keys): never overwrites.
    pub fn create_once(&self, relative: &str, mode: u32, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<Change> {
        if self.root.join(relative).exists() {
            return Ok(Change::Kept);
        }
        self.write_file(relative, &make()?, mode)
    }

    /// Creates a private folder (0700) or tightens an existing one.
    pub fn private_dir(&self, relative: &str) -> Result<()> {
        let path = self.root.join(relative);
        fs_err::create_dir_all(&path)?;
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    /// Appends one record to history.jsonl (created 0644 on first use).
    pub fn append_history<T: serde::Serialize>(&self, record: &T) -> Result<()> {
        self.append_line(HISTORY_FILE, record)
    }

    /// The records of history.jsonl, oldest first (a line that does not parse is skipped).
    pub fn history<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.read_lines(HISTORY_FILE)
    }

    /// Appends one record to the playbook run journal `run` (journal/<run>.jsonl).
    pub fn append_journal<T: serde::Serialize>(&self, run: &str, record: &T) -> Result<()> {
        fs_err::create_dir_all(self.root.join(JOURNAL_DIR))?;
        self.append_line(&format!("{JOURNAL_DIR}/{run}.jsonl"), record)
    }

    /// The records of the run journal `run`, oldest first.
    pub fn journal<T: serde::de::DeserializeOwned>(&self, run: &str) -> Result<Vec<T>> {
        self.read_lines(&format!("{JOURNAL_DIR}/{run}.jsonl"))
    }

    /// The run journals, by run id, oldest first (ids begin with their start time).
    pub fn journals(&self) -> Result<Vec<String>> {
        let dir = self.root.join(JOURNAL_DIR);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut runs: Vec<String> = fs_err::read_dir(dir)?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".jsonl").map(str::to_owned))
            .collect();
        runs.sort();
        Ok(runs)
    }

    /// Takes the playbook lock (journal/lock, created only if absent) with `holder` as its content; the text
    /// of the lock that is already there otherwise.
    pub fn take_lock(&self, holder: &str) -> Result<Result<(), String>> {
        fs_err::create_dir_all(self.root.join(JOURNAL_DIR))?;
        let path = self.root.join(JOURNAL_DIR).join(LOCK_FILE);
        match fs_err::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path) {
            Ok(mut file) => {
                file.write_all(holder.as_bytes())?;
                file.sync_all()?;
                Ok(Ok(()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(Err(fs_err::read_to_string(&path).unwrap_or_default()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Removes the playbook lock (whoever holds it).
    pub fn release_lock(&self) -> Result<()> {
        match fs_err::remove_file(self.root.join(JOURNAL_DIR).join(LOCK_FILE)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }

    fn append_line<T: serde::Serialize>(&self, relative: &str, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        let mut file =
            fs_err::OpenOptions::new().create(true).append(true).mode(0o644).open(self.root.join(relative))?;
        file.write_all(line.as_bytes())?;
        Ok(())
    }

    fn read_lines<T: serde::de::DeserializeOwned>(&self, relative: &str) -> Result<Vec<T>> {
        let path = self.root.join(relative);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = fs_err::read_to_string(path)?;
        Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
    }

    /// Writes the spec back (after `upgrade` changed its images), atomically.
    pub fn write_spec(&self, spec: &Spec) -> Result<()> {
        let text = spec::to_yaml(spec)?;
        self.write_file(SPEC_FILE, text.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Writes the spec after it changed from `from` to `to` (`upgrade`'s images, `scale`'s plan), editing only
    /// those values in the file as it is, so the operator's comments and layout survive. Returns `false` when
    /// the file could not be edited in place (not block style, or keys added) and was written whole instead.
    pub fn write_changed_spec(&self, from: &Spec, to: &Spec) -> Result<bool> {
        let path = self.spec_path();
        let current = fs_err::read_to_string(&path)?;
        match spec::edited(&path.display().to_string(), &current, from, to) {
            Some(edited) => {
                self.write_file(SPEC_FILE, edited.as_bytes(), 0o644)?;
                Ok(true)
            }
            None => {
                self.write_spec(to)?;
                Ok(false)
            }
        }
    }

    /// Containers read the secret files through bind mounts as their own users (comet-server is uid 10001), so
    /// each file must be readable by every uid; the secrets/ folder itself stays 0700, which keeps other host
    /// users out (a bind mount does not need the host path to be traversable). Returns a note per change.
    pub fn share_secrets_with_containers(&self) -> Result<Vec<String>> {
        let dir = self.root.join(SECRETS_DIR);
        let mut notes = Vec::new();
        if !dir.is_dir() {
            return Ok(notes);
        }
        if fs_err::metadata(&dir)?.permissions().mode() & 0o077 != 0 {
            fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            notes.push(format!("{SECRETS_DIR}/: mode set to 0700 (only its owner may list or open it)"));
        }
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            let mode = fs_err::metadata(&path)?.permissions().mode();
            if path.is_file() && mode & 0o444 != 0o444 {
                fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
                notes.push(format!(
                    "{}: mode {:o} → 0444 so the containers' users can read it (the folder stays 0700)",
                    path.strip_prefix(&self.root).unwrap_or(&path).display(),
                    mode & 0o777
                ));
            }
        }
        Ok(notes)
    }

    /// The deployment's backup key (`secrets/backup.key`, hex), made on first use; true when it was just made.
    /// It never goes into rendered manifests or into a backup set.
    pub fn backup_key(&self, generate: impl FnOnce() -> Result<String>) -> Result<(String, bool)> {
        let path = self.root.join(SECRETS_DIR).join(BACKUP_KEY_FILE);
        if path.is_file() {
            return Ok((fs_err::read_to_string(&path)?, false));
        }
        let key = generate()?;
        self.write_file(&format!("{SECRETS_DIR}/{BACKUP_KEY_FILE}"), format!("{key}\n").as_bytes(), 0o600)?;
        Ok((key, true))
    }

    /// The backup key's text when the folder has one, and where it is (or would be).
    pub fn existing_backup_key(&self) -> Result<(Option<String>, PathBuf)> {
        let path = self.root.join(SECRETS_DIR).join(BACKUP_KEY_FILE);
        let text = if path.is_file() { Some(fs_err::read_to_string(&path)?) } else { None };
        Ok((text, path))
    }

    /// Writes `bytes` at `relative` in the folder (atomically), as a restore puts back a backed-up file;
    /// files below secrets/ and tls/ get mode 0600, others 0644.
    pub fn restore_file(&self, relative: &str, bytes: &[u8]) -> Result<Change> {
        let private = relative.starts_with(&format!("{SECRETS_DIR}/")) || relative.starts_with(&format!("{TLS_DIR}/"));
        self.write_file(relative, bytes, if private { 0o600 } else { 0o644 })
    }

    /// The bytes of the folder's file `relative`, if it exists.
    pub fn read_existing(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        let path = self.root.join(relative);
        Ok(if path.is_file() { Some(fs_err::read(&path)?) } else { None })
    }

    /// What a backup's `config` part holds: cometctl.yaml, history.jsonl, secrets/ (but the backup key),
    /// tls/ and rendered/, as (path in the folder, file), sorted.
    pub fn config_files(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut files = Vec::new();
        for single in [SPEC_FILE, HISTORY_FILE] {
            let path = self.root.join(single);
            if path.is_file() {
                files.push((single.to_owned(), path));
            }
        }
        for dir in [SECRETS_DIR, TLS_DIR, RENDERED_DIR] {
            for relative in list_files(&self.root.join(dir))? {
                if dir == SECRETS_DIR && relative == BACKUP_KEY_FILE {
                    continue;
                }
                files.push((format!("{dir}/{relative}"), self.root.join(dir).join(&relative)));
            }
        }
        files.sort();
        Ok(files)
    }

    /// The deployment's secret files: name, content and when each was last written (seconds since the
    /// epoch). `doctor` compares the contents with the containers' environments and never shows them.
    pub fn secret_files(&self) -> Result<Vec<(String, Vec<u8>, u64)>> {
        let dir = self.root.join(SECRETS_DIR);
        let mut secrets = Vec::new();
        if !dir.is_dir() {
            return Ok(secrets);
        }
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            let written = fs_err::metadata(&path)?
                .modified()
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |elapsed| elapsed.as_secs());
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            secrets.push((name, fs_err::read(&path)?, written));
        }
        secrets.sort();
        Ok(secrets)
    }

    /// A file of the folder as text, or `None` when it does not exist (the deployment's certificate).
    pub fn read_optional(&self, relative: &str) -> Result<Option<String>> {
        let path = self.root.join(relative);
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some(fs_err::read_to_string(&path)?))
    }

    /// Replaces rendered/ with `tree` in one rename, so a failed render leaves the previous one whole.
    pub fn replace_rendered(&self, tree: &RenderedTree) -> Result<Vec<FileChange>> {
        let rendered = self.root.join(RENDERED_DIR);
        let staging = self.root.join(format!(".{RENDERED_DIR}.tmp-{}", std::process::id()));
        let previous = self.root.join(format!(".{RENDERED_DIR}.old-{}", std::process::id()));
        if staging.exists() {
            fs_err::remove_dir_all(&staging)?;
        }
        let mut changes = Vec::with_capacity(tree.len());
        for (relative, bytes) in tree {
            let target = staging.join(relative);
            if let Some(parent) = target.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::write(&target, bytes)?;
            let change = match fs_err::read(rendered.join(relative)) {
                Ok(old) if old == *bytes => Change::Unchanged,
                Ok(_) => Change::Updated,
                Err(_) => Change::Created,
            };
            changes.push(FileChange { path: format!("{RENDERED_DIR}/{relative}"), change });
        }
        for old in list_files(&rendered)? {
            if !tree.contains_key(&old) {
                changes.push(FileChange { path: format!("{RENDERED_DIR}/{old}"), change: Change::Removed });
            }
        }
        if rendered.exists() {
            fs_err::rename(&rendered, &previous)?;
        }
        if let Err(error) = fs_err::rename(&staging, &rendered) {
            // Put the previous render back before reporting.
            if previous.exists() {
                fs_err::rename(&previous, &rendered).ok();
            }
            return Err(error.into());
        }
        if previous.exists() {
            fs_err::remove_dir_all(&previous)?;
        }
        Ok(changes)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "file".to_owned(), |name| name.to_string_lossy().into_owned())
}

/// Every file below `root`, relative, with `/` separators, sorted.
fn list_files(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    if !root.exists() {
        return Ok(files);
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in fs_err::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                files.push(
                    relative
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Writes a file outside the deployment folder (an image bundle) atomically: `write` fills a temporary file
/// beside `path`, which replaces `path` only when `write` succeeded.
pub fn write_atomically<T>(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let temporary = parent.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let mut file = std::io::BufWriter::new(fs_err::File::create(&temporary)?);
    let outcome = write(&mut file).and_then(|value| {
        file.flush()?;
        Ok(value)
    });
    drop(file);
    match outcome {
        Ok(value) => {
            fs_err::rename(&temporary, path)?;
            Ok(value)
        }
        Err(error) => {
            let _ = fs_err::remove_file(&temporary);
            Err(error)
        }
    }
}

/// The sizing profile: `--profile FILE`, or the embedded profiles/default.yaml.
pub fn read_profile(path: Option<&Path>) -> Result<Profile> {
    match path {
        None => Profile::embedded().context("the embedded sizing profile is broken (a build bug)"),
        Some(path) => {
            let text = fs_err::read_to_string(path)?;
            Profile::parse(&path.display().to_string(), &text).map_err(|error| Refusal(error.to_string()).into())
        }
    }
}

/// A file opened for reading (an image bundle streamed to the Engine).
pub fn open(path: &Path) -> Result<fs_err::File> {
    Ok(fs_err::File::open(path)?)
}

/// The bytes of a file: what a Swarm secret or config holds, what goes into an image (the binary, its
/// libraries, the CA bundle).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    Ok(fs_err::read(path)?)
}

/// The hex SHA-256 of a file's content, or `missing`: what a container's configuration hash and a Swarm
/// object's name take from the files they are made of.
pub fn file_digest(path: &Path) -> String {
    match fs_err::read(path) {
        Ok(bytes) => sha256_hex(&bytes),
        Err(_) => "missing".to_owned(),
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

pub fn is_file(path: &Path) -> bool {
    path.is_file()
}

/// What a folder of overrides holds: templates (`*.j2`, `render --templates`) or playbooks (`*.yaml`,
/// `playbook --playbooks`), each overriding the embedded one of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrides {
    Templates,
    Playbooks,
}

impl Overrides {
    fn extension(self) -> &'static str {
        match self {
            Overrides::Templates => "j2",
            Overrides::Playbooks => "yaml",
        }
    }
}

impl std::fmt::Display for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Overrides::Templates => "templates",
            Overrides::Playbooks => "playbooks",
        })
    }
}

/// Why a folder of overrides could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateFolderError {
    #[error("reading {kind} from {path}: {source}")]
    Io { kind: Overrides, path: PathBuf, source: std::io::Error },
    #[error("{path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error(
        "{path} holds no {kind} (*.{ext} files); point --{kind} at a copy of the project's {kind}/ folder",
        ext = kind.extension()
    )]
    Empty { kind: Overrides, path: PathBuf },
}

/// Every `*.j2` file below `root`, by name (its path below `root` with `/` separators): the templates that
/// override the embedded ones of the same name.
pub fn read_templates(root: &Path) -> Result<BTreeMap<String, String>, TemplateFolderError> {
    read_overrides(root, Overrides::Templates)
}

/// Every file of `kind` below `root`, by its path below `root` with `/` separators.
pub fn read_overrides(root: &Path, kind: Overrides) -> Result<BTreeMap<String, String>, TemplateFolderError> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let io = |source| TemplateFolderError::Io { kind, path: folder.clone(), source };
        for entry in fs_err::read_dir(&folder).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == kind.extension()) {
                let bytes = fs_err::read(&path).map_err(|source| TemplateFolderError::Io {
                    kind,
                    path: path.clone(),
                    source,
                })?;
                let text = String::from_utf8(bytes).map_err(|_| TemplateFolderError::NotText { path: path.clone() })?;
                let name = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                found.insert(name, text);
            }
        }
    }
    if found.is_empty() {
        return Err(TemplateFolderError::Empty { kind, path: root.to_path_buf() });
    }
    Ok(found)
}
