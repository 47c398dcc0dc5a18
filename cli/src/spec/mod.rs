//! cometctl.yaml: the deployment spec, parsed once into typed values.
//!
//! Pure: text in, `Spec` or a located error out. Unknown keys are rejected; every error names
//! `file:line:col` and what was expected.

mod locate;
mod model;
mod write;

pub use model::{
    Backup, DeploymentName, Edge, Host, ImageRef, Images, InitialSpec, Kubernetes, Observability, Port, Retention,
    SPEC_VERSION, Spec, Tls, TlsMode,
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

#[cfg(test)]
mod tests;
