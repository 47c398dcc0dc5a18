//! A folder of backup sets: `<id>/` complete, `<id>.partial/` being written or interrupted.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::set::{Listed, MANIFEST_FILE, PartReader};

const PARTIAL_SUFFIX: &str = ".partial";

#[derive(Debug, Clone)]
pub struct Folder {
    dir: PathBuf,
}

impl Folder {
    pub fn new(dir: &Path) -> Folder {
        Folder { dir: dir.to_path_buf() }
    }

    /// The staging folder of a new set: `<id>.partial/`, private.
    pub fn begin(&self, id: &str) -> Result<PathBuf> {
        fs_err::create_dir_all(&self.dir)?;
        let complete = self.dir.join(id);
        let partial = self.dir.join(format!("{id}{PARTIAL_SUFFIX}"));
        if complete.exists() || partial.exists() {
            anyhow::bail!("backup set {id} exists already in {}", self.dir.display());
        }
        fs_err::create_dir(&partial)?;
        fs_err::set_permissions(&partial, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(partial)
    }

    /// The manifest written last, then the rename that makes the set complete.
    pub fn finish(&self, id: &str, staging: &Path, manifest: &str) -> Result<String> {
        fs_err::write(staging.join(MANIFEST_FILE), manifest)?;
        let complete = self.dir.join(id);
        fs_err::rename(staging, &complete)?;
        Ok(complete.display().to_string())
    }

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
            sets.push(
                match self.manifest_text(&name).and_then(|(text, shown)| {
                    serde_json::from_str(&text).with_context(|| format!("{shown} is not a backup manifest"))
                }) {
                    Ok(manifest) => Listed::Complete { id: name, manifest: Box::new(manifest) },
                    Err(error) => Listed::Incomplete { id: name, why: format!("{error:#}") },
                },
            );
        }
        Ok(sets)
    }

    /// The text of set `id`'s manifest, and its path as shown in errors.
    pub fn manifest_text(&self, id: &str) -> Result<(String, String)> {
        let path = self.dir.join(id).join(MANIFEST_FILE);
        let text = fs_err::read_to_string(&path)
            .with_context(|| format!("no backup set {id} in {} (`cometctl backup list`)", self.dir.display()))?;
        Ok((text, path.display().to_string()))
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        for name in [id.to_owned(), format!("{id}{PARTIAL_SUFFIX}")] {
            let path = self.dir.join(name);
            if path.is_dir() {
                fs_err::remove_dir_all(&path)?;
            }
        }
        Ok(())
    }

    pub fn open_part(&self, id: &str, file: &str) -> Result<PartReader> {
        Ok(Box::new(BufReader::with_capacity(256 * 1024, fs_err::File::open(self.dir.join(id).join(file))?)))
    }
}
