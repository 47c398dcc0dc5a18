//! `--dir`: declared once, flattened into every command that works on a deployment folder.

use std::path::PathBuf;

use clap::Args;

use crate::env;

/// The deployment folder, for every command that works on one.
#[derive(Debug, Args)]
pub struct FolderArg {
    /// The deployment folder.
    #[arg(long, env = env::COMETCTL_DIR, default_value = ".")]
    pub dir: PathBuf,
}
