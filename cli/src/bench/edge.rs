//! The deployment as its users reach it: HTTPS and WSS to the published NGINX port on this host, the
//! deployment's own certificate trusted for its domain (nothing else is trusted, and nothing leaves the host).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// How long one request or handshake may take.
const TIMEOUT: Duration = Duration::from_secs(30);

pub type Socket = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// A client of one deployment's edge.
pub struct Edge {
    client: reqwest::Client,
    base: String,
    domain: String,
    port: u16,
    key: String,
    tls: tokio_rustls::TlsConnector,
}

impl Edge {
    /// A client of `domain` served on 127.0.0.1:`port` with the certificate `cert_pem`, using the API key.
    pub fn new(domain: &str, port: u16, cert_pem: &[u8], key: &str) -> Result<Edge, String> {
        use rustls::pki_types::pem::PemObject as _;
        let certificate =
            reqwest::Certificate::from_pem(cert_pem).map_err(|error| format!("the certificate: {error}"))?;
        let client = reqwest::Client::builder()
            .add_root_certificate(certificate)
            .resolve(domain, SocketAddr::from(([127, 0, 0, 1], port)))
            .timeout(TIMEOUT)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|error| format!("the HTTP client: {error}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
            let cert = cert.map_err(|error| format!("the certificate: {error}"))?;
            roots.add(cert).map_err(|error| format!("the certificate: {error}"))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Edge {
            client,
            base: format!("https://{domain}:{port}"),
            domain: domain.to_owned(),
            port,
            key: key.to_owned(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// POST `path` with the API key (and `onBehalfOf`); the JSON reply of a 200, an error otherwise.
    pub async fn post(&self, path: &str, on_behalf_of: Option<&str>, body: &Value) -> Result<Value, String> {
        let mut request = self.client.post(format!("{}{path}", self.base)).header("apikey", &self.key).json(body);
        if let Some(uid) = on_behalf_of {
            request = request.header("onBehalfOf", uid);
        }
        let response = request.send().await.map_err(|error| format!("POST {path}: {error}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|error| format!("POST {path}: {error}"))?;
        if status != 200 {
            return Err(format!("POST {path}: {status} {}", text.chars().take(200).collect::<String>()));
        }
        serde_json::from_str(&text).map_err(|error| format!("POST {path}: {error}"))
    }

    /// DELETE `path` with the API key.
    pub async fn delete(&self, path: &str) -> Result<(), String> {
        let response = self
            .client
            .delete(format!("{}{path}", self.base))
            .header("apikey", &self.key)
            .send()
            .await
            .map_err(|error| format!("DELETE {path}: {error}"))?;
        match response.status().as_u16() {
            200 | 204 => Ok(()),
            status => Err(format!("DELETE {path}: {status}")),
        }
    }

    /// Creates the user `uid`; an auth token for it.
    pub async fn user(&self, uid: &str) -> Result<String, String> {
        self.post("/v3/users", None, &json!({"uid": uid, "name": uid})).await?;
        let reply = self.post(&format!("/v3/users/{uid}/auth_tokens"), None, &json!({})).await?;
        reply["data"]["authToken"].as_str().map(str::to_owned).ok_or_else(|| format!("no authToken for {uid}: {reply}"))
    }

    /// A WebSocket through NGINX for the holder of `token`, live (its `hello` read, an empty resync done).
    pub async fn connect(&self, token: &str) -> Result<Socket, String> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.map_err(|error| format!("TCP: {error}"))?;
        let name = rustls::pki_types::ServerName::try_from(self.domain.clone()).map_err(|error| error.to_string())?;
        let tls = self.tls.connect(name, tcp).await.map_err(|error| format!("TLS: {error}"))?;
        let mut request = format!("wss://{}:{}/v3/ws", self.domain, self.port)
            .into_client_request()
            .map_err(|error| error.to_string())?;
        let header = |value: &str| HeaderValue::from_str(value).map_err(|error| error.to_string());
        request.headers_mut().insert("authtoken", header(token)?);
        let origin = if self.port == 443 {
            format!("https://{}", self.domain)
        } else {
            format!("https://{}:{}", self.domain, self.port)
        };
        request.headers_mut().insert("origin", header(&origin)?);
        let (mut socket, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(request, tls))
            .await
            .map_err(|_| "the WebSocket upgrade timed out".to_owned())?
            .map_err(|error| format!("the WebSocket upgrade: {error}"))?;
        until(&mut socket, "hello").await?;
        use futures::SinkExt as _;
        socket
            .send(Message::text(json!({"type": "resync", "conversations": []}).to_string()))
            .await
            .map_err(|error| format!("resync: {error}"))?;
        until(&mut socket, "resync.done").await?;
        Ok(socket)
    }
}

/// Reads frames until one of type `kind`.
async fn until(socket: &mut Socket, kind: &str) -> Result<(), String> {
    loop {
        match tokio::time::timeout(TIMEOUT, socket.next()).await {
            Err(_) => return Err(format!("no `{kind}` within {}s", TIMEOUT.as_secs())),
            Ok(None | Some(Ok(Message::Close(_)))) => return Err(format!("closed before `{kind}`")),
            Ok(Some(Err(error))) => return Err(format!("before `{kind}`: {error}")),
            Ok(Some(Ok(Message::Text(text)))) => {
                if serde_json::from_str::<Value>(&text).is_ok_and(|frame| frame["type"] == kind) {
                    return Ok(());
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}
