//! A conversation session: the root every other row belongs to.

use sea_orm::entity::prelude::*;

use crate::JsonText;

/// One row of `sessions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    pub session_type: String,
    /// JSON object.
    #[sea_orm(column_type = "Text")]
    pub metadata: JsonText,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Time to live in seconds; `None`: kept forever.
    pub ttl_seconds: Option<i64>,
    /// When it lapses, in microseconds since the Unix epoch (UTC).
    pub expires_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
