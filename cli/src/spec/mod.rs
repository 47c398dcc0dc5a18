//! cometctl.yaml: the deployment spec, parsed once into typed values.
//!
//! Pure: text in, `Spec` or a located error out. Unknown keys are rejected; every error names
//! `file:line:col` and what was expected.

mod compare;
mod edit;
mod locate;
mod model;
mod write;

pub use compare::{Difference, differences};
pub use model::{
    Backup, CustomApi, DeploymentName, Edge, Host, ImageRef, Images, InitialSpec, Integrations, Kubernetes,
    MAX_NAME_LENGTH, Observability, Port, Retention, SPEC_VERSION, Spec, Tls, TlsMode,
};
pub use write::to_yaml;

/// The spec's file name inside a deployment folder.
pub const SPEC_FILE: &str = "cometctl.yaml";

/// A spec error: always names the file, and the line and column when the text has them.
pub type SpecError = crate::yaml::YamlError;

/// Parses and checks a spec. `file` is only used to name the file in errors.
pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
    let spec: Spec = crate::yaml::from_str(file, text)?;
    if let Some((path, problem)) = spec.problems().into_iter().next() {
        return Err(SpecError::at(file, locate::locate(text, &path), format!("`{path}` {problem}")));
    }
    Ok(spec)
}

/// `text` with the values that differ between `from` and `to` changed in place (comments and layout kept),
/// checked to read back as exactly `to`; `None` when it cannot be edited so (the caller writes the spec whole).
pub fn edited(file: &str, text: &str, from: &Spec, to: &Spec) -> Option<String> {
    let edited = edit::in_place(text, from, to)?;
    (parse(file, &edited).ok()? == *to).then_some(edited)
}

/// A spec as `init` writes it for `mau` monthly users on `target` (for unit tests across modules).
#[cfg(test)]
pub(crate) fn sized_for_tests(mau: &str, target: crate::domain::Target) -> Spec {
    use crate::domain::Concurrency;
    use crate::sizing::{self, Profile, SizingRequest};
    let profile = Profile::embedded().expect("profile");
    let request = SizingRequest {
        mau: mau.parse().expect("mau"),
        concurrency: Concurrency::Baseline,
        target,
        message_retention_days: 365,
    };
    let plan = sizing::plan(&profile, &request).expect("plan");
    Spec::initial(InitialSpec {
        name: DeploymentName::parse("comet").expect("name"),
        target,
        domain: "chat.example.com".to_owned(),
        mau: plan.mau,
        concurrency: plan.concurrency,
        message_retention_days: 365,
        kafka_retention_hours: 168,
        comet_version: "0.1.0".to_owned(),
        tls_mode: TlsMode::SelfSigned,
        plan: plan.allocation,
    })
}

#[cfg(test)]
mod tests;
