//! A bucket of backup sets on S3 or an S3-compatible store (MinIO, SeaweedFS, Ceph): set `<id>` is the objects
//! `<prefix>/<id>/<file>`, complete once `<prefix>/<id>/manifest.json` exists (uploaded last). Credentials and
//! the endpoint come from the standard AWS variables (`env`). Requests are signed URLs (rusty-s3) sent with
//! reqwest on a private runtime, so callers stay synchronous; parts above `MULTIPART_BYTES` go up in pieces of
//! that size, so memory stays bounded whatever a part's size.

use std::io::{BufReader, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Credentials, S3Action as _, UrlStyle};

use super::set::{Listed, MANIFEST_FILE, PartReader};
use crate::env;
use crate::error::Refusal;

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// Parts larger than this are uploaded in pieces of this size (S3's minimum piece is 5 MiB).
const MULTIPART_BYTES: u64 = 16 * 1024 * 1024;

pub struct Bucket {
    bucket: rusty_s3::Bucket,
    credentials: Credentials,
    prefix: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("bucket", &self.bucket.name())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// The bucket `name` under `prefix`, with the credentials and endpoint of the environment.
    pub fn from_env(name: &str, prefix: &str) -> Result<Bucket> {
        let (key, secret) = match (env::var(env::AWS_ACCESS_KEY_ID), env::var(env::AWS_SECRET_ACCESS_KEY)) {
            (Some(key), Some(secret)) => (key, secret),
            _ => {
                return Err(Refusal(format!(
                    "s3://{name}: set {} and {} (and {} for a store other than AWS, such as MinIO or SeaweedFS)",
                    env::AWS_ACCESS_KEY_ID,
                    env::AWS_SECRET_ACCESS_KEY,
                    env::AWS_ENDPOINT_URL
                ))
                .into());
            }
        };
        let credentials = match env::var(env::AWS_SESSION_TOKEN) {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        };
        let region = env::var(env::AWS_REGION).unwrap_or_else(|| "us-east-1".to_owned());
        let (endpoint, style) = match env::var(env::AWS_ENDPOINT_URL) {
            Some(endpoint) => (endpoint, UrlStyle::Path),
            None => (format!("https://s3.{region}.amazonaws.com"), UrlStyle::VirtualHost),
        };
        let endpoint = endpoint
            .parse()
            .map_err(|error| Refusal(format!("{} `{endpoint}` is not a URL: {error}", env::AWS_ENDPOINT_URL)))?;
        let bucket = rusty_s3::Bucket::new(endpoint, style, name.to_owned(), region)
            .map_err(|error| Refusal(format!("s3://{name}: {error}")))?;
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(300)).build().context("the HTTP client for S3")?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Bucket { bucket, credentials, prefix: prefix.to_owned(), client, runtime })
    }

    fn key(&self, id: &str, file: &str) -> String {
        if self.prefix.is_empty() { format!("{id}/{file}") } else { format!("{}/{id}/{file}", self.prefix) }
    }

    fn shown(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name())
    }

    /// The staging folder of a new set on this host (private); refuses an id the bucket has.
    pub fn begin(&self, id: &str) -> Result<PathBuf> {
        if !self.keys(&self.key(id, ""))?.is_empty() {
            bail!("backup set {id} exists already in {}", self.shown(&self.key(id, "")));
        }
        let staging = std::env::temp_dir().join(format!("cometctl-backup-{id}-{}", std::process::id()));
        fs_err::create_dir_all(&staging)?;
        fs_err::set_permissions(&staging, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(staging)
    }

    /// Uploads every staged part, then the manifest; the staging folder goes either way. A failed upload
    /// removes what it put.
    pub fn finish(&self, id: &str, staging: &Path, manifest: &str) -> Result<String> {
        let mut files: Vec<PathBuf> = fs_err::read_dir(staging)?.filter_map(|entry| Some(entry.ok()?.path())).collect();
        files.sort();
        let uploaded = files.iter().try_for_each(|path| {
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            self.upload(&self.key(id, &name), path)
        });
        let uploaded = uploaded.and_then(|()| self.put(&self.key(id, MANIFEST_FILE), manifest.as_bytes().to_vec()));
        let _ = fs_err::remove_dir_all(staging);
        if let Err(error) = uploaded {
            let _ = self.remove(id);
            return Err(error);
        }
        Ok(self.shown(&self.key(id, "")))
    }

    pub fn list(&self) -> Result<Vec<Listed>> {
        let root = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let mut sets = Vec::new();
        for set in self.prefixes(&root)? {
            let id = set.trim_start_matches(&root).trim_end_matches('/').to_owned();
            sets.push(
                match self.manifest_text(&id).and_then(|(text, shown)| {
                    serde_json::from_str(&text).with_context(|| format!("{shown} is not a backup manifest"))
                }) {
                    Ok(manifest) => Listed::Complete { id, manifest: Box::new(manifest) },
                    Err(_) if !self.exists(&self.key(&id, MANIFEST_FILE))? => {
                        Listed::Incomplete { id, why: "interrupted: no manifest".to_owned() }
                    }
                    Err(error) => Listed::Incomplete { id, why: format!("{error:#}") },
                },
            );
        }
        Ok(sets)
    }

    pub fn manifest_text(&self, id: &str) -> Result<(String, String)> {
        let key = self.key(id, MANIFEST_FILE);
        let shown = self.shown(&key);
        let bytes = self.get(&key)?.ok_or_else(|| {
            anyhow::anyhow!("no backup set {id} in {} (`cometctl backup list`)", self.shown(&self.key(id, "")))
        })?;
        Ok((String::from_utf8(bytes).with_context(|| format!("{shown} is not text"))?, shown))
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        for key in self.keys(&self.key(id, ""))? {
            let url = self.bucket.delete_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
            let status = self.runtime.block_on(async {
                let response = self.client.delete(url).send().await.with_context(|| self.shown(&key))?;
                let status = response.status();
                let _ = response.bytes().await;
                anyhow::Ok(status)
            })?;
            if !status.is_success() && status != reqwest::StatusCode::NOT_FOUND {
                bail!("deleting {}: {status}", self.shown(&key));
            }
        }
        Ok(())
    }

    /// A part downloaded to a private file on this host (unlinked at once: it lives as long as the reader).
    pub fn open_part(&self, id: &str, file: &str) -> Result<PartReader> {
        let key = self.key(id, file);
        let path = std::env::temp_dir().join(format!("cometctl-part-{}-{id}-{file}", std::process::id()));
        let mut local = fs_err::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        let _ = fs_err::remove_file(&path);
        let url = self.bucket.get_object(Some(&self.credentials), &key).sign(SIGNED_FOR);
        self.runtime.block_on(async {
            let mut response = self.client.get(url).send().await.with_context(|| self.shown(&key))?;
            if !response.status().is_success() {
                bail!("{}: {}", self.shown(&key), response.status());
            }
            while let Some(chunk) = response.chunk().await.with_context(|| self.shown(&key))? {
                local.write_all(&chunk)?;
            }
            Ok(())
        })?;
        local.rewind()?;
        Ok(Box::new(BufReader::with_capacity(256 * 1024, local)))
    }

    /// Uploads `path` to `key`: one PUT, or a multipart upload in `MULTIPART_BYTES` pieces.
    fn upload(&self, key: &str, path: &Path) -> Result<()> {
        let size = fs_err::metadata(path)?.len();
        let mut file = fs_err::File::open(path)?;
        if size <= MULTIPART_BYTES {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
            file.read_to_end(&mut bytes)?;
            return self.put(key, bytes);
        }
        let created = self.bucket.create_multipart_upload(Some(&self.credentials), key).sign(SIGNED_FOR);
        let text = self.send_text(self.client.post(created), key)?;
        let upload =
            CreateMultipartUpload::parse_response(&text).with_context(|| format!("{}: {text}", self.shown(key)))?;
        let upload_id = upload.upload_id().to_owned();
        let pieces = self.upload_pieces(key, &upload_id, &mut file);
        let etags = match pieces {
            Ok(etags) => etags,
            Err(error) => {
                let abort =
                    self.bucket.abort_multipart_upload(Some(&self.credentials), key, &upload_id).sign(SIGNED_FOR);
                let _ = self.runtime.block_on(async { self.client.delete(abort).send().await?.bytes().await });
                return Err(error);
            }
        };
        let complete = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            &upload_id,
            etags.iter().map(String::as_str),
        );
        let url = complete.sign(SIGNED_FOR);
        self.send_text(self.client.post(url).body(complete.body()), key).map(|_| ())
    }

    fn upload_pieces(&self, key: &str, upload_id: &str, file: &mut fs_err::File) -> Result<Vec<String>> {
        let mut etags = Vec::new();
        let mut piece = vec![0_u8; usize::try_from(MULTIPART_BYTES).unwrap_or(usize::MAX)];
        for number in 1_u16.. {
            let mut filled = 0;
            while filled < piece.len() {
                let read = file.read(&mut piece[filled..])?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            if filled == 0 {
                break;
            }
            let url = self.bucket.upload_part(Some(&self.credentials), key, number, upload_id).sign(SIGNED_FOR);
            let body = piece[..filled].to_vec();
            // The response is read to its end inside the runtime: a connection dropped outside it cannot go back
            // to the pool.
            let etag = self.runtime.block_on(async {
                let response = self.client.put(url).body(body).send().await.with_context(|| self.shown(key))?;
                let status = response.status();
                let etag = response.headers().get("etag").and_then(|value| value.to_str().ok()).map(str::to_owned);
                let _ = response.bytes().await;
                if !status.is_success() {
                    bail!("uploading piece {number} of {}: {status}", self.shown(key));
                }
                etag.ok_or_else(|| anyhow::anyhow!("uploading piece {number} of {}: no ETag", self.shown(key)))
            })?;
            etags.push(etag);
        }
        Ok(etags)
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let url = self.bucket.put_object(Some(&self.credentials), key).sign(SIGNED_FOR);
        self.send_text(self.client.put(url).body(bytes), key).map(|_| ())
    }

    /// The object's bytes, `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let url = self.bucket.get_object(Some(&self.credentials), key).sign(SIGNED_FOR);
        self.runtime.block_on(async {
            let response = self.client.get(url).send().await.with_context(|| self.shown(key))?;
            match response.status() {
                reqwest::StatusCode::NOT_FOUND => Ok(None),
                status if status.is_success() => Ok(Some(response.bytes().await?.to_vec())),
                status => bail!("{}: {status}", self.shown(key)),
            }
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.keys(key)?.iter().any(|found| found == key))
    }

    /// Sends a request; the body of a success, the status and body as the error otherwise.
    fn send_text(&self, request: reqwest::RequestBuilder, key: &str) -> Result<String> {
        self.runtime.block_on(async {
            let response = request.send().await.with_context(|| self.shown(key))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                bail!("{}: {status} {}", self.shown(key), text.chars().take(300).collect::<String>());
            }
            Ok(text)
        })
    }

    /// Every key below `prefix`.
    fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.listing(prefix, false)?.0)
    }

    /// The "folders" right below `prefix` (ending in `/`).
    fn prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.listing(prefix, true)?.1)
    }

    fn listing(&self, prefix: &str, folders: bool) -> Result<(Vec<String>, Vec<String>)> {
        let (mut keys, mut common) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix.to_owned());
            if folders {
                action.with_delimiter("/");
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let text = self.send_text(self.client.get(action.sign(SIGNED_FOR)), prefix)?;
            let page = ListObjectsV2::parse_response(&text)
                .with_context(|| format!("listing {}: {text}", self.shown(prefix)))?;
            keys.extend(page.contents.into_iter().map(|object| object.key));
            common.extend(page.common_prefixes.into_iter().map(|folder| folder.prefix));
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => return Ok((keys, common)),
            }
        }
    }
}
