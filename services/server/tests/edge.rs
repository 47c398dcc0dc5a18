//! The HTTP edge of `comet-server all` over real sockets (issue #17): slow and silent clients are closed within
//! the configured timeouts, the connection cap holds, and a stop finishes within the shutdown deadline even
//! with a client stuck halfway through its request. Deadlines are set low here; every wait is bounded by the
//! configured deadline plus generous slack.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::Server;
use super::{AUTH, FULL};

/// Slack on top of a configured deadline, for a loaded 2-core test machine.
const SLACK: Duration = Duration::from_secs(10);

async fn start(extra: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let mut env: Vec<(&str, String)> = vec![("COMET_API_KEY", FULL.to_owned()), ("COMET_AUTH_KEY", AUTH.to_owned())];
    env.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let mut server = Server::start("all", data.path(), &env);
    server.wait_ready().await;
    (server, data)
}

fn address(server: &Server) -> String {
    server.app.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `within` passes: then `None`); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

/// A request that must succeed, through a fresh connection.
async fn document_is_served(server: &Server) {
    let response = reqwest::Client::new()
        .get(format!("{}/v3/openapi.json", server.app))
        .timeout(SLACK)
        .send()
        .await
        .expect("a normal request is answered");
    assert_eq!(response.status(), 200);
}

/// The status and the error code of a raw HTTP/1.1 response.
fn status_and_code(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response);
    let status = text.split(' ').nth(1).and_then(|status| status.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let code =
        serde_json::from_str::<Value>(body).ok().and_then(|body| body["error"]["code"].as_str().map(str::to_owned));
    (status, code.unwrap_or_else(|| format!("<no code in {text:?}>")))
}

#[tokio::test]
async fn slowloris_connections_are_closed_within_the_header_timeout() {
    let header_timeout = Duration::from_secs(2);
    let (server, _data) = start(&[("COMET_HTTP_HEADER_TIMEOUT_MS", "2000")]).await;
    let address = address(&server);
    let mut connections = Vec::new();
    for index in 0..300 {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        // Two thirds send half a request head and stop; the rest send nothing at all.
        if index % 3 != 0 {
            stream.write_all(b"GET /v3/users HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        }
        connections.push(stream);
    }
    let opened = Instant::now();
    // Meanwhile the port still serves.
    document_is_served(&server).await;
    let closers: Vec<_> = connections
        .into_iter()
        .map(|mut stream| tokio::spawn(async move { read_until_closed(&mut stream, header_timeout + SLACK).await }))
        .collect();
    for closer in closers {
        assert!(closer.await.expect("reader").is_some(), "a half-sent connection stayed open past the header timeout");
    }
    assert!(opened.elapsed() < header_timeout + SLACK);
    document_is_served(&server).await;
}

#[tokio::test]
async fn a_stop_with_a_stuck_request_ends_within_the_shutdown_deadline() {
    // The header timeout is far longer than the test waits: only the shutdown deadline can end the stop.
    let (server, _data) =
        start(&[("COMET_HTTP_HEADER_TIMEOUT_MS", "600000"), ("COMET_SHUTDOWN_TIMEOUT_MS", "2000")]).await;
    let mut stuck = TcpStream::connect(address(&server)).await.expect("connect");
    stuck.write_all(b"GET /v3/users HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    document_is_served(&server).await;
    let asked = Instant::now();
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "a stop cut by the deadline is still a clean stop");
    assert!(asked.elapsed() < Duration::from_secs(2) + SLACK, "stopped after {:?}", asked.elapsed());
}

#[tokio::test]
async fn a_body_that_does_not_arrive_is_answered_within_the_body_timeout() {
    let body_timeout = Duration::from_secs(2);
    let (server, _data) = start(&[("COMET_HTTP_BODY_TIMEOUT_MS", "2000")]).await;
    let address = address(&server);

    // Announced larger than the body cap: refused before the body is read.
    let mut huge = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /v3/users HTTP/1.1\r\nHost: x\r\napikey: {FULL}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"uid\":",
        100 * 1024 * 1024
    );
    huge.write_all(head.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut huge, SLACK).await.expect("an answer and a close, at once");
    assert_eq!(status_and_code(&answer), (413, "ERR_BODY_TOO_LARGE".to_owned()));

    // Announced within the cap, but only 7 bytes come: 408 once the body timeout passes.
    let mut slow = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /v3/users HTTP/1.1\r\nHost: x\r\napikey: {FULL}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"uid\":"
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut slow, body_timeout + SLACK).await.expect("an answer within the body timeout");
    assert_eq!(status_and_code(&answer), (408, "ERR_REQUEST_TIMEOUT".to_owned()));
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_while_the_others_work() {
    let (server, _data) =
        start(&[("COMET_HTTP_MAX_CONNECTIONS", "4"), ("COMET_HTTP_HEADER_TIMEOUT_MS", "60000")]).await;
    let address = address(&server);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&address).await.expect("connect"));
    }
    // A fifth is accepted by the kernel and closed by the server before anything is read.
    let mut over = TcpStream::connect(&address).await.expect("connect");
    let _ = over.write_all(b"GET /v3/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = read_until_closed(&mut over, SLACK).await.expect("the connection over the cap is closed");
    assert!(answer.is_empty(), "over the cap, nothing is served: {}", String::from_utf8_lossy(&answer));
    let metrics = reqwest::get(format!("{}/metrics", server.admin)).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("comet_http_connections_refused_total 1\n"), "{metrics}");
    assert!(metrics.contains("comet_http_connections_open 4\n"), "{metrics}");

    // The held ones work.
    let first = &mut held[0];
    first.write_all(b"GET /v3/openapi.json HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n").await.expect("write");
    let answer = read_until_closed(first, SLACK).await.expect("answered");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..answer.len().min(200)]));

    // Once one has closed, its place is free again: a new connection is served (retried while the server
    // notices the close; bounded).
    drop(held.remove(0));
    let deadline = Instant::now() + SLACK;
    loop {
        let mut next = TcpStream::connect(&address).await.expect("connect");
        let _ = next.write_all(b"GET /v3/openapi.json HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n").await;
        let answer = read_until_closed(&mut next, SLACK).await.unwrap_or_default();
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "a freed place under the cap was not reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (server, _data) =
        start(&[("COMET_HTTP_IDLE_TIMEOUT_MS", "1500"), ("COMET_HTTP_HEADER_TIMEOUT_MS", "600000")]).await;
    let mut stream = TcpStream::connect(address(&server)).await.expect("connect");
    stream.write_all(b"GET /v3/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let answer = read_until_closed(&mut stream, Duration::from_millis(1500) + SLACK).await.expect("closed when idle");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "the request is answered first");
}

#[tokio::test]
async fn refusals_the_parser_used_to_make_carry_the_envelope_over_the_wire() {
    let (server, _data) = start(&[]).await;
    let address = address(&server);
    let long_target =
        format!("GET /v3/users?searchKey={} HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n", "a".repeat(20_000));
    let many_headers: String = (0..120).map(|n| format!("x-h{n}: 1\r\n")).collect();
    let many_headers = format!("GET /v3/users HTTP/1.1\r\nHost: x\r\n{many_headers}connection: close\r\n\r\n");
    let cases = [
        (long_target, (414, "ERR_URI_TOO_LONG")),
        (many_headers, (431, "ERR_HEADERS_TOO_LARGE")),
        (
            "PATCH /v3/users HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n".to_owned(),
            (405, "ERR_METHOD_NOT_ALLOWED"),
        ),
    ];
    for (request, (status, code)) in cases {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let answer = read_until_closed(&mut stream, SLACK).await.expect("answered and closed");
        assert_eq!(status_and_code(&answer), (status, code.to_owned()));
    }
}

/// What one fresh-connection request saw while the server was stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Connecting failed: nothing was sent, so a proxy tries another replica (safe for any method).
    Refused,
    /// A whole response came back.
    Answered,
    /// The request went out and the connection ended without a response: a proxy answers 502 to a POST.
    Dropped,
}

async fn attempt(address: &str) -> Attempt {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return Attempt::Refused;
    };
    // One request per connection, like NGINX's proxy_pass without an upstream keep-alive pool.
    if stream.write_all(b"GET /v3/openapi.json HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n").await.is_err() {
        return Attempt::Dropped;
    }
    match read_until_closed(&mut stream, SLACK).await {
        Some(answer) if is_whole_ok(&answer) => Attempt::Answered,
        _ => Attempt::Dropped,
    }
}

/// A 200 whose body is as long as its `content-length` says.
fn is_whole_ok(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
    });
    head.starts_with("HTTP/1.1 200") && length == Some(body.len())
}

#[tokio::test]
async fn a_stop_under_load_answers_every_request_it_accepted() {
    // Clients open a connection per request as fast as they can while the server is asked to stop. Every
    // connection the server accepted must be answered; after that, connecting must fail. A request that was
    // sent and then cut (a connection accepted and closed unread, or reset from the listen queue) is what
    // made NGINX answer 502 during a rolling upgrade.
    let (server, _data) = start(&[]).await;
    let address = address(&server);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (address, stop) = (address.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                // Until the server refuses three times in a row after the stop was asked for.
                let mut refusals_in_a_row = 0;
                while refusals_in_a_row < 3 {
                    let outcome = attempt(&address).await;
                    refusals_in_a_row =
                        if outcome == Attempt::Refused && stop.load(std::sync::atomic::Ordering::Relaxed) {
                            refusals_in_a_row + 1
                        } else {
                            0
                        };
                    seen.push(outcome);
                }
                seen
            })
        })
        .collect();
    // Load first: the stop must land while connections arrive.
    let warmed = Instant::now();
    while warmed.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.expect("terminate");
    assert_eq!(status.code(), Some(0));
    let mut counts = std::collections::BTreeMap::new();
    for client in clients {
        for outcome in client.await.expect("client") {
            *counts.entry(format!("{outcome:?}")).or_insert(0usize) += 1;
        }
    }
    assert!(counts.get("Answered").copied().unwrap_or(0) > 100, "the load never got going: {counts:?}");
    assert_eq!(counts.get("Dropped"), None, "requests sent to the stopping server went unanswered: {counts:?}");
}

#[tokio::test]
async fn over_the_in_flight_bound_requests_are_refused_at_once_with_retry_after() {
    let (server, _data) = start(&[("COMET_API_MAX_IN_FLIGHT", "1"), ("COMET_API_QUEUE_WAIT_MS", "0")]).await;
    let address = address(&server);
    // A request whose body is still on its way holds the one place.
    let mut holder = TcpStream::connect(&address).await.expect("connect");
    let body = br#"{"uid":"holder","name":"Holder"}"#;
    let head = format!(
        "POST /v3/users HTTP/1.1\r\nHost: x\r\napikey: {FULL}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    holder.write_all(head.as_bytes()).await.expect("write");
    holder.write_all(&body[..5]).await.expect("write");
    // Wait until the server counts it in flight.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + SLACK;
    loop {
        let metrics = client.get(format!("{}/metrics", server.admin)).send().await.expect("metrics");
        if metrics.text().await.expect("text").contains("comet_api_in_flight 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "the held request was never counted in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused =
        client.get(format!("{}/v3/users", server.app)).header("apikey", FULL).send().await.expect("an answer");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers().get("retry-after").and_then(|value| value.to_str().ok()), Some("1"));
    let refused: Value = refused.json().await.expect("envelope");
    assert_eq!(refused["error"]["code"], "ERR_OVERLOADED");

    // The held request completes normally, and its place is free again.
    holder.write_all(&body[5..]).await.expect("write");
    let answer = read_until_closed(&mut holder, SLACK).await.expect("answered");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let again = client.get(format!("{}/v3/users", server.app)).header("apikey", FULL).send().await.expect("answer");
    assert_eq!(again.status(), 200);
    let metrics =
        client.get(format!("{}/metrics", server.admin)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("comet_api_shed_total{reason=\"overloaded\"} 1\n"), "{metrics}");
}
