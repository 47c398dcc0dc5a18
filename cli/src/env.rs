//! Every environment variable cometctl reads, in one place.

/// Default for `--dir`: the deployment folder.
pub const COMETCTL_DIR: &str = "COMETCTL_DIR";
/// Default for `--templates`: a folder whose templates override the embedded ones.
pub const COMETCTL_TEMPLATES: &str = "COMETCTL_TEMPLATES";
/// Default for `--playbooks`: a folder whose playbooks override or add to the embedded ones.
pub const COMETCTL_PLAYBOOKS: &str = "COMETCTL_PLAYBOOKS";
/// The Docker Engine to talk to (`unix:///var/run/docker.sock` when unset); bollard reads it too.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// Any non-empty value turns colour off (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";

/// Whether `NO_COLOR` asks for no colour.
pub fn no_color() -> bool {
    std::env::var_os(NO_COLOR).is_some_and(|value| !value.is_empty())
}

/// `DOCKER_HOST`, when set and not empty.
pub fn docker_host() -> Option<String> {
    std::env::var(DOCKER_HOST).ok().filter(|value| !value.is_empty())
}
