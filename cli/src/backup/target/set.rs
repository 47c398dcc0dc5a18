//! What both kinds of target share: a set as listed, the manifest's file name, a part being read back.

use std::io::BufRead;

use crate::backup::manifest::Manifest;

pub const MANIFEST_FILE: &str = "manifest.json";

/// One set of a target, as listed.
#[derive(Debug, Clone)]
pub enum Listed {
    /// A complete set and its manifest.
    Complete { id: String, manifest: Box<Manifest> },
    /// A set that was interrupted (no manifest) or whose manifest cannot be read.
    Incomplete { id: String, why: String },
}

impl Listed {
    pub fn id(&self) -> &str {
        match self {
            Listed::Complete { id, .. } => id,
            Listed::Incomplete { id, .. } => id,
        }
    }
}

/// A part being read back.
pub type PartReader = Box<dyn BufRead + Send>;
