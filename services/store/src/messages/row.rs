//! Message rows: the columns every message query selects, reading a row back, and the reads and the insert
//! that the send, the changes and the conversations share.

use comet_model::{Category, Message, ReceiverType, Uid};
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::StoreError;
use crate::rows::{self, get};

/// The columns every message query selects, in the order [`message_from_row`] reads them.
macro_rules! message_columns {
    () => {
        "id, conversation_id, seq, sender, receiver, receiver_type, category, message_type, data, muid, \
         parent_id, tags, sent_at, updated_at, edited_at, deleted_at, edited_by, deleted_by"
    };
}
pub(crate) use message_columns;

/// The message `sender` sent with `muid`, if any.
pub(crate) async fn message_by_muid(
    connection: &mut AnyConnection,
    sender: &Uid,
    muid: &str,
) -> Result<Option<Message>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE sender = ? AND muid = ?"))
        .bind(sender.as_str())
        .bind(muid)
        .fetch_optional(connection)
        .await?;
    row.as_ref().map(message_from_row).transpose()
}

/// Inserts a message row. The error stays a `sqlx::Error` so the caller can tell a unique violation.
pub(crate) async fn insert_message(
    transaction: &mut Transaction<'static, Any>,
    message: &Message,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO messages (",
        message_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(message.id.as_str())
    .bind(message.conversation_id.key())
    .bind(message.seq)
    .bind(message.sender.as_str())
    .bind(message.receiver.as_str())
    .bind(message.receiver_type.as_str())
    .bind(message.category.as_str())
    .bind(message.message_type.as_str())
    .bind(rows::json_text(&message.data))
    .bind(message.muid.as_deref())
    .bind(message.parent_id.as_deref())
    .bind(rows::json_text(&Value::from(message.tags.clone())))
    .bind(message.sent_at)
    .bind(message.updated_at)
    .bind(message.edited_at)
    .bind(message.deleted_at)
    .bind(message.edited_by.as_ref().map(Uid::as_str))
    .bind(message.deleted_by.as_ref().map(Uid::as_str))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// A nullable uid column.
fn optional_uid(row: &AnyRow, column: &str) -> Result<Option<Uid>, StoreError> {
    let text: Option<String> = get(row, column)?;
    text.map(|text| Uid::parse(&text).map_err(|error| crate::error::corrupt(column, error))).transpose()
}

/// A message from a row selected with [`message_columns!`].
pub(crate) fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    let tags = rows::json(row, "tags")?;
    let tags: Vec<String> = serde_json::from_value(tags).map_err(|error| crate::error::corrupt("tags", error))?;
    Ok(Message {
        id: get(row, "id")?,
        conversation_id: rows::conversation(row, "conversation_id")?,
        seq: get(row, "seq")?,
        sender: rows::uid(row, "sender")?,
        receiver: get(row, "receiver")?,
        receiver_type: rows::named(row, "receiver_type", ReceiverType::parse)?,
        category: rows::named(row, "category", Category::parse)?,
        message_type: get(row, "message_type")?,
        data: rows::json(row, "data")?,
        muid: get(row, "muid")?,
        parent_id: get(row, "parent_id")?,
        tags,
        sent_at: get(row, "sent_at")?,
        updated_at: get(row, "updated_at")?,
        edited_at: get(row, "edited_at")?,
        deleted_at: get(row, "deleted_at")?,
        edited_by: optional_uid(row, "edited_by")?,
        deleted_by: optional_uid(row, "deleted_by")?,
    })
}

/// The message with this id, read inside the caller's transaction.
pub(crate) async fn message_by_id(connection: &mut AnyConnection, id: &str) -> Result<Option<Message>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE id = ?"))
        .bind(id)
        .fetch_optional(connection)
        .await?;
    row.as_ref().map(message_from_row).transpose()
}
