//! Sessions: the root of every other row.

use chrono::{DateTime, Utc};
use entity::session::{self, Column, Entity};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::{Expr, ExprTrait, Func, Query, SelectStatement},
};

use super::{Page, count, insert_error, now, page_with_counts};
use crate::error::Error;

/// What a new session is made of (JSON already serialized).
#[derive(Debug)]
pub struct NewSession {
    pub session_id: String,
    pub session_type: String,
    pub metadata: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Fields of a session an update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct SessionChanges {
    pub session_type: Option<String>,
    pub metadata: Option<String>,
}

fn not_found(session_id: &str) -> Error {
    Error::NotFound(format!("session `{session_id}` not found"))
}

/// Inserts a session; 409 when the id is taken.
pub async fn create(
    db: &impl ConnectionTrait,
    tenant: &str,
    new: NewSession,
) -> Result<session::Model, Error> {
    let now = now();
    let model = session::Model {
        tenant_id: tenant.to_owned(),
        session_id: new.session_id,
        session_type: new.session_type,
        metadata: new.metadata,
        version: 1,
        created_at: new.created_at.unwrap_or(now),
        updated_at: new.updated_at.unwrap_or(now),
    };
    Entity::insert(model.clone().into_active_model().reset_all()).exec_without_returning(db).await.map_err(
        |e| {
            insert_error(
                e,
                || Error::Internal,
                || Error::Conflict(format!("session `{}` already exists", model.session_id)),
            )
        },
    )?;
    Ok(model)
}

/// Reads one session.
pub async fn get(db: &impl ConnectionTrait, tenant: &str, session_id: &str) -> Result<session::Model, Error> {
    Entity::find_by_id((tenant.to_owned(), session_id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| not_found(session_id))
}

/// Applies `changes`, bumps the version and `updated_at`, in one statement.
pub async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    changes: SessionChanges,
) -> Result<session::Model, Error> {
    let mut update = Entity::update_many()
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now()))
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id));
    if let Some(session_type) = changes.session_type {
        update = update.col_expr(Column::SessionType, Expr::value(session_type));
    }
    if let Some(metadata) = changes.metadata {
        update = update.col_expr(Column::Metadata, Expr::value(metadata));
    }
    update.exec_with_returning(db).await?.into_iter().next().ok_or_else(|| not_found(session_id))
}

/// Deletes a session; the foreign keys cascade to everything under it.
pub async fn delete(db: &impl ConnectionTrait, tenant: &str, session_id: &str) -> Result<(), Error> {
    let deleted = Entity::delete_many()
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(not_found(session_id));
    }
    Ok(())
}

/// One page of the tenant's sessions, newest `created_at` first.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    offset: u64,
    limit: u64,
) -> Result<Page<session::Model>, Error> {
    let select = Entity::find()
        .filter(Column::TenantId.eq(tenant))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::SessionId)
        .offset(offset)
        .limit(limit);
    let (items, counts) = page_with_counts(db, select, vec![count_of(tenant)]).await?;
    let total = match counts {
        Some(counts) => counts.first().copied().unwrap_or(0),
        None => count(db, &count_of(tenant)).await?,
    };
    Ok(Page { items, total })
}

fn count_of(tenant: &str) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col(Column::SessionId)))
        .from(Entity)
        .and_where(Column::TenantId.eq(tenant))
        .to_owned()
}

/// One page of a session's children (agents, multi-agent states) and their
/// count: one round trip, plus two on the rare empty page, which must tell
/// a missing session (404) from the end of the list.
pub(super) async fn page_of_children<E>(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
    select: Select<E>,
    count_query: SelectStatement,
) -> Result<Page<E::Model>, Error>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    let (items, counts) = page_with_counts(db, select, vec![count_query.clone()]).await?;
    let total = match counts {
        Some(counts) => counts.first().copied().unwrap_or(0),
        None => {
            ensure_exists(db, tenant, session_id).await?;
            count(db, &count_query).await?
        }
    };
    Ok(Page { items, total })
}

/// `Err(NotFound)` unless the session exists (for the rare empty-page path).
pub(super) async fn ensure_exists(
    db: &impl ConnectionTrait,
    tenant: &str,
    session_id: &str,
) -> Result<(), Error> {
    Entity::find_by_id((tenant.to_owned(), session_id.to_owned()))
        .select_only()
        .column(Column::SessionId)
        .into_tuple::<String>()
        .one(db)
        .await?
        .map(drop)
        .ok_or_else(|| not_found(session_id))
}
