//! Reading columns back into domain values. A value that does not parse is reported as a decode error naming
//! its column: it means the row was written by something other than this crate.

use comet_model::{ConversationId, Guid, Uid};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::StoreError;
use crate::error::corrupt;

/// A column of a type the Any driver decodes directly (`String`, `i64`, their `Option`s).
pub(crate) fn get<T>(row: &AnyRow, column: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get(column)?)
}

/// A uid column.
pub(crate) fn uid(row: &AnyRow, column: &str) -> Result<Uid, StoreError> {
    let text: String = get(row, column)?;
    Uid::parse(&text).map_err(|error| corrupt(column, error))
}

/// A guid column.
pub(crate) fn guid(row: &AnyRow, column: &str) -> Result<Guid, StoreError> {
    let text: String = get(row, column)?;
    Guid::parse(&text).map_err(|error| corrupt(column, error))
}

/// A conversation key column (`ConversationId::key`).
pub(crate) fn conversation(row: &AnyRow, column: &str) -> Result<ConversationId, StoreError> {
    let text: String = get(row, column)?;
    ConversationId::from_key(&text).map_err(|error| corrupt(column, error))
}

/// A JSON text column.
pub(crate) fn json(row: &AnyRow, column: &str) -> Result<Value, StoreError> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|error| corrupt(column, error))
}

/// A nullable JSON text column.
pub(crate) fn optional_json(row: &AnyRow, column: &str) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = get(row, column)?;
    text.map(|text| serde_json::from_str(&text).map_err(|error| corrupt(column, error))).transpose()
}

/// A column holding one of an enum's names, parsed by `parse` (`Scope::parse`, …).
pub(crate) fn named<T>(row: &AnyRow, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let text: String = get(row, column)?;
    parse(&text).ok_or_else(|| corrupt(column, UnknownName(text)))
}

/// A stored name that the domain type does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown value `{0}`")]
pub(crate) struct UnknownName(pub(crate) String);

/// JSON as stored: compact text.
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// Optional JSON as stored: compact text or NULL.
pub(crate) fn optional_json_text(value: Option<&Value>) -> Option<String> {
    value.map(json_text)
}
