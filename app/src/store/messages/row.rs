//! A listed message, read from its result row as it is written out: its
//! documents are never copied into strings of their own, and the keys the
//! caller already knows are not even selected.

use chrono::{DateTime, Utc};
use entity::message::{Column, Entity};
use sea_orm::{
    DbErr, QueryResult, Value,
    sqlx::{Row, ValueRef},
};

use crate::store::listing::Listed;

/// One message of a listing, as its row holds it.
pub struct MessageRow(QueryResult);

impl MessageRow {
    pub fn message_id(&self) -> Result<i64, DbErr> {
        self.0.try_get("", "message_id")
    }

    /// The message document, as stored.
    pub fn message(&self) -> Result<&str, DbErr> {
        text(&self.0, "message")?.ok_or_else(|| DbErr::Custom("a stored message is NULL".into()))
    }

    /// The redaction document, if any.
    pub fn redact_message(&self) -> Result<Option<&str>, DbErr> {
        text(&self.0, "redact_message")
    }

    pub fn created_at(&self) -> Result<DateTime<Utc>, DbErr> {
        self.0.try_get("", "created_at")
    }

    pub fn updated_at(&self) -> Result<DateTime<Utc>, DbErr> {
        self.0.try_get("", "updated_at")
    }
}

impl Listed<Entity> for MessageRow {
    fn read(row: QueryResult) -> Result<Self, DbErr> {
        Ok(Self(row))
    }

    fn key(&self, columns: &[Column]) -> Result<Vec<Value>, DbErr> {
        columns
            .iter()
            .map(|column| match column {
                Column::MessageId => self.message_id().map(Value::from),
                other => Err(DbErr::Custom(format!("messages are not listed by {other:?}"))),
            })
            .collect()
    }
}

/// A text column of `row` as a view into the row's own buffer.
fn text<'r>(row: &'r QueryResult, column: &str) -> Result<Option<&'r str>, DbErr> {
    let decode = |e: &dyn std::fmt::Display| DbErr::Custom(format!("reading `{column}`: {e}"));
    if let Some(row) = row.try_as_pg_row() {
        let value = row.try_get_raw(column).map_err(|e| decode(&e))?;
        return if value.is_null() { Ok(None) } else { value.as_str().map(Some).map_err(|e| decode(&e)) };
    }
    if let Some(row) = row.try_as_sqlite_row() {
        return row.try_get_unchecked::<Option<&str>, _>(column).map_err(|e| decode(&e));
    }
    Err(DbErr::Custom("a row of an unknown database".into()))
}
