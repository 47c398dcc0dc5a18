//! Where backup sets live, and the only code that writes or reads them: a folder (`local`), or an
//! S3-compatible bucket (`s3`: `s3://bucket/prefix`, credentials from the AWS environment variables). Either
//! way a set `<id>` is complete only once its `manifest.json` is there: a folder's set is made in
//! `<id>.partial/` and renamed, a bucket's parts are staged on this host, uploaded, and the manifest put last;
//! an interrupted backup never looks complete.

mod local;
mod s3;
mod set;

pub use set::{Listed, PartReader};

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest as _, Sha256};

use super::manifest::Manifest;

/// Where sets are, as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Folder(PathBuf),
    /// `s3://bucket/prefix`: sets are `prefix/<id>/…` in the bucket.
    S3 {
        bucket: String,
        prefix: String,
    },
}

impl Location {
    /// `text` as a location: `s3://bucket[/prefix]`, or a folder (relative ones below `base`).
    pub fn parse(text: &str, base: &Path) -> Result<Location, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=63).contains(&bucket.len())
                && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid {
                return Err(format!("`{text}`: `{bucket}` is not an S3 bucket name (3 to 63 of a-z, 0-9, `-`, `.`)"));
            }
            return Ok(Location::S3 { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() });
        }
        if text.contains("://") {
            return Err(format!("`{text}`: a backup target is a folder or s3://bucket/prefix"));
        }
        Ok(Location::Folder(base.join(text)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Folder(dir) => write!(f, "{}", dir.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A target opened: a folder, or a bucket with its client.
#[derive(Debug)]
pub enum Target {
    Folder(local::Folder),
    S3(Box<s3::Bucket>),
}

impl Target {
    /// Opens `location` (for a bucket: credentials and endpoint from the environment, nothing asked yet).
    pub fn open(location: &Location) -> Result<Target> {
        Ok(match location {
            Location::Folder(dir) => Target::Folder(local::Folder::new(dir)),
            Location::S3 { bucket, prefix } => Target::S3(Box::new(s3::Bucket::from_env(bucket, prefix)?)),
        })
    }

    /// Starts set `id`; refuses an id that exists (complete or not).
    pub fn begin(&self, id: &str) -> Result<NewSet<'_>> {
        checked(id)?;
        let staging = match self {
            Target::Folder(folder) => folder.begin(id)?,
            Target::S3(bucket) => bucket.begin(id)?,
        };
        Ok(NewSet { target: self, id: id.to_owned(), staging })
    }

    /// Every set, oldest first.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut sets = match self {
            Target::Folder(folder) => folder.list()?,
            Target::S3(bucket) => bucket.list()?,
        };
        sets.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(sets)
    }

    /// The manifest of complete set `id`.
    pub fn manifest(&self, id: &str) -> Result<Manifest> {
        checked(id).map_err(|_| anyhow::anyhow!("`{id}` is not a backup id (`cometctl backup list` shows them)"))?;
        let (text, shown) = match self {
            Target::Folder(folder) => folder.manifest_text(id)?,
            Target::S3(bucket) => bucket.manifest_text(id)?,
        };
        serde_json::from_str(&text).map_err(|error| anyhow::anyhow!("{shown} is not a backup manifest: {error}"))
    }

    /// Deletes set `id`, complete or not.
    pub fn remove(&self, id: &str) -> Result<()> {
        checked(id)?;
        match self {
            Target::Folder(folder) => folder.remove(id),
            Target::S3(bucket) => bucket.remove(id),
        }
    }

    /// A part's stored bytes, for reading.
    pub fn open_part(&self, id: &str, file: &str) -> Result<PartReader> {
        checked(id)?;
        match self {
            Target::Folder(folder) => folder.open_part(id, file),
            Target::S3(bucket) => bucket.open_part(id, file),
        }
    }
}

/// A set id names one folder or prefix level: no separators, no dot files.
fn checked(id: &str) -> Result<()> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        anyhow::bail!("`{id}` is not a backup id");
    }
    Ok(())
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

/// A set being written: its parts go to a staging folder on this host (a folder target's `<id>.partial/`).
#[derive(Debug)]
pub struct NewSet<'t> {
    target: &'t Target,
    id: String,
    staging: PathBuf,
}

impl NewSet<'_> {
    /// A part's file, to be written through [`Hashed`].
    pub fn part(&self, file: &str) -> Result<Hashed<std::io::BufWriter<fs_err::File>>> {
        let file = fs_err::File::create(self.staging.join(file))?;
        Ok(Hashed::new(std::io::BufWriter::with_capacity(256 * 1024, file)))
    }

    /// Removes what was written of a set that failed.
    pub fn abandon(self) {
        let _ = fs_err::remove_dir_all(&self.staging);
    }

    /// Writes the manifest and makes the set complete; where it is.
    pub fn finish(self, manifest: &Manifest) -> Result<String> {
        let text = format!("{}\n", serde_json::to_string_pretty(manifest)?);
        let done = match self.target {
            Target::Folder(folder) => folder.finish(&self.id, &self.staging, &text),
            Target::S3(bucket) => bucket.finish(&self.id, &self.staging, &text),
        };
        if done.is_err() {
            let _ = fs_err::remove_dir_all(&self.staging);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_folders_or_buckets() {
        let base = Path::new("/srv/chat");
        assert_eq!(Location::parse("backups", base), Ok(Location::Folder(base.join("backups"))));
        assert_eq!(Location::parse("/mnt/b", base), Ok(Location::Folder(PathBuf::from("/mnt/b"))));
        let bucket = Location::parse("s3://chat-backups/prod/eu/", base).expect("a bucket");
        assert_eq!(bucket, Location::S3 { bucket: "chat-backups".to_owned(), prefix: "prod/eu".to_owned() });
        assert_eq!(bucket.to_string(), "s3://chat-backups/prod/eu");
        assert!(Location::parse("s3://Bad_Bucket/x", base).is_err());
        assert!(Location::parse("gs://bucket", base).is_err());
    }
}
