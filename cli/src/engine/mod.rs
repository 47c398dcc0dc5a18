//! The Docker Engine, through its API (bollard): the only code that imports bollard (and hyper, for the few
//! requests bollard lacks). Calls block on a small runtime of their own, so the commands stay synchronous.
//! `DOCKER_HOST` picks the engine (the local socket by default); the API version is negotiated, so older
//! engines (20.10, API 1.41) work. One file per kind of Engine object; what they observe is returned as the
//! plain data of `plan::observed`, so code that reasons about state never sees bollard's types.

mod containers;
mod exec;
mod images;
mod networks;
mod objects;
mod services;
mod swarm;
mod system;

use std::collections::HashMap;

use bollard::Docker;

use crate::plan::labels::DEPLOYMENT_LABEL;

/// Why the Engine could not do what was asked; the text says what was being done and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(String);

/// A connection to one Docker Engine.
pub struct Engine {
    docker: Docker,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Connects and checks that the Engine answers.
    pub fn connect() -> Result<Engine, EngineError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| EngineError(format!("starting the Engine client: {error}")))?;
        let unreachable = |error: bollard::errors::Error| {
            EngineError(format!(
                "the Docker Engine does not answer ({error}); is dockerd running, and does DOCKER_HOST (unset: \
                 /var/run/docker.sock) point at it?"
            ))
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = runtime.block_on(docker.negotiate_version()).map_err(unreachable)?;
        runtime.block_on(docker.ping()).map_err(unreachable)?;
        Ok(Engine { docker, runtime })
    }

    fn label_filter(deployment: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_owned(), vec![format!("{DEPLOYMENT_LABEL}={deployment}")])])
    }
}

/// The keys of `original` (recursively) that a typed model dropped: a misspelt or unsupported field would
/// otherwise vanish silently between our JSON and the request.
fn dropped_fields(original: &serde_json::Value, typed: &serde_json::Value, path: &str, dropped: &mut Vec<String>) {
    use serde_json::Value;
    match (original, typed) {
        (Value::Object(original), Value::Object(typed)) => {
            for (key, value) in original {
                let here = format!("{path}.{key}");
                match typed.get(key) {
                    None if !value.is_null() => dropped.push(here),
                    None => {}
                    Some(typed_value) => dropped_fields(value, typed_value, &here, dropped),
                }
            }
        }
        (Value::Array(original), Value::Array(typed)) => {
            for (index, (value, typed_value)) in original.iter().zip(typed).enumerate() {
                dropped_fields(value, typed_value, &format!("{path}[{index}]"), dropped);
            }
        }
        _ => {}
    }
}

/// `body` as bollard's model of it, refusing fields the model does not know.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    what: &str,
    body: serde_json::Value,
) -> Result<T, EngineError> {
    let typed: T = serde_json::from_value(body.clone())
        .map_err(|error| EngineError(format!("{what}: invalid request: {error}")))?;
    let back = serde_json::to_value(&typed).map_err(|error| EngineError(format!("{what}: {error}")))?;
    let mut dropped = Vec::new();
    dropped_fields(&body, &back, "", &mut dropped);
    if !dropped.is_empty() {
        return Err(EngineError(format!("{what}: the Engine client does not know the fields {}", dropped.join(", "))));
    }
    Ok(typed)
}

/// Checks that a `ServiceSpec` survives the Engine client's model whole (no unknown or misspelt field), before
/// anything is changed.
pub fn check_service_spec(spec: serde_json::Value) -> Result<(), EngineError> {
    let name = spec["Name"].as_str().unwrap_or("(unnamed)").to_owned();
    typed::<bollard::models::ServiceSpec>(&format!("service {name}"), spec).map(|_| ())
}

fn labels_of(labels: Option<HashMap<String, String>>) -> HashMap<String, String> {
    labels.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_a_model_drops_are_named() {
        let body = serde_json::json!({
            "Name": "t_api",
            "TaskTemplate": { "ContainerSpec": { "Image": "comet:1", "Imagee": "typo" }, "ForceUpdate": 0 },
            "Mode": { "Replicated": { "Replicas": 2 } },
        });
        let error = typed::<bollard::models::ServiceSpec>("service t_api", body).expect_err("a dropped field");
        assert!(error.to_string().contains(".TaskTemplate.ContainerSpec.Imagee"), "{error}");
    }
}
