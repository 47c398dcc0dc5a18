//! The comet-server container image, assembled without a base image or a registry: one layer holding the
//! release binary, the shared libraries it links, CA certificates and a non-root user, plus an image config
//! with OCI labels, packed as a `docker save` archive that the Engine loads (`POST /images/load`).
//!
//! Pure: the caller reads the files; this module only lays them out. The same inputs give the same bytes
//! (fixed timestamps and owners, sorted entries), so the image id only changes when a file does.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::plan::sha256_hex;

/// The unprivileged user every comet-server container runs as (the templates use the same ids).
pub const USER_ID: u32 = 10001;
/// Where the binary lives in the image.
pub const BINARY_PATH: &str = "usr/local/bin/comet-server";
/// The data folder of the embedded mode, owned by the comet user.
pub const DATA_DIR: &str = "var/lib/comet";
/// The CA bundle's path in the image.
pub const CA_BUNDLE_PATH: &str = "etc/ssl/certs/ca-certificates.crt";

/// One file of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Path inside the image, relative (no leading `/`).
    pub path: String,
    pub mode: u32,
    pub bytes: Vec<u8>,
}

/// What goes into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageContents {
    pub binary: Vec<u8>,
    /// Shared libraries and the dynamic loader, at the paths the binary looks for them.
    pub libraries: Vec<ImageFile>,
    pub ca_bundle: Vec<u8>,
    pub version: String,
    /// `repository:tag` the image is loaded as.
    pub reference: String,
}

/// A loadable archive and what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    /// The `docker save` tarball.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the config: the image id the Engine will report.
    pub image_id: String,
    /// Bytes of the uncompressed layer.
    pub layer_size: u64,
}

/// Reads `ldd` output: the absolute paths of every library and of the loader, in order, without duplicates.
/// Lines without a path (`linux-vdso.so.1`) are skipped; `not found` is an error naming the library.
pub fn parse_ldd(output: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for line in output.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if line.contains("not found") {
            return Err(format!("a shared library the binary needs is missing on this host: `{line}`"));
        }
        let candidate = match line.split_once("=>") {
            Some((_, right)) => right.trim(),
            None => line,
        };
        let path = candidate.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') && !paths.iter().any(|known| known == path) {
            paths.push(path.to_owned());
        }
    }
    Ok(paths)
}

/// The text files of the image: the comet user and group.
fn account_files() -> Vec<ImageFile> {
    let passwd =
        format!("root:x:0:0:root:/root:/sbin/nologin\ncomet:x:{USER_ID}:{USER_ID}:comet:/{DATA_DIR}:/sbin/nologin\n");
    let group = format!("root:x:0:\ncomet:x:{USER_ID}:\n");
    vec![
        ImageFile { path: "etc/passwd".into(), mode: 0o644, bytes: passwd.into_bytes() },
        ImageFile { path: "etc/group".into(), mode: 0o644, bytes: group.into_bytes() },
    ]
}

fn tar_header(kind: tar::EntryType, path: &str, mode: u32, size: u64, owner: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    // Paths are checked by the caller (relative, no `..`); a failure here only means an overlong name.
    let _ = header.set_path(path);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(u64::from(owner));
    header.set_gid(u64::from(owner));
    header.set_mtime(0);
    header.set_cksum();
    header
}

/// The layer: every parent directory, then every file, sorted; root-owned except the data folder.
fn layer(files: &[ImageFile]) -> Result<Vec<u8>, String> {
    let mut directories: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for file in files {
        if file.path.starts_with('/') || file.path.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(format!("`{}` is not a clean relative path", file.path));
        }
        let parts: Vec<&str> = file.path.split('/').collect();
        for end in 1..parts.len() {
            directories.entry(parts[..end].join("/")).or_insert((0o755, 0));
        }
    }
    let data_parts: Vec<&str> = DATA_DIR.split('/').collect();
    for end in 1..data_parts.len() {
        directories.entry(data_parts[..end].join("/")).or_insert((0o755, 0));
    }
    directories.insert(DATA_DIR.into(), (0o700, USER_ID));
    directories.insert("tmp".into(), (0o1777, 0));

    let mut builder = tar::Builder::new(Vec::new());
    for (path, (mode, owner)) in &directories {
        let header = tar_header(tar::EntryType::Directory, &format!("{path}/"), *mode, 0, *owner);
        builder.append(&header, std::io::empty()).map_err(|error| error.to_string())?;
    }
    let mut seen = BTreeSet::new();
    let mut sorted: Vec<&ImageFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for file in sorted {
        if !seen.insert(file.path.as_str()) {
            return Err(format!("`{}` is in the image twice", file.path));
        }
        let header = tar_header(tar::EntryType::Regular, &file.path, file.mode, file.bytes.len() as u64, 0);
        builder.append(&header, file.bytes.as_slice()).map_err(|error| error.to_string())?;
    }
    builder.into_inner().map_err(|error| error.to_string())
}

/// Packs `contents` as a `docker save` archive tagged `contents.reference`.
pub fn archive(contents: &ImageContents, repository_url: &str) -> Result<ImageArchive, String> {
    let mut files = vec![
        ImageFile { path: BINARY_PATH.into(), mode: 0o755, bytes: contents.binary.clone() },
        ImageFile { path: CA_BUNDLE_PATH.into(), mode: 0o644, bytes: contents.ca_bundle.clone() },
    ];
    files.extend(account_files());
    files.extend(contents.libraries.iter().cloned());
    let layer = layer(&files)?;
    let layer_digest = sha256_hex(&layer);
    let epoch = "1970-01-01T00:00:00Z";
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": epoch,
        "config": {
            "User": format!("{USER_ID}:{USER_ID}"),
            "Entrypoint": [format!("/{BINARY_PATH}")],
            "Cmd": ["all"],
            "WorkingDir": format!("/{DATA_DIR}"),
            "Env": [
                "PATH=/usr/local/bin",
                format!("SSL_CERT_FILE=/{CA_BUNDLE_PATH}"),
                format!("COMET_DATA_DIR=/{DATA_DIR}"),
            ],
            "Healthcheck": {
                "Test": ["CMD", format!("/{BINARY_PATH}"), "health"],
                "Interval": 10_000_000_000u64,
                "Timeout": 3_000_000_000u64,
                "StartPeriod": 10_000_000_000u64,
                "Retries": 3,
            },
            "Labels": {
                "org.opencontainers.image.title": "comet-server",
                "org.opencontainers.image.description": "Comet in a Box chat services in one binary, chosen by role",
                "org.opencontainers.image.version": contents.version,
                "org.opencontainers.image.licenses": "Apache-2.0",
                "org.opencontainers.image.source": repository_url,
                "org.opencontainers.image.vendor": "Comet in a Box",
            },
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
        "history": [{ "created": epoch, "created_by": "cometctl images build" }],
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|error| error.to_string())?;
    let config_digest = sha256_hex(&config_bytes);
    let manifest = json!([{
        "Config": format!("{config_digest}.json"),
        "RepoTags": [contents.reference],
        "Layers": [format!("{layer_digest}/layer.tar")],
    }]);
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|error| error.to_string())?;

    let mut builder = tar::Builder::new(Vec::new());
    let entries: [(String, &[u8]); 3] = [
        (format!("{layer_digest}/layer.tar"), &layer),
        (format!("{config_digest}.json"), &config_bytes),
        ("manifest.json".to_owned(), &manifest_bytes),
    ];
    let directory = tar_header(tar::EntryType::Directory, &format!("{layer_digest}/"), 0o755, 0, 0);
    builder.append(&directory, std::io::empty()).map_err(|error| error.to_string())?;
    for (path, bytes) in entries {
        let header = tar_header(tar::EntryType::Regular, &path, 0o644, bytes.len() as u64, 0);
        builder.append(&header, bytes).map_err(|error| error.to_string())?;
    }
    let bytes = builder.into_inner().map_err(|error| error.to_string())?;
    Ok(ImageArchive { bytes, image_id: format!("sha256:{config_digest}"), layer_size: layer.len() as u64 })
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn contents() -> ImageContents {
        ImageContents {
            binary: b"\x7fELF fake".to_vec(),
            libraries: vec![ImageFile {
                path: "lib64/ld-linux-x86-64.so.2".into(),
                mode: 0o755,
                bytes: b"loader".to_vec(),
            }],
            ca_bundle: b"-----BEGIN CERTIFICATE-----".to_vec(),
            version: "1.2.3".into(),
            reference: "comet-server:1.2.3".into(),
        }
    }

    fn entries(tarball: &[u8]) -> BTreeMap<String, (u32, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(tarball);
        let mut found = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").display().to_string();
            let (mode, uid) = (entry.header().mode().expect("mode"), entry.header().uid().expect("uid"));
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read");
            found.insert(path, (mode, uid, bytes));
        }
        found
    }

    #[test]
    fn ldd_output_gives_library_and_loader_paths() {
        let output = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x7f)\n\
                      \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(output),
            Ok(vec![
                "/lib/x86_64-linux-gnu/libz.so.1".to_owned(),
                "/lib/x86_64-linux-gnu/libc.so.6".to_owned(),
                "/lib64/ld-linux-x86-64.so.2".to_owned()
            ])
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").expect_err("missing").contains("libfoo.so.1"));
    }

    #[test]
    fn the_archive_is_a_loadable_docker_save_with_one_deterministic_layer() {
        let first = archive(&contents(), "https://example.invalid/comet").expect("archive");
        let again = archive(&contents(), "https://example.invalid/comet").expect("archive");
        assert_eq!(first, again, "same inputs, same bytes and id");

        let outer = entries(&first.bytes);
        let manifest: serde_json::Value = serde_json::from_slice(&outer["manifest.json"].2).expect("manifest");
        assert_eq!(manifest[0]["RepoTags"][0], "comet-server:1.2.3");
        let config_name = manifest[0]["Config"].as_str().expect("config");
        let config_bytes = &outer[config_name].2;
        assert_eq!(format!("sha256:{}", sha256_hex(config_bytes)), first.image_id);
        let config: serde_json::Value = serde_json::from_slice(config_bytes).expect("config");
        let layer_name = manifest[0]["Layers"][0].as_str().expect("layer");
        let layer_bytes = &outer[layer_name].2;
        assert_eq!(config["rootfs"]["diff_ids"][0], format!("sha256:{}", sha256_hex(layer_bytes)));
        assert_eq!(config["config"]["User"], "10001:10001");
        assert_eq!(config["config"]["Labels"]["org.opencontainers.image.version"], "1.2.3");

        let layer = entries(layer_bytes);
        assert_eq!(layer[BINARY_PATH].0, 0o755);
        assert_eq!(layer["lib64/ld-linux-x86-64.so.2"].2, b"loader");
        assert!(String::from_utf8_lossy(&layer["etc/passwd"].2).contains("comet:x:10001:10001"));
        assert_eq!(
            (layer["var/lib/comet/"].0, layer["var/lib/comet/"].1),
            (0o700, 10001),
            "the data folder is the user's"
        );
        assert_eq!(layer["tmp/"].0, 0o1777);
        assert!(layer.contains_key("usr/local/bin/") && layer.contains_key("etc/ssl/certs/"), "parents exist");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let mut bad = contents();
        bad.libraries.push(ImageFile { path: "../etc/shadow".into(), mode: 0o644, bytes: Vec::new() });
        assert!(archive(&bad, "x").is_err());
    }
}
