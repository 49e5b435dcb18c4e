//! An agent's state inside a session.

use sea_orm::entity::prelude::*;

use crate::JsonText;

/// One row of `agents`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub agent_id: String,
    /// JSON object.
    #[sea_orm(column_type = "Text")]
    pub state: JsonText,
    /// JSON object.
    #[sea_orm(column_type = "Text")]
    pub conversation_manager_state: JsonText,
    /// The SDK's `_internal_state`: a JSON object.
    #[sea_orm(column_type = "Text")]
    pub internal_state: JsonText,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
