//! Every environment variable cometctl reads, in one place.

/// Default for `--dir`: the deployment folder.
pub const COMETCTL_DIR: &str = "COMETCTL_DIR";
/// Default for `--templates`: a folder whose templates override the embedded ones.
pub const COMETCTL_TEMPLATES: &str = "COMETCTL_TEMPLATES";
/// Default for `--playbooks`: a folder whose playbooks override or add to the embedded ones.
pub const COMETCTL_PLAYBOOKS: &str = "COMETCTL_PLAYBOOKS";
/// The Docker Engine to talk to (`unix:///var/run/docker.sock` when unset); bollard reads it too.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// S3 backup targets (`s3://bucket/prefix`): the access key, its secret, an optional session token, the region
/// (default us-east-1), and the endpoint of a store other than AWS (MinIO, SeaweedFS, Ceph; path-style URLs).
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// Any non-empty value turns colour off (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";

/// Whether `NO_COLOR` asks for no colour.
pub fn no_color() -> bool {
    std::env::var_os(NO_COLOR).is_some_and(|value| !value.is_empty())
}

/// The variable `name`, when set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// `DOCKER_HOST`, when set and not empty.
pub fn docker_host() -> Option<String> {
    var(DOCKER_HOST)
}
