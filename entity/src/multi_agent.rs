//! The state of a multi-agent orchestrator (Graph, Swarm) inside a session.

use sea_orm::entity::prelude::*;

use crate::JsonText;

/// One row of `multi_agents`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "multi_agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub multi_agent_id: String,
    /// The orchestrator's `serialize_state()` object.
    #[sea_orm(column_type = "Text")]
    pub state: JsonText,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
