//! The API keys. cometctl passes its generated secrets (`COMET_API_KEY_FILE`, `COMET_AUTH_KEY_FILE`); the
//! embedded mode without them generates a pair on first start, keeps it in the data folder (mode 0600) and
//! prints it once, so a newcomer can call the API right away.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::config::{API_KEY, AUTH_KEY, Settings};

pub const KEYS_FILE: &str = "api-keys.env";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub full: String,
    pub auth_only: String,
}

fn random_key() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

/// Keys from the settings; else from (or newly into) `<data dir>/api-keys.env`. Returns whether they were
/// generated just now.
pub fn load_or_create(settings: &Settings, data_dir: &Path) -> Result<(Keys, bool)> {
    if let (Some(full), Some(auth_only)) = (settings.get(API_KEY)?, settings.get(AUTH_KEY)?) {
        return Ok((Keys { full, auth_only }, false));
    }
    let path = data_dir.join(KEYS_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let value =
            |name: &str| text.lines().find_map(|line| line.strip_prefix(&format!("{name}="))).map(str::to_owned);
        if let (Some(full), Some(auth_only)) = (value(API_KEY), value(AUTH_KEY)) {
            return Ok((Keys { full, auth_only }, false));
        }
        anyhow::bail!("{} lacks {API_KEY} or {AUTH_KEY}; remove it to generate a new pair", path.display());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let keys = Keys { full: random_key(), auth_only: random_key() };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{API_KEY}={}\n{AUTH_KEY}={}", keys.full, keys.auth_only)?;
    Ok((keys, true))
}
