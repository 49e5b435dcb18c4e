//! Agents of a session: their state, conversation-manager state and the
//! SDK's internal state.

use chrono::{DateTime, Utc};
use entity::agent::{self, Column, Entity};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait, Func, Query, SelectStatement},
};

use super::{Page, insert_error, now, sessions};
use crate::error::Error;

/// What a new agent is made of (JSON already serialized).
#[derive(Debug)]
pub struct NewAgent {
    pub agent_id: String,
    pub state: String,
    pub conversation_manager_state: String,
    pub internal_state: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Fields an update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct AgentChanges {
    pub state: Option<String>,
    pub conversation_manager_state: Option<String>,
    pub internal_state: Option<String>,
}

fn not_found(session_id: &str, agent_id: &str) -> Error {
    Error::NotFound(format!("agent `{agent_id}` not found in session `{session_id}`"))
}

/// Inserts an agent; 404 when the session is missing, 409 when the id is taken.
pub async fn create(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    new: NewAgent,
) -> Result<agent::Model, Error> {
    let now = now();
    let model = agent::Model {
        tenant_id: tenant.to_owned(),
        session_id: session_id.to_owned(),
        agent_id: new.agent_id,
        state: new.state,
        conversation_manager_state: new.conversation_manager_state,
        internal_state: new.internal_state,
        version: 1,
        created_at: new.created_at.unwrap_or(now),
        updated_at: new.updated_at.unwrap_or(now),
    };
    Entity::insert(model.clone().into_active_model().reset_all()).exec_without_returning(db).await.map_err(
        |e| {
            insert_error(
                e,
                || Error::NotFound(format!("session `{session_id}` not found")),
                || {
                    Error::Conflict(format!(
                        "agent `{}` already exists in session `{session_id}`",
                        model.agent_id
                    ))
                },
            )
        },
    )?;
    Ok(model)
}

/// Reads one agent.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    agent_id: &str,
) -> Result<agent::Model, Error> {
    Entity::find_by_id((tenant.to_owned(), session_id.to_owned(), agent_id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| not_found(session_id, agent_id))
}

/// Applies `changes`, bumps the version and `updated_at`, in one statement.
pub async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    agent_id: &str,
    changes: AgentChanges,
) -> Result<agent::Model, Error> {
    let mut update = Entity::update_many()
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now()))
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::AgentId.eq(agent_id));
    for (column, value) in [
        (Column::State, changes.state),
        (Column::ConversationManagerState, changes.conversation_manager_state),
        (Column::InternalState, changes.internal_state),
    ] {
        if let Some(value) = value {
            update = update.col_expr(column, Expr::value(value));
        }
    }
    update.exec_with_returning(db).await?.into_iter().next().ok_or_else(|| not_found(session_id, agent_id))
}

/// Deletes an agent and, through the foreign key, its messages.
pub async fn delete(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    agent_id: &str,
) -> Result<(), Error> {
    let deleted = Entity::delete_many()
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::AgentId.eq(agent_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(not_found(session_id, agent_id));
    }
    Ok(())
}

/// One page of a session's agents, oldest first; 404 when the session is missing.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    offset: u64,
    limit: u64,
) -> Result<Page<agent::Model>, Error> {
    let select = Entity::find()
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::AgentId)
        .offset(offset)
        .limit(limit);
    sessions::page_of_children(db, tenant, session_id, select, count_of(tenant, session_id)).await
}

fn count_of(tenant: &str, session_id: &str) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col(Column::AgentId)))
        .from(Entity)
        .and_where(Column::TenantId.eq(tenant))
        .and_where(Column::SessionId.eq(session_id))
        .to_owned()
}

/// `Err(NotFound)` unless the agent exists (for the rare empty-page path).
pub(super) async fn ensure_exists(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    agent_id: &str,
) -> Result<(), Error> {
    Entity::find_by_id((tenant.to_owned(), session_id.to_owned(), agent_id.to_owned()))
        .select_only()
        .column(Column::AgentId)
        .into_tuple::<String>()
        .one(db)
        .await?
        .map(drop)
        .ok_or_else(|| not_found(session_id, agent_id))
}
