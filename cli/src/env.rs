//! Every environment variable cometctl reads, in one place.

/// Default for `--dir`: the deployment folder.
pub const COMETCTL_DIR: &str = "COMETCTL_DIR";
/// Default for `--templates`: a folder whose templates override the embedded ones.
pub const COMETCTL_TEMPLATES: &str = "COMETCTL_TEMPLATES";
/// Any non-empty value turns colour off (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";

/// Whether `NO_COLOR` asks for no colour.
pub fn no_color() -> bool {
    std::env::var_os(NO_COLOR).is_some_and(|value| !value.is_empty())
}
