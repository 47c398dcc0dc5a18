//! The HTTP edge of the app and admin ports: how connections are accepted, how long a client may take, and
//! how the port stops. Every limit here bounds what one slow or silent client can hold (issue #17):
//!
//! - a cap on open connections per port: one over it is closed at once, before anything is read;
//! - the header timeout: a connection must deliver a complete request head within it, from when it opens or
//!   its previous response was written (hyper's `header_read_timeout`, so it also bounds idle keep-alive);
//! - the body timeout: a request's whole body must arrive within it after its head; a handler reading it then
//!   answers 408 `ERR_REQUEST_TIMEOUT` (tower-http's body deadline);
//! - the idle timeout: a connection on which no byte moves while no request is being handled (a client that
//!   stops reading its response, for one) is closed. WebSockets are exempt: the gateway has its own.
//!
//! On shutdown the port stops taking connections without dropping one it has taken: a connection that
//! completed its handshake is a request on its way (a proxy such as NGINX has usually sent it already, and
//! would answer 502 to a POST cut after that), so the listen queue is emptied into connections that are
//! served before the listener closes; later connection attempts are refused, which a proxy retries on
//! another replica. A connection that has served a request is asked to finish the one in hand and close; one
//! that has not read its first request yet gets `FIRST_REQUEST_GRACE` to start it. The process-wide shutdown
//! deadline (`roles::run`) cuts whatever is still open.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tower::ServiceExt as _;
use tower_http::timeout::DeadlineBody;

/// The limits of one port (docs/configuration.md, `COMET_HTTP_*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// What a port counts of its connections, for /metrics.
#[derive(Debug, Default)]
pub struct Connections {
    pub open: AtomicU64,
    /// Closed at once because the port was at `COMET_HTTP_MAX_CONNECTIONS`.
    pub refused: AtomicU64,
}

/// The HTTP parser's own limits, set above the API's (comet_api::MAX_URI_BYTES and friends), so a request just
/// over those is still read and answered with the error envelope; only heads beyond these are refused by hyper.
const PARSER_MAX_HEADERS: usize = 256;
const PARSER_MAX_BUFFER: usize = 256 * 1024;

/// On shutdown, how long a connection that has not started a request yet may take to start one (bounded
/// by the header timeout). A proxy writes its request as soon as it is connected, so this is generous.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on `address` until `shutdown`, then waits for open connections to finish.
pub async fn serve(
    name: &str,
    address: SocketAddr,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("binding the {name} port {address}"))?;
    tracing::info!(%address, "{name} listening");
    let port = Port {
        name: name.to_owned(),
        router,
        limits,
        permits: Arc::new(tokio::sync::Semaphore::new(limits.max_connections)),
        connections,
        // Every connection task holds a receiver: `true` asks it to finish, and the sender sees when all ended.
        stop: tokio::sync::watch::channel(false),
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: the listener itself is fine, so keep accepting.
                Err(error) => {
                    tracing::warn!(error = %error, "{name}: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        port.take(stream, peer);
    }
    // Stop taking connections without dropping any the kernel has taken for us: what is queued is served.
    // The queue is read with accept(2) itself until it is empty: tokio's own accept would wait for the
    // reactor to report readiness, and a connection queued since its last report would be reset by the close.
    let drained = drain_queue(listener, |stream, peer| port.take(stream, peer));
    if drained > 0 {
        tracing::debug!(drained, "{name}: connections taken from the listen queue at shutdown");
    }
    let Port { stop: (stopping, stop_signal), .. } = port;
    drop(stop_signal);
    let open = stopping.receiver_count();
    if open > 0 {
        tracing::info!(open, "{name}: waiting for open connections to finish");
    }
    let _ = stopping.send(true);
    stopping.closed().await;
    Ok(())
}

/// Takes every connection waiting in the listen queue, then closes the listener; returns how many it took.
fn drain_queue(listener: tokio::net::TcpListener, mut take: impl FnMut(TcpStream, SocketAddr)) -> usize {
    let Ok(listener) = listener.into_std() else {
        return 0;
    };
    let mut drained = 0;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let stream = stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream));
                match stream {
                    Ok(stream) => {
                        drained += 1;
                        take(stream, peer);
                    }
                    Err(error) => tracing::debug!(%peer, error = %error, "a queued connection could not be served"),
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            // WouldBlock: the queue is empty. Anything else: nothing more can be taken from it.
            Err(_) => return drained,
        }
    }
}

/// What every connection of one port shares.
struct Port {
    name: String,
    router: Router,
    limits: Limits,
    permits: Arc<tokio::sync::Semaphore>,
    connections: Arc<Connections>,
    stop: (tokio::sync::watch::Sender<bool>, tokio::sync::watch::Receiver<bool>),
}

impl Port {
    /// Serves one accepted connection on its own task, or closes it at once at the connection cap.
    fn take(&self, stream: TcpStream, peer: SocketAddr) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.connections.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, max = self.limits.max_connections, "{}: connection refused, at the connection cap", self.name);
            drop(stream);
            return;
        };
        let permit = Permit::new(permit, self.connections.clone());
        // The permit lives with the socket, so a connection upgraded to a WebSocket still counts.
        let connection = Connection::new(stream, permit, self.router.clone(), self.limits);
        let mut stop_signal = self.stop.1.clone();
        let limits = self.limits;
        tokio::spawn(async move {
            let activity = connection.activity;
            let mut hyper = std::pin::pin!(connection.hyper);
            // Asked to stop, and (once it has started a request, or its grace passed) told hyper so.
            let (mut asked_to_stop, mut told) = (false, false);
            let first_request_grace = FIRST_REQUEST_GRACE.min(limits.header_timeout);
            loop {
                tokio::select! {
                    result = hyper.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%peer, error = %error, "connection ended with an error");
                        }
                        return;
                    }
                    () = activity.idle(limits.idle_timeout) => {
                        tracing::debug!(%peer, "connection closed: idle");
                        return;
                    }
                    changed = stop_signal.changed(), if !asked_to_stop => {
                        asked_to_stop = true;
                        told = changed.is_err();
                    }
                    () = activity.first_request(first_request_grace), if asked_to_stop && !told => {
                        told = true;
                        hyper.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
}

type HyperConnection = hyper::server::conn::http1::UpgradeableConnection<TokioIo<Watched>, Handler>;
type RouterFuture =
    Pin<Box<dyn std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>>;

/// Hands each request to the router with its body under the deadline, and keeps the connection's activity.
struct Handler {
    router: Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Handler {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = RouterFuture;

    fn call(&self, request: Request<Incoming>) -> RouterFuture {
        let router = self.router.clone();
        let activity = self.activity.clone();
        let request = request.map(|body| Body::new(DeadlineBody::new(self.body_timeout, body)));
        Box::pin(async move {
            let _in_flight = activity.start_request();
            let response = router.oneshot(request).await;
            if let Ok(response) = &response
                && response.status() == StatusCode::SWITCHING_PROTOCOLS
            {
                activity.upgraded.store(true, Ordering::Relaxed);
            }
            response
        })
    }
}

struct Connection {
    hyper: HyperConnection,
    activity: Arc<Activity>,
}

impl Connection {
    fn new(stream: TcpStream, permit: Permit, router: Router, limits: Limits) -> Connection {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched { stream, activity: activity.clone(), _permit: permit });
        let handler = Handler { router, activity: activity.clone(), body_timeout: limits.body_timeout };
        let hyper = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_headers(PARSER_MAX_HEADERS)
            .max_buf_size(PARSER_MAX_BUFFER)
            .serve_connection(io, handler)
            .with_upgrades();
        Connection { hyper, activity }
    }
}

/// What the idle timeout looks at: when a byte last moved, how many requests are being handled, and whether
/// the connection became a WebSocket.
struct Activity {
    opened: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicUsize,
    upgraded: AtomicBool,
    /// Requests started on this connection, and a wake-up when one starts.
    started: AtomicU64,
    request_started: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            upgraded: AtomicBool::new(false),
            started: AtomicU64::new(0),
            request_started: tokio::sync::Notify::new(),
        }
    }

    fn touch(&self) {
        self.last_millis.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.request_started.notify_one();
        InFlight(self.clone())
    }

    /// Resolves at once if a request has started on this connection; else when one starts, or after `grace`.
    async fn first_request(&self, grace: Duration) {
        if self.started.load(Ordering::Relaxed) > 0 {
            return;
        }
        // `notify_one` keeps a permit when nobody waits, so a request starting just now is not missed.
        let _ = tokio::time::timeout(grace, self.request_started.notified()).await;
    }

    /// Resolves once nothing moved for `timeout` while no request was handled; never for a WebSocket.
    async fn idle(&self, timeout: Duration) {
        let mut tick = tokio::time::interval((timeout / 4).max(Duration::from_millis(10)));
        loop {
            tick.tick().await;
            if self.upgraded.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
            let quiet =
                self.opened.elapsed().saturating_sub(Duration::from_millis(self.last_millis.load(Ordering::Relaxed)));
            if quiet >= timeout && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
        }
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting every byte that moves.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// This connection's place under the cap, given back when the socket closes.
    _permit: Permit,
}

/// A place under the connection cap, counted as open while held.
struct Permit {
    _place: OwnedSemaphorePermit,
    connections: Arc<Connections>,
}

impl Permit {
    fn new(place: OwnedSemaphorePermit, connections: Arc<Connections>) -> Permit {
        connections.open.fetch_add(1, Ordering::Relaxed);
        Permit { _place: place, connections }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.connections.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
