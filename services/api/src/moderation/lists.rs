//! `/v3/moderation/lists`: keyword, phrase and pattern lists, and their CSV import.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use comet_moderation::spec::{ListSpec, MAX_LIST_ENTRIES, MAX_LISTS};
use comet_store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{audit, check_set, moderator, refused, stored_view, with_path_id};
use crate::body::{Path, Query, RawBody, data, parse};
use crate::{ApiError, AppState, now};

/// The largest CSV file an import takes.
pub const MAX_CSV_BYTES: usize = 1024 * 1024;

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("ERR_MODERATION_LIST_NOT_FOUND", format!("list `{id}` does not exist"))
}

/// `POST /v3/moderation/lists`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let who = moderator(&state, &headers).await?;
    let list: ListSpec = parse(&body)?;
    list.check().map_err(refused)?;
    let now = now();
    match state.moderation.store().create_list(&list, now, MAX_LISTS).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::bad_request(
                "ERR_MODERATION_LIMIT",
                format!("an app may have at most {MAX_LISTS} lists; delete one first"),
            ));
        }
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("ERR_MODERATION_LIST_EXISTS", format!("list `{}` exists", list.id)));
        }
        Err(error) => return Err(error.into()),
    }
    audit(&state, &who, "list.create", "list", &list.id, json!({ "kind": list.kind, "entries": list.entries.len() }))
        .await?;
    let stored = state.moderation.store().list(&list.id).await?.ok_or_else(|| not_found(&list.id))?;
    Ok(data(stored_view(&stored)))
}

/// `GET /v3/moderation/lists`: every list (at most 25, one page).
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    moderator(&state, &headers).await?;
    let lists = state.moderation.store().lists().await?;
    Ok(data(Value::Array(lists.iter().map(stored_view).collect())))
}

/// `GET /v3/moderation/lists/{listId}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    moderator(&state, &headers).await?;
    let stored = state.moderation.store().list(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(data(stored_view(&stored)))
}

/// Stores a changed list after checking it and the rules that use it.
async fn replace(
    state: &AppState,
    who: &super::Moderator,
    list: &ListSpec,
    action: &str,
) -> Result<Response, ApiError> {
    list.check().map_err(refused)?;
    if state.moderation.store().list(&list.id).await?.is_none() {
        return Err(not_found(&list.id));
    }
    check_set(state, None, Some(list), None).await?;
    let Some(revision) = state.moderation.store().update_list(list, now()).await? else {
        return Err(not_found(&list.id));
    };
    audit(state, who, action, "list", &list.id, json!({ "revision": revision, "entries": list.entries.len() })).await?;
    let stored = state.moderation.store().list(&list.id).await?.ok_or_else(|| not_found(&list.id))?;
    Ok(data(stored_view(&stored)))
}

/// `PUT /v3/moderation/lists/{listId}`: the whole list again (its `id` may be left out).
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let who = moderator(&state, &headers).await?;
    let list: ListSpec = parse(&with_path_id(&body, &id)?)?;
    replace(&state, &who, &list, "list.update").await
}

/// `DELETE /v3/moderation/lists/{listId}`: refused (409) while a rule uses it.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = moderator(&state, &headers).await?;
    if state.moderation.store().list(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    check_set(&state, None, None, Some(&id)).await?;
    if !state.moderation.store().delete_list(&id).await? {
        return Err(not_found(&id));
    }
    audit(&state, &who, "list.delete", "list", &id, json!({})).await?;
    Ok(data(json!({ "success": true, "message": format!("list `{id}` deleted") })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportQuery {
    /// `append` (the default) or `replace`.
    mode: Option<String>,
}

/// A CSV request body: `text/csv` (or `text/plain`), at most [`MAX_CSV_BYTES`], UTF-8. An empty body needs no
/// content type (it imports nothing), so a request without credentials is answered 401 by the handler first.
#[derive(Debug)]
pub struct CsvBody(String);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<CsvBody, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ERR_BODY_TOO_LARGE",
                format!("a CSV import is at most {MAX_CSV_BYTES} bytes"),
            )
        };
        let essence = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        let announced =
            request.headers().get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|length| length > MAX_CSV_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_CSV_BYTES).await.map_err(|_| too_large())?;
        if !bytes.is_empty() && !matches!(essence.as_deref(), Some("text/csv" | "text/plain")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "ERR_CONTENT_TYPE_UNSUPPORTED",
                "a list import is CSV, sent with `Content-Type: text/csv`",
            ));
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::bad_request("ERR_MODERATION_CSV_INVALID", "the CSV file is not UTF-8"))?;
        Ok(CsvBody(text))
    }
}

/// The first field of every row of a CSV file (RFC 4180 quoting), without a header row naming the column,
/// blank rows or repeats.
fn csv_entries(text: &str) -> Result<Vec<String>, ApiError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut entries: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let field = first_field(line).ok_or_else(|| {
            ApiError::bad_request("ERR_MODERATION_CSV_INVALID", format!("line {}: an unclosed quote", number + 1))
        })?;
        let field = field.trim();
        let header = number == 0
            && matches!(
                field.to_ascii_lowercase().as_str(),
                "keyword" | "keywords" | "phrase" | "phrases" | "pattern" | "patterns" | "word" | "value"
            );
        if field.is_empty() || header {
            continue;
        }
        if seen.insert(field.to_owned()) {
            entries.push(field.to_owned());
        }
    }
    Ok(entries)
}

/// The first field of a CSV line; `None` when a quoted field does not close on the line.
fn first_field(line: &str) -> Option<String> {
    let line = line.trim_end_matches('\r');
    let Some(quoted) = line.strip_prefix('"') else {
        return Some(line.split(',').next().unwrap_or_default().to_owned());
    };
    let mut field = String::new();
    let mut characters = quoted.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '"' {
            if characters.peek() == Some(&'"') {
                characters.next();
                field.push('"');
            } else {
                return Some(field);
            }
        } else {
            field.push(character);
        }
    }
    None
}

/// `POST /v3/moderation/lists/{listId}/import`: a CSV file (one entry per row, the first column) appended to
/// the list, or replacing its entries with `?mode=replace`. The result is checked like any edit.
pub async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ImportQuery>,
    CsvBody(text): CsvBody,
) -> Result<Response, ApiError> {
    let who = moderator(&state, &headers).await?;
    let replacing = match query.mode.as_deref() {
        None | Some("append") => false,
        Some("replace") => true,
        Some(_) => return Err(ApiError::bad_request("ERR_QUERY_INVALID", "mode must be append or replace")),
    };
    let imported = csv_entries(&text)?;
    let mut list = state.moderation.store().list(&id).await?.ok_or_else(|| not_found(&id))?.spec;
    if replacing {
        list.entries = imported;
    } else {
        let mut present: std::collections::HashSet<String> = list.entries.iter().cloned().collect();
        for entry in imported {
            if present.insert(entry.clone()) {
                list.entries.push(entry);
            }
        }
    }
    if list.entries.len() > MAX_LIST_ENTRIES {
        return Err(ApiError::bad_request(
            "ERR_MODERATION_LIMIT",
            format!("a list holds at most {MAX_LIST_ENTRIES} entries; this import would make {}", list.entries.len()),
        ));
    }
    replace(&state, &who, &list, if replacing { "list.import.replace" } else { "list.import.append" }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows() {
        let text = "\u{FEFF}keyword,notes\nfuck,common\r\n\"kill, yourself\",phrase\n\"say \"\"hi\"\"\"\n\nfuck\n";
        assert_eq!(csv_entries(text).unwrap_or_default(), ["fuck", "kill, yourself", "say \"hi\""]);
        assert!(csv_entries("\"open").is_err());
    }
}
