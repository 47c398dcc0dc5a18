//! Where backup sets live: a local folder today (default `<dir>/backups/`; S3-compatible storage is the next
//! target). The only code that writes or reads backup sets. A set is made in `<id>.partial/` and renamed to
//! `<id>/` once its manifest is written, so an interrupted backup never looks complete.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};

use super::manifest::Manifest;

pub const MANIFEST_FILE: &str = "manifest.json";
const PARTIAL_SUFFIX: &str = ".partial";

/// A folder of backup sets.
#[derive(Debug, Clone)]
pub struct LocalTarget {
    dir: PathBuf,
}

/// One set of a target, as listed.
#[derive(Debug, Clone)]
pub enum Listed {
    /// A complete set (its folder's name) and its manifest.
    Complete { id: String, manifest: Box<Manifest> },
    /// A set that was interrupted (no manifest) or whose manifest cannot be read.
    Incomplete { id: String, why: String },
}

/// A writer that counts and hashes what passes through it.
#[derive(Debug)]
pub struct Hashed<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashed<W> {
    pub fn new(inner: W) -> Hashed<W> {
        Hashed { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// The bytes written and their SHA-256 (hex), after flushing.
    pub fn finish(mut self) -> std::io::Result<(u64, String)> {
        self.inner.flush()?;
        let digest = self.hasher.finalize();
        Ok((self.bytes, digest.iter().map(|byte| format!("{byte:02x}")).collect()))
    }
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A set being written.
#[derive(Debug)]
pub struct NewSet {
    partial: PathBuf,
    complete: PathBuf,
}

impl NewSet {
    /// A part's file, to be written through [`Hashed`].
    pub fn part(&self, file: &str) -> Result<Hashed<std::io::BufWriter<fs_err::File>>> {
        let file = fs_err::File::create(self.partial.join(file))?;
        Ok(Hashed::new(std::io::BufWriter::with_capacity(256 * 1024, file)))
    }

    /// Removes what was written of a set that failed.
    pub fn abandon(self) {
        let _ = fs_err::remove_dir_all(&self.partial);
    }

    /// Writes the manifest and makes the set complete.
    pub fn finish(self, manifest: &Manifest) -> Result<PathBuf> {
        let text = serde_json::to_string_pretty(manifest).context("the manifest")?;
        fs_err::write(self.partial.join(MANIFEST_FILE), format!("{text}\n"))?;
        fs_err::rename(&self.partial, &self.complete)?;
        Ok(self.complete)
    }
}

impl LocalTarget {
    pub fn new(dir: &Path) -> LocalTarget {
        LocalTarget { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts set `id`; refuses an id that exists (complete or not).
    pub fn begin(&self, id: &str) -> Result<NewSet> {
        fs_err::create_dir_all(&self.dir)?;
        let complete = self.dir.join(id);
        let partial = self.dir.join(format!("{id}{PARTIAL_SUFFIX}"));
        if complete.exists() || partial.exists() {
            anyhow::bail!("backup set {id} exists already in {}", self.dir.display());
        }
        fs_err::create_dir(&partial)?;
        fs_err::set_permissions(&partial, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(NewSet { partial, complete })
    }

    /// Every set, oldest first.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut sets = Vec::new();
        if !self.dir.is_dir() {
            return Ok(sets);
        }
        for entry in fs_err::read_dir(&self.dir)? {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(id) = name.strip_suffix(PARTIAL_SUFFIX) {
                sets.push(Listed::Incomplete { id: id.to_owned(), why: "interrupted: no manifest".to_owned() });
                continue;
            }
            sets.push(match self.manifest(&name) {
                Ok(manifest) => Listed::Complete { id: name, manifest: Box::new(manifest) },
                Err(error) => Listed::Incomplete { id: name, why: format!("{error:#}") },
            });
        }
        sets.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(sets)
    }

    /// The manifest of complete set `id`.
    pub fn manifest(&self, id: &str) -> Result<Manifest> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            anyhow::bail!("`{id}` is not a backup id (`cometctl backup list` shows them)");
        }
        let path = self.dir.join(id).join(MANIFEST_FILE);
        let text = fs_err::read_to_string(&path)
            .with_context(|| format!("no backup set {id} in {} (`cometctl backup list`)", self.dir.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a backup manifest", path.display()))
    }

    /// Deletes set `id`, complete or not.
    pub fn remove(&self, id: &str) -> Result<()> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            anyhow::bail!("`{id}` is not a backup id");
        }
        for name in [id.to_owned(), format!("{id}{PARTIAL_SUFFIX}")] {
            let path = self.dir.join(name);
            if path.is_dir() {
                fs_err::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }

    /// A part's stored bytes, for reading.
    pub fn open_part(&self, id: &str, file: &str) -> Result<BufReader<fs_err::File>> {
        Ok(BufReader::with_capacity(256 * 1024, fs_err::File::open(self.dir.join(id).join(file))?))
    }
}

impl Listed {
    pub fn id(&self) -> &str {
        match self {
            Listed::Complete { id, .. } => id,
            Listed::Incomplete { id, .. } => id,
        }
    }
}
