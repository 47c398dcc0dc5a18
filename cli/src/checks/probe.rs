//! The edge as a client sees it: plain sockets to the published ports on this host, TLS with rustls. What
//! it records (`EdgeAnswers`) is evaluated by `edge`. Each connection has a bounded timeout, and the probes
//! run at once. The certificate NGINX serves is recorded, not trusted or refused: `edge` compares it with the
//! deployment's own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How long one connection may take to connect, and then each read.
const TIMEOUT: Duration = Duration::from_secs(3);
/// At most this much of a response is read.
const READ_LIMIT: u64 = 64 * 1024;

/// A response's status line and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpHead {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// The start of the body.
    pub body: String,
}

impl HttpHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// An HTTPS exchange: the certificate served, the TLS version agreed, the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsExchange {
    pub certificate: Vec<u8>,
    pub version: String,
    pub head: HttpHead,
}

/// Everything the edge answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeAnswers {
    /// `GET /` over HTTPS, any version.
    pub https: Result<TlsExchange, String>,
    /// Handshakes limited to TLS 1.2, then to TLS 1.3.
    pub tls12: Result<(), String>,
    pub tls13: Result<(), String>,
    /// `GET /` on the HTTP port.
    pub http: Result<HttpHead, String>,
    /// A WebSocket upgrade of `/v3/ws` over HTTPS, without a token.
    pub websocket: Result<HttpHead, String>,
}

/// Probes the edge published on this host at `http_port` and `https_port`, for `domain`.
pub fn edge(domain: &str, http_port: u16, https_port: u16) -> EdgeAnswers {
    let https_address = SocketAddr::from(([127, 0, 0, 1], https_port));
    let http_address = SocketAddr::from(([127, 0, 0, 1], http_port));
    let get = format!("GET / HTTP/1.1\r\nHost: {domain}\r\nUser-Agent: cometctl-doctor\r\nConnection: close\r\n\r\n");
    let origin = if https_port == 443 { format!("https://{domain}") } else { format!("https://{domain}:{https_port}") };
    let upgrade = format!(
        "GET /v3/ws HTTP/1.1\r\nHost: {domain}\r\nUser-Agent: cometctl-doctor\r\nUpgrade: websocket\r\nConnection: \
         Upgrade\r\nSec-WebSocket-Key: Y29tZXRjdGwtZG9jdG9yIQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    );
    std::thread::scope(|scope| {
        let https = scope.spawn(|| exchange(https_address, domain, &ALL_VERSIONS, get.as_bytes()));
        let tls12 = scope.spawn(|| exchange(https_address, domain, &[&rustls::version::TLS12], b"").map(|_| ()));
        let tls13 = scope.spawn(|| exchange(https_address, domain, &[&rustls::version::TLS13], b"").map(|_| ()));
        let websocket = scope.spawn(|| exchange(https_address, domain, &ALL_VERSIONS, upgrade.as_bytes()));
        let http = scope.spawn(|| plain(http_address, get.as_bytes()));
        let joined = |name: &str| format!("the {name} probe stopped unexpectedly");
        EdgeAnswers {
            https: https.join().unwrap_or_else(|_| Err(joined("HTTPS"))),
            tls12: tls12.join().unwrap_or_else(|_| Err(joined("TLS 1.2"))),
            tls13: tls13.join().unwrap_or_else(|_| Err(joined("TLS 1.3"))),
            http: http.join().unwrap_or_else(|_| Err(joined("HTTP"))),
            websocket: websocket.join().unwrap_or_else(|_| Err(joined("WebSocket"))).map(|exchange| exchange.head),
        }
    })
}

const ALL_VERSIONS: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];

fn connect(address: SocketAddr) -> Result<TcpStream, String> {
    let stream =
        TcpStream::connect_timeout(&address, TIMEOUT).map_err(|error| format!("connecting to {address}: {error}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|error| error.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|error| error.to_string())?;
    Ok(stream)
}

fn plain(address: SocketAddr, request: &[u8]) -> Result<HttpHead, String> {
    let mut stream = connect(address)?;
    stream.write_all(request).map_err(|error| format!("writing to {address}: {error}"))?;
    let mut response = Vec::new();
    let _ = stream.take(READ_LIMIT).read_to_end(&mut response);
    parse_head(&response).ok_or_else(|| format!("{address} sent no HTTP response"))
}

/// A TLS handshake limited to `versions`, then `request` (if any) and its response's head.
fn exchange(
    address: SocketAddr,
    domain: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    request: &[u8],
) -> Result<TlsExchange, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder =
        Arc::new(Recorder { seen: Mutex::new(None), algorithms: provider.signature_verification_algorithms });
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&recorder) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    let name = ServerName::try_from(domain.to_owned()).map_err(|error| format!("{domain}: {error}"))?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|error| error.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, connect(address)?);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|error| format!("TLS handshake with {address}: {error}"))?;
    }
    let version = match tls.conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        other => format!("{other:?}"),
    };
    let certificate = recorder.seen.lock().map(|seen| seen.clone().unwrap_or_default()).unwrap_or_default();
    let mut head = HttpHead::default();
    if !request.is_empty() {
        tls.write_all(request).map_err(|error| format!("writing to {address}: {error}"))?;
        let mut response = Vec::new();
        let mut buffer = [0u8; 8192];
        // Up to the end of the headers and a little body (an upgrade keeps the connection open).
        while response.len() < READ_LIMIT as usize {
            match tls.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => response.extend_from_slice(&buffer[..read]),
            }
            if let Some(end) = find(&response, b"\r\n\r\n")
                && (response.len() > end + 4 || head_is_upgrade(&response))
            {
                break;
            }
        }
        head = parse_head(&response).ok_or_else(|| format!("{address} sent no HTTP response over TLS"))?;
    }
    Ok(TlsExchange { certificate, version, head })
}

fn head_is_upgrade(response: &[u8]) -> bool {
    response.starts_with(b"HTTP/1.1 101")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn parse_head(response: &[u8]) -> Option<HttpHead> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(HttpHead { status, headers, body: body.chars().take(500).collect() })
}

/// Accepts whatever certificate the server presents and records it; the handshake's signatures are still
/// verified, so the server holds the key of the certificate it sent.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<Vec<u8>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.as_ref().to_vec());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_are_parsed() {
        let head = parse_head(b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://chat.example.com/\r\n\r\n<html>")
            .expect("a head");
        assert_eq!(head.status, 301);
        assert_eq!(head.header("location"), Some("https://chat.example.com/"));
        assert_eq!(head.body, "<html>");
        assert_eq!(parse_head(b""), None);
        assert_eq!(parse_head(b"garbage"), None);
    }
}
