//! `services/api/openapi.json` kept in step with the code. The rules:
//!
//! 1. The document is JSON with `openapi: 3.1.x`; every `$ref` resolves; every operation has a unique
//!    `operationId`, and its path parameters are exactly the `{names}` in its path.
//! 2. Routes: the set of (METHOD, path) the router declares equals the set of operations in `paths`. The router's
//!    set is read from the source of `router()` in `src/lib.rs` (every `.route("path", get(..).post(..))`), so
//!    routes stay declared in one place, the axum builder, and concurrent additions merge as plain lines. The
//!    other direction is also checked at run time: every documented operation reaches a handler (no fallback
//!    404, no 405).
//! 3. Error codes: the `ERR_*` codes in `src/**/*.rs` equal the codes the document lists in the root
//!    `x-error-codes` plus each operation's `x-error-codes` (code → status) and `x-item-error-codes`; each status
//!    an operation lists has a response; and no other `ERR_*` appears anywhere in the document.
//! 4. `GET /v3/openapi.json` through the router, without credentials, returns this document as
//!    `application/json`.

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const DOCUMENT: &str = include_str!("../openapi.json");
const LIB_RS: &str = include_str!("../src/lib.rs");
const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("services/api/openapi.json is JSON")
}

/// (METHOD, path) of every operation in the document.
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("path item") {
            if HTTP_METHODS.contains(&key.as_str()) {
                routes.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The operations of the document with their method and path.
fn operations(doc: &Value) -> Vec<(String, String, &Value, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if HTTP_METHODS.contains(&method.as_str()) {
                found.push((method.to_uppercase(), path.clone(), item, operation));
            }
        }
    }
    found
}

/// The text between `open` (which `text` starts with) and its matching `)`.
fn balanced(text: &str) -> &str {
    let mut depth = 0usize;
    let mut in_string = false;
    for (index, c) in text.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[1..index];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in lib.rs near: {}", &text[..text.len().min(80)]);
}

/// Where `name(` is called in `text`: `name` directly followed by `(` and not the end of a longer identifier
/// (so `get(users::get)` is one call of `get`, and `axum::routing::put(..)` a call of `put`).
fn calls(text: &str, name: &str) -> Vec<usize> {
    let needle = format!("{name}(");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find(&needle) {
        let index = from + offset;
        if !text[..index].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            found.push(index);
        }
        from = index + needle.len();
    }
    found
}

/// (METHOD, path) of every `.route(..)` in `router()` of `src/lib.rs`.
fn parse_router_routes(source: &str) -> BTreeSet<(String, String)> {
    let start = source.find("pub fn router(").expect("lib.rs has `pub fn router(`");
    let body = &source[start..];
    let end = body.find("\n}\n").expect("end of router()");
    let body = &body[..end];
    for unsupported in ["nest", "merge", "route_service", "nest_service", "any", "on", "method_routing"] {
        assert!(
            calls(body, unsupported).is_empty(),
            "router() uses `{unsupported}(`: teach parse_router_routes in tests/openapi.rs to read it"
        );
    }
    let mut routes = BTreeSet::new();
    let mut rest = body;
    while let Some(at) = rest.find(".route(") {
        let call = balanced(&rest[at + ".route".len()..]);
        let path = call.split('"').nth(1).expect("a .route(..) starts with a string literal path");
        let handlers = &call[call.find(',').expect("route has a method router")..];
        let mut methods = 0;
        for method in HTTP_METHODS {
            for _ in calls(handlers, method) {
                assert!(
                    routes.insert((method.to_uppercase(), path.to_owned())),
                    "{} {path} is routed twice in lib.rs",
                    method.to_uppercase()
                );
                methods += 1;
            }
        }
        assert!(methods > 0, "no method found in .route(\"{path}\", ..)");
        rest = &rest[at + ".route(".len()..];
    }
    routes
}

/// Every `ERR_*` token in `text`.
fn error_codes(text: &str) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("ERR_") {
        let token: String =
            rest[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + token.len()..];
        if token.len() > "ERR_".len() {
            codes.insert(token);
        }
    }
    codes
}

fn rust_sources(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_sources(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

fn source_error_codes() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 5, "found the API's sources");
    files.iter().flat_map(|file| error_codes(&std::fs::read_to_string(file).expect("read source"))).collect()
}

/// The codes the document lists, and the problems found on the way.
fn documented_error_codes(doc: &Value) -> (BTreeSet<String>, Vec<String>) {
    let mut codes = BTreeSet::new();
    let mut problems = Vec::new();
    for code in doc["x-error-codes"].as_object().expect("root x-error-codes").keys() {
        codes.insert(code.clone());
    }
    for (method, path, _, operation) in operations(doc) {
        let listed = operation["x-error-codes"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no x-error-codes object (use {{}} for none)"));
        for (code, status) in listed {
            codes.insert(code.clone());
            let status = status.as_u64().map(|status| status.to_string()).unwrap_or_default();
            if operation["responses"].get(&status).is_none() {
                problems.push(format!("{method} {path}: {code} is {status} but responses has no \"{status}\""));
            }
        }
        for code in operation["x-item-error-codes"].as_array().into_iter().flatten() {
            codes.insert(code.as_str().expect("item error code is a string").to_owned());
        }
    }
    (codes, problems)
}

/// The value a local `$ref` (`#/a/b`) points at.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn check_refs(doc: &Value, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref")
                && resolve(doc, reference).is_none()
            {
                problems.push(format!("unresolved $ref {reference}"));
            }
            map.values().for_each(|inner| check_refs(doc, inner, problems));
        }
        Value::Array(items) => items.iter().for_each(|inner| check_refs(doc, inner, problems)),
        _ => {}
    }
}

/// A parameter, following its `$ref`.
fn parameter<'a>(doc: &'a Value, parameter: &'a Value) -> &'a Value {
    match parameter["$ref"].as_str() {
        Some(reference) => resolve(doc, reference).expect("resolvable parameter"),
        None => parameter,
    }
}

fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/').filter_map(|part| part.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

#[test]
fn document_is_openapi_3_1_and_well_formed() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "openapi is {version}, want 3.1.x");
    let mut problems = Vec::new();
    check_refs(&doc, &doc, &mut problems);
    let mut ids = BTreeSet::new();
    for (method, path, item, operation) in operations(&doc) {
        match operation["operationId"].as_str() {
            Some(id) if ids.insert(id.to_owned()) => {}
            Some(id) => problems.push(format!("{method} {path}: operationId {id} is used twice")),
            None => problems.push(format!("{method} {path}: no operationId")),
        }
        if operation["responses"].get("200").is_none() {
            problems.push(format!("{method} {path}: no 200 response"));
        }
        let declared: BTreeSet<String> = item["parameters"]
            .as_array()
            .into_iter()
            .chain(operation["parameters"].as_array())
            .flatten()
            .map(|param| parameter(&doc, param))
            .filter(|param| param["in"] == "path")
            .filter_map(|param| param["name"].as_str().map(str::to_owned))
            .collect();
        if declared != path_params(&path) {
            problems.push(format!("{method} {path}: path parameters declared {declared:?}"));
        }
    }
    assert!(problems.is_empty(), "openapi.json:\n{}", problems.join("\n"));
}

#[test]
fn documented_routes_equal_the_router() {
    let doc = document();
    let documented = documented_routes(&doc);
    let routed = parse_router_routes(LIB_RS);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed in lib.rs but not in openapi.json: {undocumented:?}\nin openapi.json but not routed in lib.rs: {unrouted:?}"
    );
}

#[test]
fn error_codes_equal_the_sources() {
    let doc = document();
    let in_sources = source_error_codes();
    let (listed, mut problems) = documented_error_codes(&doc);
    let undocumented: Vec<_> = in_sources.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&in_sources).collect();
    if !undocumented.is_empty() {
        problems.push(format!("codes in src/ missing from openapi.json's x-error-codes: {undocumented:?}"));
    }
    if !unknown.is_empty() {
        problems.push(format!("codes listed in openapi.json that src/ never returns: {unknown:?}"));
    }
    let mentioned: Vec<_> = error_codes(DOCUMENT).into_iter().filter(|code| !in_sources.contains(code)).collect();
    if !mentioned.is_empty() {
        problems.push(format!("openapi.json mentions codes src/ does not have: {mentioned:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn served_document_is_the_file() {
    assert_eq!(comet_api::OPENAPI_JSON, DOCUMENT);
    let app = super::sqlite_app().await;
    let request = Request::builder().method(Method::GET).uri("/v3/openapi.json").body(Body::empty()).expect("request");
    let response = app.router.clone().oneshot(request).await.expect("router answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get("content-type").and_then(|value| value.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let served: Value = serde_json::from_slice(&bytes).expect("served document is JSON");
    assert!(served == document(), "GET /v3/openapi.json serves something other than services/api/openapi.json");
}

/// Every documented operation reaches a handler: without credentials it gets the handler's 401 (or 200 for
/// the document itself), never the fallback's 404 `ERR_ROUTE_NOT_FOUND` or a 405.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = super::sqlite_app().await;
    let doc = document();
    let mut problems = Vec::new();
    for (method, path) in documented_routes(&doc) {
        let uri: String =
            path.split('/').map(|part| if part.starts_with('{') { "x1" } else { part }).collect::<Vec<_>>().join("/");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let reply = app.call(method.clone(), &uri, &[], None).await;
        let expected = if path == "/v3/openapi.json" { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        if reply.status != expected {
            problems.push(format!("{method} {uri}: {} {}", reply.status, reply.body));
        }
    }
    assert!(problems.is_empty(), "documented but not routed:\n{}", problems.join("\n"));
}

#[test]
fn router_parser_reads_chained_and_qualified_methods() {
    let source = "pub fn router(state: AppState) -> Router {\n    Router::new()\n        .route(\"/a/{x}\", get(m::get).put(m::put))\n        .route(\"/b\", axum::routing::delete(m::delete))\n        .fallback(f)\n}\n";
    let routes: Vec<_> = parse_router_routes(source).into_iter().collect();
    let expected: Vec<(String, String)> = [("DELETE", "/b"), ("GET", "/a/{x}"), ("PUT", "/a/{x}")]
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(routes, expected);
}
