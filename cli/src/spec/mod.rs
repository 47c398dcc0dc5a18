//! cometctl.yaml: the deployment spec, parsed once into typed values.
//!
//! Pure: text in, `Spec` or a located error out. Unknown keys are rejected; every error names
//! `file:line:col` and what was expected.

mod locate;
mod model;
mod write;

pub use model::{
    Backup, DeploymentName, Edge, ImageRef, Images, InitialSpec, Kubernetes, Observability, Retention, Spec, Tls, TlsMode,
    SPEC_VERSION,
};
pub use write::to_yaml;

/// The spec's file name inside a deployment folder.
pub const SPEC_FILE: &str = "cometctl.yaml";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}:{line}:{column}: {message}")]
    Located { file: String, line: u64, column: u64, message: String },
    #[error("{file}: {message}")]
    Unlocated { file: String, message: String },
}

/// Parses and checks a spec. `file` is only used to name the file in errors.
pub fn parse(file: &str, text: &str) -> Result<Spec, SpecError> {
    let spec: Spec = serde_saphyr::from_str(text).map_err(|error| {
        let message = first_line_of(&error);
        match error.location() {
            Some(location) if location.line() > 0 => SpecError::Located {
                file: file.to_owned(),
                line: location.line(),
                column: location.column(),
                message,
            },
            _ => SpecError::Unlocated { file: file.to_owned(), message },
        }
    })?;
    let problems = spec.problems();
    if let Some((path, problem)) = problems.into_iter().next() {
        let message = format!("`{path}` {problem}");
        return Err(match locate::locate(text, &path) {
            Some((line, column)) => SpecError::Located { file: file.to_owned(), line, column, message },
            None => SpecError::Unlocated { file: file.to_owned(), message },
        });
    }
    Ok(spec)
}

/// serde-saphyr renders a snippet under its message; the location is printed by us, so keep the message.
fn first_line_of(error: &serde_saphyr::Error) -> String {
    let rendered = error.to_string();
    let message = rendered.lines().find(|line| !line.trim().is_empty()).unwrap_or("invalid YAML").trim();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    // The library spells the location as "line X column Y: "; we print it as file:line:col in front.
    let message = match message.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, rest)) if position.contains("column") => rest,
        _ => message,
    };
    // Advice aimed at programmers using the library, not at the operator editing the file.
    let message = message.split(", set DuplicateKeyPolicy").next().unwrap_or(message);
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
