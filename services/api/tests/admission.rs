//! Rates per caller (issue #17, item 5): over its rate a caller gets 429 `ERR_RATE_LIMITED` with
//! `Retry-After`, and nobody else is slowed. The in-flight bound is tested over real sockets in comet-server's
//! edge tests, where a request can be held open.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use comet_api::{AdmissionLimits, Rate};
use comet_testkit::TestDatabase;
use serde_json::json;
use tower::ServiceExt;

use super::{App, FULL, app_limited};

/// A rate that refills one request per 100 s, so the test cannot earn a token back while it runs.
const SLOW: Rate = Rate { per_second: 0.01, burst: 2.0 };

async fn status_and_retry_after(app: &App, headers: &[(&str, &str)]) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder().method(Method::GET).uri("/v3/users");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app.router.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("answer");
    let status = response.status();
    let retry_after = response.headers().get(header::RETRY_AFTER).map(|value| value.to_str().unwrap_or("").to_owned());
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    (status, retry_after, body["error"]["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn a_caller_over_its_rate_is_told_when_to_retry_and_others_are_not_slowed() {
    let limits = AdmissionLimits { user_rate: Some(SLOW), key_rate: Some(SLOW), ..AdmissionLimits::default() };
    let app = app_limited(TestDatabase::sqlite(), limits).await;
    // The app's key has a bucket of its own: two creations spend it.
    for uid in ["alice", "bob"] {
        let reply =
            app.call(Method::POST, "/v3/users", &[("apikey", FULL)], Some(json!({"uid": uid, "name": uid}))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let (status, retry_after, code) = status_and_retry_after(&app, &[("apikey", FULL)]).await;
    assert_eq!((status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "ERR_RATE_LIMITED"));
    let seconds: u64 = retry_after.expect("Retry-After").parse().expect("whole seconds");
    assert!((1..=100).contains(&seconds), "one token comes back within 100 s at 0.01/s, not {seconds} s");

    // alice spends her own burst; bob's is untouched.
    let alice = [("apikey", FULL), ("onBehalfOf", "alice")];
    for _ in 0..2 {
        assert_eq!(status_and_retry_after(&app, &alice).await.0, StatusCode::OK);
    }
    let (status, retry_after, code) = status_and_retry_after(&app, &alice).await;
    assert_eq!((status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "ERR_RATE_LIMITED"));
    assert!(retry_after.is_some());
    assert_eq!(status_and_retry_after(&app, &[("apikey", FULL), ("onBehalfOf", "bob")]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn without_rates_nobody_is_limited() {
    let app = app_limited(TestDatabase::sqlite(), AdmissionLimits::default()).await;
    for _ in 0..50 {
        assert_eq!(status_and_retry_after(&app, &[("apikey", FULL)]).await.0, StatusCode::OK);
    }
}
