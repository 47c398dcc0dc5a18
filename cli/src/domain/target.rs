use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a deployment runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// One host with Docker Compose: development, QA and CI. No high availability.
    Compose,
    /// Docker Swarm: production up to about 200k MAU / 20k peak concurrent connections.
    Swarm,
    /// Kubernetes: production above that.
    K8s,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Compose, Target::Swarm, Target::K8s];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Compose => "compose",
            Target::Swarm => "swarm",
            Target::K8s => "k8s",
        }
    }

    /// Swarm and Kubernetes get the high-availability minimums; Compose gets one of each.
    pub fn is_production(self) -> bool {
        !matches!(self, Target::Compose)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
