//! Multi-agent orchestrator state (Graph, Swarm) of a session.

use entity::multi_agent::{self, Column, Entity};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait, Func, Query, SelectStatement},
};

use super::{Page, insert_error, now, sessions};
use crate::error::Error;

fn not_found(session_id: &str, multi_agent_id: &str) -> Error {
    Error::NotFound(format!("multi-agent state `{multi_agent_id}` not found in session `{session_id}`"))
}

/// Inserts a state; 404 when the session is missing, 409 when the id is taken.
pub async fn create(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    multi_agent_id: String,
    state: String,
) -> Result<multi_agent::Model, Error> {
    let now = now();
    let model = multi_agent::Model {
        tenant_id: tenant.to_owned(),
        session_id: session_id.to_owned(),
        multi_agent_id,
        state,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    Entity::insert(model.clone().into_active_model().reset_all()).exec_without_returning(db).await.map_err(
        |e| {
            insert_error(
                e,
                || Error::NotFound(format!("session `{session_id}` not found")),
                || {
                    Error::Conflict(format!(
                        "multi-agent state `{}` already exists in session `{session_id}`",
                        model.multi_agent_id
                    ))
                },
            )
        },
    )?;
    Ok(model)
}

/// Reads one state.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    multi_agent_id: &str,
) -> Result<multi_agent::Model, Error> {
    Entity::find_by_id((tenant.to_owned(), session_id.to_owned(), multi_agent_id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| not_found(session_id, multi_agent_id))
}

/// Replaces the state of an existing row (never creates), in one statement.
pub async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    multi_agent_id: &str,
    state: String,
) -> Result<multi_agent::Model, Error> {
    Entity::update_many()
        .col_expr(Column::State, Expr::value(state))
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now()))
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::MultiAgentId.eq(multi_agent_id))
        .exec_with_returning(db)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(session_id, multi_agent_id))
}

/// Deletes one state.
pub async fn delete(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    multi_agent_id: &str,
) -> Result<(), Error> {
    let deleted = Entity::delete_many()
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::MultiAgentId.eq(multi_agent_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(not_found(session_id, multi_agent_id));
    }
    Ok(())
}

/// One page of a session's states, oldest first; 404 when the session is missing.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    offset: u64,
    limit: u64,
) -> Result<Page<multi_agent::Model>, Error> {
    let select = Entity::find()
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::MultiAgentId)
        .offset(offset)
        .limit(limit);
    sessions::page_of_children(db, tenant, session_id, select, count_of(tenant, session_id)).await
}

fn count_of(tenant: &str, session_id: &str) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col(Column::MultiAgentId)))
        .from(Entity)
        .and_where(Column::TenantId.eq(tenant))
        .and_where(Column::SessionId.eq(session_id))
        .to_owned()
}
