//! Secret values: generated once from the operating system's CSPRNG, never regenerated.

use anyhow::{Context as _, Result};

/// 32 random bytes as 64 lowercase hex characters: safe in URLs, env files and every store's password rules.
pub fn generate() -> Result<Vec<u8>> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("{error}")).context("reading the system CSPRNG")?;
    let mut text = String::with_capacity(65);
    for byte in bytes {
        text.push_str(&format!("{byte:02x}"));
    }
    text.push('\n');
    Ok(text.into_bytes())
}
