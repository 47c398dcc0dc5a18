//! Local servers that implement the providers' documented contracts, keys made at test time, and the clock.
//!
//! - [`FcmServer`]: Google's OAuth 2 token endpoint for service accounts (an RS256 JWT assertion, verified
//!   with the test account's public key: `iss`, `scope`, `aud`, `exp`) and FCM HTTP v1's `messages:send`
//!   (bearer token issued here, `message.token`, string-valued `data`) with its error bodies
//!   (`UNREGISTERED` 404, `QUOTA_EXCEEDED` 429 with `Retry-After`, `UNAVAILABLE` 503).
//! - [`ApnsServer`]: APNs' provider API over HTTP/2 and TLS (ALPN `h2`, a certificate made here), verifying the
//!   ES256 provider token with the test key's public half (`kid`, `iss`, not older than an hour), the
//!   `apns-topic`, `apns-push-type` and `apns-collapse-id` headers, answering as Apple documents: 200 with
//!   `apns-id`, 400 `BadDeviceToken`, 410 `Unregistered`, 429 `TooManyRequests`, 403 `ExpiredProviderToken`.
//!
//! Device tokens choose the answer: `gone…` unregistered, `bad…` (APNs) a bad token, `throttle…` throttled
//! once, `down…` unavailable, anything else delivered. The verification code is aws-lc-rs, not the ring the
//! crate signs with.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use comet_model::{Millis, now_millis};
use comet_notifications::Clock;
use serde_json::{Value, json};

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(now: Millis) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(now)))
    }

    pub fn advance(&self, by: Millis) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).unwrap_or("")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A new RSA-2048 key: (PKCS#8 PEM, public key DER).
pub fn rsa_key() -> (String, Vec<u8>) {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::KeyPair as _;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
    let der = key.as_der().expect("PKCS#8");
    (pem("PRIVATE KEY", der.as_ref()), key.public_key().as_ref().to_vec())
}

/// A new P-256 key like an APNs `.p8`: (PKCS#8 PEM, uncompressed public point).
pub fn p256_key() -> (String, Vec<u8>) {
    use aws_lc_rs::signature::KeyPair as _;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let signing = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let document = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(signing, &rng).expect("P-256 key");
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(signing, document.as_ref()).expect("P-256 key");
    (pem("PRIVATE KEY", document.as_ref()), pair.public_key().as_ref().to_vec())
}

/// The header and claims of a compact JWS whose signature `verify` accepts.
fn verified_jwt(jwt: &str, verify: impl FnOnce(&[u8], &[u8]) -> bool) -> Option<(Value, Value)> {
    let mut parts = jwt.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if !verify(format!("{header}.{claims}").as_bytes(), &signature) {
        return None;
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    Some((header, claims))
}

fn fcm_error(status: StatusCode, name: &str, code: Option<&str>) -> Response {
    let mut error = json!({"code": status.as_u16(), "message": name, "status": name});
    if let Some(code) = code {
        error["details"] = json!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// FCM as Google documents it.
pub struct FcmState {
    public_key: Vec<u8>,
    pub client_email: String,
    pub project: String,
    pub token_uri: Mutex<String>,
    pub expires_in: AtomicI64,
    /// How long each send is held before it is answered (ms).
    pub delay_ms: AtomicU64,
    issued: Mutex<HashSet<String>>,
    pub token_requests: AtomicU64,
    /// Every `message` accepted (2xx), in order.
    pub delivered: Mutex<Vec<Value>>,
    /// Every send request's device token, answered or not.
    pub attempts: Mutex<Vec<String>>,
    throttled: Mutex<HashSet<String>>,
}

pub struct FcmServer {
    pub url: String,
    pub state: Arc<FcmState>,
    pub private_key: String,
}

impl FcmServer {
    pub async fn start() -> FcmServer {
        let (private_key, public_key) = rsa_key();
        let state = Arc::new(FcmState {
            public_key,
            client_email: "push@test-project.iam.gserviceaccount.com".to_owned(),
            project: "test-project".to_owned(),
            token_uri: Mutex::new(String::new()),
            expires_in: AtomicI64::new(3600),
            delay_ms: AtomicU64::new(0),
            issued: Mutex::new(HashSet::new()),
            token_requests: AtomicU64::new(0),
            delivered: Mutex::new(Vec::new()),
            attempts: Mutex::new(Vec::new()),
            throttled: Mutex::new(HashSet::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        *state.token_uri.lock().expect("lock") = format!("{url}/token");
        let app = axum::Router::new().fallback(fcm_route).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FcmServer { url, state, private_key }
    }

    /// The service-account JSON file Google hands out, for this server.
    pub fn service_account(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": self.state.project,
            "private_key_id": "k1",
            "private_key": self.private_key,
            "client_email": self.state.client_email,
            "token_uri": *self.state.token_uri.lock().expect("lock"),
        })
        .to_string()
    }

    pub fn delivered_tokens(&self) -> Vec<String> {
        let delivered = self.state.delivered.lock().expect("lock");
        delivered.iter().filter_map(|message| message["token"].as_str().map(str::to_owned)).collect()
    }
}

async fn fcm_route(State(state): State<Arc<FcmState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if path == "/token" {
        return fcm_token(&state, &body);
    }
    if path == format!("/v1/projects/{}/messages:send", state.project) {
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        return fcm_send(&state, &headers, &body);
    }
    StatusCode::NOT_FOUND.into_response()
}

fn fcm_token(state: &FcmState, body: &[u8]) -> Response {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url_form(body);
    let invalid = |description: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": description})))
            .into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return invalid("grant_type");
    }
    let Some(assertion) = form.get("assertion") else { return invalid("assertion") };
    let verified = verified_jwt(assertion, |input, signature| {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &state.public_key).verify(input, signature).is_ok()
    });
    let Some((header, claims)) = verified else { return invalid("Invalid JWT Signature.") };
    let token_uri = state.token_uri.lock().expect("lock").clone();
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0));
    if header["alg"] != "RS256"
        || claims["iss"] != state.client_email.as_str()
        || claims["aud"] != token_uri.as_str()
        || claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging"
        || exp <= iat
        || exp - iat > 3600
    {
        return invalid("Invalid JWT: claims");
    }
    let token = format!("ya29.test-{}", state.token_requests.load(Ordering::SeqCst));
    state.issued.lock().expect("lock").insert(token.clone());
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    axum::Json(json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})).into_response()
}

fn fcm_send(state: &FcmState, headers: &HeaderMap, body: &[u8]) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !state.issued.lock().expect("lock").contains(bearer) {
        return fcm_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None);
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"));
    };
    let message = &request["message"];
    let Some(token) = message["token"].as_str() else {
        return fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"));
    };
    state.attempts.lock().expect("lock").push(token.to_owned());
    let strings_only = message["data"].as_object().is_none_or(|data| data.values().all(Value::is_string));
    if !strings_only {
        return fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"));
    }
    if token.starts_with("gone") {
        return fcm_error(StatusCode::NOT_FOUND, "NOT_FOUND", Some("UNREGISTERED"));
    }
    if token.starts_with("down") {
        return fcm_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", Some("UNAVAILABLE"));
    }
    if token.starts_with("throttle") && state.throttled.lock().expect("lock").insert(token.to_owned()) {
        let mut response = fcm_error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"));
        response.headers_mut().insert("retry-after", "2".parse().expect("header"));
        return response;
    }
    let mut delivered = state.delivered.lock().expect("lock");
    delivered.push(message.clone());
    let name = format!("projects/{}/messages/{}", state.project, delivered.len());
    axum::Json(json!({ "name": name })).into_response()
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (decode_component(key), decode_component(value)))
        .collect()
}

fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One request APNs received.
#[derive(Debug, Clone)]
pub struct ApnsRequest {
    pub device: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub jwt: String,
    pub http2: bool,
}

pub struct ApnsState {
    public_key: Vec<u8>,
    pub key_id: String,
    pub team_id: String,
    pub topic: String,
    /// Every request with a valid provider token, answered 200 or not.
    pub requests: Mutex<Vec<ApnsRequest>>,
    throttled: Mutex<HashSet<String>>,
}

pub struct ApnsServer {
    pub url: String,
    /// The server certificate (self-signed) the client must trust.
    pub ca_pem: String,
    pub key_pem: String,
    pub state: Arc<ApnsState>,
}

impl ApnsServer {
    pub async fn start() -> ApnsServer {
        use tokio_rustls::rustls;
        let (key_pem, public_key) = p256_key();
        let state = Arc::new(ApnsState {
            public_key,
            key_id: "ABC123DEFG".to_owned(),
            team_id: "TEAM123456".to_owned(),
            topic: "com.example.chat".to_owned(),
            requests: Mutex::new(Vec::new()),
            throttled: Mutex::new(HashSet::new()),
        });
        let certificate_key = rcgen::KeyPair::generate().expect("certificate key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let certificate = params.self_signed(&certificate_key).expect("certificate");
        let ca_pem = certificate.pem();
        let chain = vec![rustls::pki_types::CertificateDer::from(certificate.der().to_vec())];
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
            certificate_key.serialize_der(),
        ));
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let port = listener.local_addr().expect("address").port();
        let served = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let state = served.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(socket).await else { return };
                    let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(apns_answer(&state, request, negotiated_h2).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ApnsServer { url: format!("https://localhost:{port}"), ca_pem, key_pem, state }
    }

    pub fn requests(&self) -> Vec<ApnsRequest> {
        self.state.requests.lock().expect("lock").clone()
    }
}

type ApnsResponse = hyper::Response<http_body_util::Full<bytes::Bytes>>;

fn apns_reply(status: u16, reason: Option<&str>) -> ApnsResponse {
    let body = match reason {
        Some(reason) if status == 410 => json!({"reason": reason, "timestamp": now_millis()}).to_string(),
        Some(reason) => json!({ "reason": reason }).to_string(),
        None => String::new(),
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    response.headers_mut().insert("apns-id", "8A1D3A4E-2B6C-4F0E-9E1A-000000000001".parse().expect("header"));
    response
}

async fn apns_answer(
    state: &ApnsState,
    request: hyper::Request<hyper::body::Incoming>,
    negotiated_h2: bool,
) -> ApnsResponse {
    use http_body_util::BodyExt as _;
    let path = request.uri().path().to_owned();
    let http2 = request.version() == hyper::Version::HTTP_2 && negotiated_h2;
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let Ok(collected) = request.into_body().collect().await else { return apns_reply(400, Some("BadPayload")) };
    let Some(device) = path.strip_prefix("/3/device/").map(str::to_owned) else {
        return apns_reply(404, Some("BadPath"));
    };
    let jwt = headers
        .get("authorization")
        .and_then(|value| value.strip_prefix("bearer ").or_else(|| value.strip_prefix("Bearer ")))
        .unwrap_or_default()
        .to_owned();
    let verified = verified_jwt(&jwt, |input, signature| {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &state.public_key).verify(input, signature).is_ok()
    });
    let Some((header, claims)) = verified else { return apns_reply(403, Some("InvalidProviderToken")) };
    if header["alg"] != "ES256" || header["kid"] != state.key_id.as_str() || claims["iss"] != state.team_id.as_str() {
        return apns_reply(403, Some("InvalidProviderToken"));
    }
    if now_millis() / 1000 - claims["iat"].as_i64().unwrap_or(0) > 3600 {
        return apns_reply(403, Some("ExpiredProviderToken"));
    }
    let topic = headers.get("apns-topic").cloned().unwrap_or_default();
    if topic != state.topic && topic != format!("{}.voip", state.topic) {
        return apns_reply(400, Some("TopicDisallowed"));
    }
    if !matches!(headers.get("apns-push-type").map(String::as_str), Some("alert" | "voip" | "background")) {
        return apns_reply(400, Some("InvalidPushType"));
    }
    if headers.get("apns-collapse-id").is_some_and(|id| id.len() > 64) {
        return apns_reply(400, Some("BadCollapseId"));
    }
    let body: Value = serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null);
    if !body["aps"].is_object() {
        return apns_reply(400, Some("PayloadEmpty"));
    }
    state.requests.lock().expect("lock").push(ApnsRequest { device: device.clone(), headers, body, jwt, http2 });
    if device.starts_with("gone") {
        return apns_reply(410, Some("Unregistered"));
    }
    if device.starts_with("bad") {
        return apns_reply(400, Some("BadDeviceToken"));
    }
    if device.starts_with("throttle") && state.throttled.lock().expect("lock").insert(device.clone()) {
        return apns_reply(429, Some("TooManyRequests"));
    }
    apns_reply(200, None)
}
