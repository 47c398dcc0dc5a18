//! Overload protection (issue #17, item 5): the API keeps its goodput at saturation and sheds the rest fast.
//!
//! - **In flight:** at most `max_in_flight` requests are handled at once per process. A request over it waits
//!   at most `queue_wait` for a place, then is answered 503 `ERR_OVERLOADED` with `Retry-After`. Without the
//!   bound, a thousand requests in flight queue on the database pool and every one of them gets slow; with it,
//!   the admitted ones keep the latency of a saturated-but-not-overloaded server and the others learn at once
//!   that they should retry (on another replica, or later).
//! - **Rates:** an optional token bucket per caller (each user, the app key without `onBehalfOf`, the auth-only
//!   key): over it, 429 `ERR_RATE_LIMITED` with `Retry-After` in whole seconds. Per process: with N API
//!   replicas behind NGINX a caller may get up to N times the rate (docs/configuration.md says so).
//!
//! Every refusal here is cheap: no database, no body read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::ApiError;
use crate::auth::Caller;

/// What `Admission` enforces (docs/configuration.md, `COMET_API_*`).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_in_flight: usize,
    pub queue_wait: Duration,
    /// Requests per second per user; `None` for no limit.
    pub user_rate: Option<Rate>,
    /// Requests per second for the app's own key (without `onBehalfOf`) and the auth-only key.
    pub key_rate: Option<Rate>,
}

impl Default for AdmissionLimits {
    fn default() -> AdmissionLimits {
        AdmissionLimits { max_in_flight: 32, queue_wait: Duration::ZERO, user_rate: None, key_rate: None }
    }
}

/// A sustained rate and the burst a caller may spend at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// The bounds of one API process and what they refused, for /metrics.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    places: Semaphore,
    buckets: Mutex<Buckets>,
    /// Answered 503 because `max_in_flight` requests were being handled.
    pub overloaded: AtomicU64,
    /// Answered 429 because the caller was over its rate.
    pub rate_limited: AtomicU64,
}

/// Above this many callers with a bucket, full buckets (callers idle long enough to have refilled) are
/// forgotten, so the map cannot grow without bound.
const BUCKETS_SWEEP_AT: usize = 100_000;

/// Seconds a client is told to wait after a 503.
const OVERLOADED_RETRY_AFTER_SECONDS: u64 = 1;

#[derive(Debug, Default)]
struct Buckets {
    by_caller: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Admission {
        let places = limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            limits,
            places: Semaphore::new(places),
            buckets: Mutex::new(Buckets::default()),
            overloaded: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS) - self.places.available_permits()
    }

    /// Takes one unit of `caller`'s rate, or refuses with 429 and when to come back.
    pub(crate) fn charge(&self, caller: &Caller) -> Result<(), ApiError> {
        let (key, rate) = match caller {
            Caller::User(uid) => (format!("u:{uid}"), self.limits.user_rate),
            Caller::App => ("app".to_owned(), self.limits.key_rate),
            Caller::AuthOnly => ("auth".to_owned(), self.limits.key_rate),
        };
        let Some(rate) = rate else { return Ok(()) };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.by_caller.len() >= BUCKETS_SWEEP_AT {
            buckets.by_caller.retain(|_, bucket| refill(*bucket, rate, now).tokens < rate.burst);
        }
        let bucket = buckets.by_caller.entry(key).or_insert(Bucket { tokens: rate.burst, at: now });
        *bucket = refill(*bucket, rate, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        // The time until one whole token is back, in whole seconds (Retry-After has no finer unit).
        let wait = ((1.0 - bucket.tokens) / rate.per_second).ceil().max(1.0) as u64;
        drop(buckets);
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        Err(ApiError::Retry {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "ERR_RATE_LIMITED",
            message: format!("over the rate of {} requests per second; retry after {wait} s", rate.per_second),
            after_seconds: wait,
        })
    }
}

/// The tokens a bucket holds at `now`.
fn refill(bucket: Bucket, rate: Rate, now: Instant) -> Bucket {
    let earned = now.saturating_duration_since(bucket.at).as_secs_f64() * rate.per_second;
    Bucket { tokens: (bucket.tokens + earned).min(rate.burst), at: now }
}

/// The middleware: a place among `max_in_flight`, or 503 after `queue_wait`.
pub async fn admit(State(admission): State<std::sync::Arc<Admission>>, request: Request, next: Next) -> Response {
    let place = match admission.places.try_acquire() {
        Ok(place) => place,
        Err(_) => match tokio::time::timeout(admission.limits.queue_wait, admission.places.acquire()).await {
            Ok(Ok(place)) => place,
            _ => {
                admission.overloaded.fetch_add(1, Ordering::Relaxed);
                return overloaded().into_response();
            }
        },
    };
    let response = next.run(request).await;
    drop(place);
    response
}

/// The answer when this process is at its bound (or its database pool had no connection in time).
pub(crate) fn overloaded() -> ApiError {
    ApiError::Retry {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "ERR_OVERLOADED",
        message: "the server is at capacity; retry shortly".to_owned(),
        after_seconds: OVERLOADED_RETRY_AFTER_SECONDS,
    }
}

/// Sets `Retry-After` on a response.
pub(crate) fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
