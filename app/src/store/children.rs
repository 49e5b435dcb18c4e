//! Rows that live directly under a session and are named by an id of their
//! own (agents, multi-agent states, and whatever joins them) share one path:
//! insert, read, update, delete and list by `(tenant, session, id)`. Each
//! kind only says which of its columns play which part.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseBackend, EntityTrait, FromQueryResult, IntoActiveModel, Iterable,
    QueryFilter, QuerySelect, QueryTrait, Value,
    sea_query::{Expr, ExprTrait, Func, Order, Query, SelectStatement},
};

use super::{
    count, insert_error,
    leases::{self, Fence},
    listing, now, retention, sessions, update_returning,
    version::{self, Expected},
};
use crate::{
    db::{Conn, Db},
    error::Error,
};

/// A kind of row kept under a session.
pub trait SessionChild: EntityTrait<Model: FromQueryResult + Send + Sync + 'static> {
    /// What one row is called in messages: `agent`, `multi-agent state`.
    const NOUN: &'static str;
    const TENANT_ID: Self::Column;
    const SESSION_ID: Self::Column;
    const ID: Self::Column;
    /// Counts the writes to a row.
    const VERSION: Self::Column;
    const CREATED_AT: Self::Column;
    const UPDATED_AT: Self::Column;
    /// The JSON columns: what makes a row large.
    const PAYLOAD: &'static [Self::Column];
}

/// Declares `$entity` a kind of row kept under a session, called `$noun`
/// in messages, named by its `$id` column and sized by its `$payload`
/// (JSON) columns; the other columns have the names every such table uses.
macro_rules! session_child {
    ($entity:ty, $noun:literal, $id:ident, [$($payload:ident),+ $(,)?]) => {
        impl $crate::store::children::SessionChild for $entity {
            const NOUN: &'static str = $noun;
            const TENANT_ID: Self::Column = Column::TenantId;
            const SESSION_ID: Self::Column = Column::SessionId;
            const ID: Self::Column = Column::$id;
            const VERSION: Self::Column = Column::Version;
            const CREATED_AT: Self::Column = Column::CreatedAt;
            const UPDATED_AT: Self::Column = Column::UpdatedAt;
            const PAYLOAD: &'static [Self::Column] = &[$(Column::$payload),+];
        }
    };
}
pub(super) use session_child;

/// Which row: the tenant, its session and its own id.
#[derive(Clone, Copy, Debug)]
pub struct ChildKey<'a> {
    pub tenant: &'a str,
    pub session_id: &'a str,
    pub id: &'a str,
}

fn not_found<E: SessionChild>(key: ChildKey<'_>) -> Error {
    Error::NotFound(format!("{} `{}` not found in session `{}`", E::NOUN, key.id, key.session_id))
}

fn by_key<E: SessionChild, Q: QueryFilter>(backend: DatabaseBackend, query: Q, key: ChildKey<'_>) -> Q {
    keyed::<E, Q>(query, key).filter(retention::alive(backend, key.tenant, key.session_id))
}

/// [`by_key`] for a write under `fence`.
fn by_key_to_write<E: SessionChild, Q: QueryFilter>(
    backend: DatabaseBackend,
    query: Q,
    key: ChildKey<'_>,
    fence: Fence,
) -> Q {
    keyed::<E, Q>(query, key).filter(fence.guard(backend, key.tenant, key.session_id))
}

fn keyed<E: SessionChild, Q: QueryFilter>(query: Q, key: ChildKey<'_>) -> Q {
    query
        .filter(E::TENANT_ID.eq(key.tenant))
        .filter(E::SESSION_ID.eq(key.session_id))
        .filter(E::ID.eq(key.id))
}

/// Why a write under `fence` to the existing row `key` changed nothing: 404
/// when the row is gone, 423 when the lease refuses it, else `otherwise`.
pub(super) async fn refused<E: SessionChild>(
    db: &impl Db,
    key: ChildKey<'_>,
    fence: Fence,
    otherwise: Error,
) -> Error {
    if let Err(e) = ensure_exists::<E>(db, key).await {
        return e;
    }
    match leases::check(db, key.tenant, key.session_id, fence).await {
        Err(e) => e,
        Ok(()) => otherwise,
    }
}

/// Inserts `row` and returns it; 404 when the session is missing (or has
/// lapsed), 423 when its lease refuses the write, 409 when the id is taken.
pub async fn create<E>(
    db: &impl Db,
    key: ChildKey<'_>,
    row: E::Model,
    fence: Fence,
) -> Result<E::Model, Error>
where
    E: SessionChild,
    E::Model: IntoActiveModel<E::ActiveModel> + Clone,
{
    let model = row.clone().into_active_model();
    let (columns, values): (Vec<_>, Vec<_>) = E::Column::iter()
        .filter_map(|column| {
            Some((sea_orm::sea_query::IntoIden::into_iden(column), model.get(column).into_value()?))
        })
        .unzip();
    let missing = || Error::NotFound(format!("session `{}` not found", key.session_id));
    let statement = retention::insert_alive(
        E::default(),
        columns,
        vec![values],
        fence.guard(db.backend(), key.tenant, key.session_id),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "building an insert");
        Error::Internal
    })?;
    let inserted = super::insert(db, statement).await.map_err(|e| {
        insert_error(e, missing, || {
            Error::Conflict(format!(
                "{} `{}` already exists in session `{}`",
                E::NOUN,
                key.id,
                key.session_id
            ))
        })
    })?;
    if inserted == 0 {
        leases::check(db, key.tenant, key.session_id, fence).await?;
        return Err(missing());
    }
    Ok(row)
}

/// Reads one row.
pub async fn get<E: SessionChild>(db: &impl Db, key: ChildKey<'_>) -> Result<E::Model, Error> {
    by_key::<E, _>(db.backend(), E::find(), key).one(&db.reads()).await?.ok_or_else(|| not_found::<E>(key))
}

/// `Err(NotFound)` unless the row exists, reading nothing else of it.
pub async fn ensure_exists<E: SessionChild>(db: &impl Db, key: ChildKey<'_>) -> Result<(), Error> {
    let found = by_key::<E, _>(db.backend(), E::find(), key)
        .select_only()
        .column(E::ID)
        .into_tuple::<String>()
        .one(&db.reads())
        .await?;
    found.map(drop).ok_or_else(|| not_found::<E>(key))
}

/// Sets `changes`, bumps the version and `updated_at`, in one statement,
/// if the lease lets the write through (423) and the row is at an
/// `expected` version (412 if it is at another).
pub async fn update<E: SessionChild>(
    db: &impl Db,
    key: ChildKey<'_>,
    expected: Expected<'_>,
    changes: Vec<(E::Column, Value)>,
    fence: Fence,
) -> Result<E::Model, Error> {
    let mut update = by_key_to_write::<E, _>(db.backend(), E::update_many(), key, fence)
        .col_expr(E::VERSION, Expr::col(E::VERSION).add(1))
        .col_expr(E::UPDATED_AT, Expr::value(now()));
    if let Some(versions) = expected {
        update = update.filter(E::VERSION.is_in(versions.iter().copied()));
    }
    for (column, value) in changes {
        update = update.col_expr(column, Expr::value(value));
    }
    let changed = update_returning::<E>(db, update.into_query()).await?;
    match changed.into_iter().next() {
        Some(row) => Ok(row),
        None if expected.is_none() => Err(refused::<E>(db, key, fence, not_found::<E>(key)).await),
        None => Err(refused::<E>(db, key, fence, version::stale_or(Ok(()))).await),
    }
}

/// Deletes one row (and, through the foreign keys, what hangs below it).
pub async fn delete<E: SessionChild>(db: &impl Db, key: ChildKey<'_>, fence: Fence) -> Result<(), Error> {
    let deleted =
        by_key_to_write::<E, _>(db.backend(), E::delete_many(), key, fence).exec(&db.writes()).await?;
    if deleted.rows_affected == 0 {
        return Err(refused::<E>(db, key, fence, not_found::<E>(key)).await);
    }
    Ok(())
}

/// A page of a session's rows, oldest first, and how many it has in all;
/// 404 when the session is missing.
pub async fn list<E: SessionChild>(
    db: &Conn,
    tenant: &str,
    session_id: &str,
    offset: u64,
    limit: u64,
) -> Result<listing::Page<E>, Error> {
    let total: SelectStatement = Query::select()
        .expr(Func::count(Expr::col(E::ID)))
        .from(E::default())
        .and_where(E::TENANT_ID.eq(tenant))
        .and_where(E::SESSION_ID.eq(session_id))
        .and_where(retention::alive(db.backend(), tenant, session_id))
        .to_owned();
    let page = listing::Listing {
        select: E::find()
            .filter(E::TENANT_ID.eq(tenant))
            .filter(E::SESSION_ID.eq(session_id))
            .filter(retention::alive(db.backend(), tenant, session_id)),
        order: vec![(E::CREATED_AT, Order::Asc), (E::ID, Order::Asc)],
        payload: E::PAYLOAD.to_vec(),
        offset,
        limit,
        counts: vec![total.clone()],
    };
    match listing::open(db, page).await? {
        Some(rows) => {
            Ok(listing::Page { total: rows.counts.first().copied().unwrap_or(0), rows: Some(rows) })
        }
        None => {
            sessions::ensure_exists(db, tenant, session_id).await?;
            Ok(listing::Page { total: count(db, &total).await?, rows: None })
        }
    }
}
