//! The change lines of a `diff`, `deploy` or `upgrade`: one per object created, replaced, updated or removed.

use serde::Serialize;

use super::Ready;
use super::compose::{self, ContainerChange};
use super::swarm::{self, ServiceChange};

/// One line of `diff` / `deploy` output (and one element of its `--output json` array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeLine {
    pub action: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub reason: String,
}

impl ChangeLine {
    fn new(action: &'static str, kind: &'static str, name: &str, reason: &str) -> ChangeLine {
        ChangeLine { action, kind, name: name.to_owned(), reason: reason.to_owned() }
    }
}

impl compose::Changes {
    /// Networks and volumes created, containers created and replaced in start order, then containers removed.
    pub fn lines(&self) -> Vec<ChangeLine> {
        let line = ChangeLine::new;
        let mut lines = Vec::new();
        lines.extend(self.networks_to_create.iter().map(|name| line("create", "network", name, "new")));
        lines.extend(self.volumes_to_create.iter().map(|name| line("create", "volume", name, "new")));
        for (_, service_changes) in &self.services {
            for change in service_changes {
                match change {
                    ContainerChange::Create { desired, reason } => {
                        lines.push(line("create", "container", &desired.name, reason.describe()));
                    }
                    ContainerChange::Replace { desired, reason } => {
                        let how = if desired.start_first { "start-first" } else { "stop-first" };
                        let reason = format!("{} ({how})", reason.describe());
                        lines.push(line("replace", "container", &desired.name, &reason));
                    }
                    ContainerChange::Keep { .. } => {}
                }
            }
        }
        lines.extend(
            self.containers_to_remove.iter().map(|name| line("remove", "container", name, "no longer in the spec")),
        );
        lines
    }
}

impl swarm::Changes {
    /// Networks, secrets and configs created, services created and updated in start order, then services and
    /// the secrets and configs nothing uses removed.
    pub fn lines(&self) -> Vec<ChangeLine> {
        let line = ChangeLine::new;
        let mut lines = Vec::new();
        lines.extend(self.networks_to_create.iter().map(|name| line("create", "network", name, "new")));
        lines.extend(
            self.objects_to_create.iter().map(|(kind, name)| line("create", kind.as_str(), name, "new content")),
        );
        for change in &self.services {
            match change {
                ServiceChange::Create { desired } => lines.push(line("create", "service", &desired.name, "new")),
                ServiceChange::Update { desired, reason, .. } => {
                    let how = if desired.ready == Ready::Completed { "run again" } else { "rolling update" };
                    lines.push(line("update", "service", &desired.name, &format!("{} ({how})", reason.describe())));
                }
                ServiceChange::Keep { .. } => {}
            }
        }
        lines.extend(
            self.services_to_remove.iter().map(|name| line("remove", "service", name, "no longer in the spec")),
        );
        lines.extend(
            self.objects_to_remove.iter().map(|(kind, name)| line("remove", kind.as_str(), name, "replaced or unused")),
        );
        lines
    }
}
