//! A chat client that reaches a deployment the way users do: HTTPS and WSS through its published NGINX port,
//! verifying the deployment's own (self-signed) certificate for its domain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::Deployment;

/// The longest one expected frame or request may take.
const WAIT: Duration = Duration::from_secs(30);

pub struct Chat {
    pub client: reqwest::Client,
    pub base: String,
    domain: String,
    port: u16,
    key: String,
    cert_pem: Vec<u8>,
    /// The NGINX container, whose error log explains a failed request.
    nginx: String,
}

impl Chat {
    pub fn new(deployment: &Deployment) -> Chat {
        let spec = deployment.spec();
        let cert_pem = std::fs::read(deployment.dir.join(&spec.tls.cert_file)).expect("the deployment's certificate");
        let key = std::fs::read_to_string(deployment.dir.join("secrets/api_key")).expect("api key");
        let address = SocketAddr::from(([127, 0, 0, 1], deployment.https_port));
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert_pem).expect("PEM certificate"))
            .resolve(&spec.domain, address)
            .timeout(WAIT)
            .build()
            .expect("HTTP client");
        Chat {
            client,
            base: format!("https://{}:{}", spec.domain, deployment.https_port),
            domain: spec.domain.clone(),
            port: deployment.https_port,
            key: key.trim().to_owned(),
            cert_pem,
            nginx: format!("{}-nginx-1", deployment.name),
        }
    }

    /// A REST call with the API key; the status and the JSON body (Null when the body is not JSON).
    pub async fn call(&self, path: &str, on_behalf_of: Option<&str>, body: &Value) -> Result<(u16, Value), String> {
        let mut request = self.client.post(format!("{}{path}", self.base)).header("apikey", &self.key).json(body);
        if let Some(uid) = on_behalf_of {
            request = request.header("onBehalfOf", uid);
        }
        let response = request.send().await.map_err(|error| format!("POST {path}: {error}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|error| format!("POST {path}: reading the body: {error}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text.chars().take(300).collect()))))
    }

    async fn ok(&self, path: &str, on_behalf_of: Option<&str>, body: Value) -> Value {
        let (status, reply) = self.call(path, on_behalf_of, &body).await.expect("request completes");
        if status != 200 {
            let (_, access, errors) = crate::harness::docker(&["logs", "--tail", "30", &self.nginx]);
            panic!("POST {path} {body}: {status} {reply}\nNGINX's log:\n{access}\n{errors}");
        }
        reply
    }

    /// Creates a user; returns an auth token for it.
    pub async fn user(&self, uid: &str) -> String {
        self.ok("/v3/users", None, json!({"uid": uid, "name": uid})).await;
        let reply = self.ok(&format!("/v3/users/{uid}/auth_tokens"), None, json!({})).await;
        reply["data"]["authToken"].as_str().expect("authToken").to_owned()
    }

    /// Sends a 1:1 text message; the message as the API returns it.
    pub async fn send(&self, from: &str, to: &str, text: &str) -> Result<Value, String> {
        let body = json!({"receiver": to, "receiverType": "user", "type": "text", "data": {"text": text}});
        match self.call("/v3/messages", Some(from), &body).await? {
            (200, reply) => Ok(reply["data"].clone()),
            (status, reply) => Err(format!("POST /v3/messages answered {status}: {reply}")),
        }
    }

    /// The ids of the 1:1 conversation between `uid` and `with` in conversation order (by `seq`), paging
    /// through all of it.
    pub async fn history_ids(&self, uid: &str, with: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after = 0_i64;
        loop {
            let url = format!("{}/v3/users/{with}/messages?perPage=100&afterSeq={after}", self.base);
            let response = self
                .client
                .get(&url)
                .header("apikey", &self.key)
                .header("onBehalfOf", uid)
                .send()
                .await
                .expect("history request");
            assert_eq!(response.status().as_u16(), 200, "GET {url}");
            let page: Value = response.json().await.expect("history JSON");
            let messages = page["data"].as_array().cloned().unwrap_or_default();
            let Some(last) = messages.iter().filter_map(|message| message["seq"].as_i64()).max() else {
                return ids;
            };
            let mut sorted = messages.clone();
            sorted.sort_by_key(|message| message["seq"].as_i64());
            ids.extend(sorted.iter().map(|message| message["id"].to_string()));
            after = last;
        }
    }

    /// A WebSocket through NGINX (TLS verified against the deployment's certificate), after its `hello`.
    pub async fn connect(&self, token: &str) -> Socket {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(&self.cert_pem) {
            roots.add(cert).expect("root certificate");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.expect("TCP to NGINX");
        let name = rustls::pki_types::ServerName::try_from(self.domain.clone()).expect("server name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake with NGINX");
        let mut request = format!("wss://{}:{}/v3/ws", self.domain, self.port).into_client_request().expect("request");
        request.headers_mut().insert("authtoken", HeaderValue::from_str(token).expect("token header"));
        // A browser's Origin names the port when it is not 443, and the deployment allows exactly that.
        let origin = if self.port == 443 {
            format!("https://{}", self.domain)
        } else {
            format!("https://{}:{}", self.domain, self.port)
        };
        request.headers_mut().insert("origin", HeaderValue::from_str(&origin).expect("origin header"));
        let (socket, _) = tokio_tungstenite::client_async(request, tls).await.expect("WebSocket upgrade through NGINX");
        let mut socket = Socket { socket };
        let hello = socket.next().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        // Go live at once: no resync needed for a fresh user.
        socket.send(json!({"type": "resync", "conversations": []})).await;
        socket.until(|frame| frame["type"] == "resync.done").await;
        socket
    }
}

/// Chat through the deployment's published NGINX port: two users, a REST send from alice, delivered with the
/// same id on bob's WebSocket.
pub fn assert_one_message_delivered(deployment: &Deployment, text: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let chat = Chat::new(deployment);
        let _alice = chat.user("alice").await;
        let bob = chat.user("bob").await;
        let mut socket = chat.connect(&bob).await;
        let sent = chat.send("alice", "bob", text).await.expect("send accepted");
        let frames = socket.until(|frame| frame["type"] == "message.new").await;
        let delivered = frames.last().expect("a frame");
        assert_eq!(delivered["data"]["data"]["text"], text, "{delivered}");
        assert_eq!(delivered["data"]["id"], sent["id"], "{delivered} vs {sent}");
    });
}

/// Every certificate of a PEM bundle.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).map(|cert| cert.expect("PEM certificate")).collect()
}

pub struct Socket {
    socket: WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>,
}

impl Socket {
    pub async fn send(&mut self, frame: Value) {
        self.socket.send(Message::text(frame.to_string())).await.expect("send frame");
    }

    /// The next text frame as JSON.
    pub async fn next(&mut self) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => panic!("no frame within {WAIT:?}"),
                Ok(None) => panic!("socket closed"),
                Ok(Some(Err(error))) => panic!("socket error: {error}"),
                Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).expect("JSON frame"),
                Ok(Some(Ok(Message::Close(frame)))) => panic!("closed with {frame:?}"),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Every frame up to and including the first matching `done`.
    pub async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let finished = done(&frame);
            frames.push(frame);
            if finished {
                return frames;
            }
        }
    }
}
