//! One message of an agent's conversation, keyed by the client's index.

use sea_orm::entity::prelude::*;

use crate::JsonText;

/// One row of `messages`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_id: String,
    /// The client's 0-based index in the conversation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: i64,
    /// JSON object.
    #[sea_orm(column_type = "Text")]
    pub message: JsonText,
    /// JSON object, or `NULL` when the message is not redacted.
    #[sea_orm(column_type = "Text", nullable)]
    pub redact_message: Option<JsonText>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
