//! Swarm secrets and configs. bollard 0.19 has no `/configs` endpoints, so those requests go over the same
//! socket with hyper (`raw`).

use std::collections::HashMap;

use super::{Engine, EngineError, labels_of};
use crate::plan::observed::{ObjectKind, SwarmObject};

impl Engine {
    /// The secrets or configs labelled as part of `deployment`, by name.
    pub fn swarm_objects(&self, kind: ObjectKind, deployment: &str) -> Result<Vec<SwarmObject>, EngineError> {
        let failed = |error: String| EngineError(format!("listing the {}s of {deployment}: {error}", kind.as_str()));
        let mut objects: Vec<SwarmObject> = match kind {
            ObjectKind::Secret => {
                let options = bollard::query_parameters::ListSecretsOptionsBuilder::default()
                    .filters(&Engine::label_filter(deployment))
                    .build();
                self.runtime
                    .block_on(self.docker.list_secrets(Some(options)))
                    .map_err(|error| failed(error.to_string()))?
                    .into_iter()
                    .map(|secret| {
                        let spec = secret.spec.unwrap_or_default();
                        SwarmObject {
                            id: secret.id.unwrap_or_default(),
                            name: spec.name.unwrap_or_default(),
                            labels: labels_of(spec.labels),
                        }
                    })
                    .collect()
            }
            ObjectKind::Config => {
                let filters = serde_json::to_string(&Engine::label_filter(deployment))
                    .map_err(|error| failed(error.to_string()))?;
                let path = format!("/configs?filters={}", percent_encode(&filters));
                let reply = self.raw("GET", &path, None).map_err(|error| failed(error.0))?;
                let listed: Vec<bollard::models::Config> =
                    serde_json::from_slice(&reply).map_err(|error| failed(error.to_string()))?;
                listed
                    .into_iter()
                    .map(|config| {
                        let spec = config.spec.unwrap_or_default();
                        SwarmObject {
                            id: config.id.unwrap_or_default(),
                            name: spec.name.unwrap_or_default(),
                            labels: labels_of(spec.labels),
                        }
                    })
                    .collect()
            }
        };
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    /// Creates a secret or config holding `content`; returns its id.
    pub fn create_swarm_object(
        &self,
        kind: ObjectKind,
        name: &str,
        content: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError> {
        use base64::Engine as _;
        let failed = |error: String| EngineError(format!("creating {} {name}: {error}", kind.as_str()));
        let data = base64::engine::general_purpose::STANDARD.encode(content);
        match kind {
            ObjectKind::Secret => {
                let spec = bollard::models::SecretSpec {
                    name: Some(name.to_owned()),
                    labels: Some(labels),
                    data: Some(data),
                    ..Default::default()
                };
                let created = self
                    .runtime
                    .block_on(self.docker.create_secret(spec))
                    .map_err(|error| failed(error.to_string()))?;
                Ok(created.id)
            }
            ObjectKind::Config => {
                let body = serde_json::json!({ "Name": name, "Labels": labels, "Data": data });
                let reply = self
                    .raw("POST", "/configs/create", Some(body.to_string().into_bytes()))
                    .map_err(|e| failed(e.0))?;
                let created: bollard::models::IdResponse =
                    serde_json::from_slice(&reply).map_err(|error| failed(error.to_string()))?;
                Ok(created.id)
            }
        }
    }

    pub fn remove_swarm_object(&self, kind: ObjectKind, id: &str) -> Result<(), EngineError> {
        let failed = |error: String| EngineError(format!("removing {} {id}: {error}", kind.as_str()));
        match kind {
            ObjectKind::Secret => match self.runtime.block_on(self.docker.delete_secret(id)) {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
                Err(error) => Err(failed(error.to_string())),
            },
            ObjectKind::Config => {
                self.raw("DELETE", &format!("/configs/{id}"), None).map(|_| ()).map_err(|e| failed(e.0))
            }
        }
    }

    /// One request to the Engine API without bollard (which has no `/configs` endpoints), over the same
    /// connection `DOCKER_HOST` names (a unix socket or plain `tcp://`), at the negotiated API version. A reply
    /// other than 2xx (404 for a DELETE excepted) is an error carrying the Engine's message.
    fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<Vec<u8>, EngineError> {
        use http_body_util::BodyExt as _;
        let version = self.docker.client_version();
        let uri = format!("/v{}.{}{path}", version.major_version, version.minor_version);
        let host = crate::env::docker_host().unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let failed = |error: String| EngineError(format!("{method} {path}: {error}"));
        self.runtime.block_on(async {
            let request = hyper::Request::builder()
                .method(method)
                .uri(&uri)
                .header("Host", "docker")
                .header("Content-Type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
                .map_err(|error| failed(error.to_string()))?;
            let response = if let Some(socket) = host.strip_prefix("unix://") {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|error| failed(format!("{socket}: {error}")))?;
                send(stream, request).await
            } else if let Some(address) = host.strip_prefix("tcp://") {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .map_err(|error| failed(format!("{address}: {error}")))?;
                send(stream, request).await
            } else {
                Err(format!(
                    "Swarm configs need the Engine on a unix socket or a plain tcp:// address, and DOCKER_HOST is \
                     `{host}`: run cometctl on a manager node with its local socket"
                ))
            }
            .map_err(failed)?;
            let status = response.status();
            let bytes = response.into_body().collect().await.map_err(|error| failed(error.to_string()))?.to_bytes();
            if status.is_success() || (method == "DELETE" && status.as_u16() == 404) {
                return Ok(bytes.to_vec());
            }
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|reply| reply["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            Err(failed(format!("the Engine answered {status}: {message}")))
        })
    }
}

/// Sends one HTTP/1 request over `stream`.
async fn send<S>(
    stream: S,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(|error| error.to_string())
}

/// A query-string value with everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode(r#"{"label":["a=b"]}"#), "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D");
    }
}
