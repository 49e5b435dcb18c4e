//! Sessions: the root of every other row.

use chrono::{DateTime, Utc};
use entity::{
    JsonText,
    session::{Column, Entity, Model},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    QueryTrait,
    sea_query::{Expr, ExprTrait, Func, Order, Query, SelectStatement},
};

use super::{
    count, insert_error,
    leases::{self, Fence},
    listing, now,
    retention::{self, unexpired},
    update_returning,
    version::{self, Expected},
};
use crate::{
    db::{Conn, Db, Txn},
    error::Error,
};

/// What a new session is made of.
#[derive(Debug)]
pub struct NewSession {
    pub session_id: String,
    pub session_type: String,
    pub metadata: JsonText,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Seconds the session lives after its last update; 0: forever.
    pub ttl_seconds: u64,
}

/// Fields of a session an update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct SessionChanges {
    pub session_type: Option<String>,
    pub metadata: Option<JsonText>,
    /// A new TTL (0: forever); either way the expiry counts from now.
    pub ttl_seconds: Option<u64>,
}

/// The answer for a session that does not exist (or has lapsed).
pub(super) fn not_found(session_id: &str) -> Error {
    Error::NotFound(format!("session `{session_id}` not found"))
}

/// Inserts a session; 409 when the id is taken (by a session that has not
/// lapsed: a lapsed one gives its id up at once).
pub async fn create(db: &impl Db, tenant: &str, new: NewSession) -> Result<Model, Error> {
    create_as(db, tenant, new, Retry::AfterPurge).await
}

/// Inserts a session inside a transaction: a lapsed session of that id is
/// purged first, since on PostgreSQL a failed insert ends the transaction
/// (so [`create`]'s purge-and-retry could not follow it).
pub async fn create_in(txn: &Txn, tenant: &str, new: NewSession) -> Result<Model, Error> {
    retention::purge_lapsed(txn, tenant, &new.session_id).await?;
    create_as(txn, tenant, new, Retry::Never).await
}

/// Whether a taken id is tried again after purging a lapsed session of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    AfterPurge,
    Never,
}

async fn create_as(db: &impl Db, tenant: &str, new: NewSession, retry: Retry) -> Result<Model, Error> {
    let now = now();
    let updated_at = new.updated_at.unwrap_or(now);
    let ttl_seconds = retention::stored_ttl(new.ttl_seconds);
    let model = Model {
        tenant_id: tenant.to_owned(),
        session_id: new.session_id,
        session_type: new.session_type,
        metadata: new.metadata,
        version: version::first(),
        created_at: new.created_at.unwrap_or(now),
        updated_at,
        ttl_seconds,
        // A client's `updated_at` in the past (an import) never makes a
        // session lapse before its TTL has run from its creation.
        expires_at: retention::expiry(Ord::max(updated_at, now), ttl_seconds),
    };
    let insert = || Entity::insert(model.clone().into_active_model().reset_all()).into_query();
    let taken = || Error::Conflict(format!("session `{}` already exists", model.session_id));
    match super::insert(db, insert()).await.map_err(|e| insert_error(e, || Error::Internal, taken)) {
        Err(Error::Conflict(_))
            if retry == Retry::AfterPurge
                && retention::purge_lapsed(db, tenant, &model.session_id).await? =>
        {
            super::insert(db, insert()).await.map_err(|e| insert_error(e, || Error::Internal, taken))?;
        }
        result => {
            result?;
        }
    }
    Ok(model)
}

/// Reads one session.
pub async fn get(db: &impl Db, tenant: &str, session_id: &str) -> Result<Model, Error> {
    Entity::find_by_id((tenant.to_owned(), session_id.to_owned()))
        .filter(unexpired(db.backend()))
        .one(&db.reads())
        .await?
        .ok_or_else(|| not_found(session_id))
}

/// Applies `changes`, bumps the version and `updated_at`, in one statement,
/// if the session is at an `expected` version.
pub async fn update(
    db: &impl Db,
    tenant: &str,
    session_id: &str,
    expected: Expected<'_>,
    changes: SessionChanges,
    fence: Fence,
) -> Result<Model, Error> {
    let now = now();
    // The expiry counts from this update: with a new TTL, or the stored one
    // (NULL, kept forever, stays NULL).
    let (expires_at, new_ttl) = match changes.ttl_seconds.map(retention::stored_ttl) {
        Some(ttl) => (Expr::value(retention::expiry(now, ttl)), Some(ttl)),
        None => (Expr::value(retention::micros(now)).add(Expr::col(Column::TtlSeconds).mul(1_000_000)), None),
    };
    let mut update = Entity::update_many()
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::ExpiresAt, expires_at)
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .filter(unexpired(db.backend()))
        .filter(fence.admits(db.backend()));
    if let Some(ttl) = new_ttl {
        update = update.col_expr(Column::TtlSeconds, Expr::value(ttl));
    }
    if let Some(versions) = expected {
        update = update.filter(Column::Version.is_in(versions.iter().copied()));
    }
    if let Some(session_type) = changes.session_type {
        update = update.col_expr(Column::SessionType, Expr::value(session_type));
    }
    if let Some(metadata) = changes.metadata {
        update = update.col_expr(Column::Metadata, Expr::value(metadata));
    }
    let changed = update_returning::<Entity>(db, update.into_query()).await?;
    match changed.into_iter().next() {
        Some(row) => Ok(row),
        None => {
            // 404, else 423, else 412 (or a session deleted meanwhile).
            leases::check(db, tenant, session_id, fence).await?;
            match expected {
                None => Err(not_found(session_id)),
                Some(_) => Err(version::stale_or(Ok(()))),
            }
        }
    }
}

/// Deletes a session (and its lease); the foreign keys cascade to
/// everything under it.
pub async fn delete(db: &impl Db, tenant: &str, session_id: &str, fence: Fence) -> Result<(), Error> {
    let deleted = Entity::delete_many()
        .filter(Column::TenantId.eq(tenant))
        .filter(Column::SessionId.eq(session_id))
        .filter(unexpired(db.backend()))
        .filter(fence.admits(db.backend()))
        .exec(&db.writes())
        .await?;
    if deleted.rows_affected == 0 {
        leases::check(db, tenant, session_id, fence).await?;
        return Err(not_found(session_id));
    }
    Ok(())
}

/// Which of a tenant's sessions a listing shows: each filter given holds.
#[derive(Debug, Default)]
pub struct SessionFilter {
    pub session_type: Option<String>,
    /// Strictly after / before, as every `…_after` and `…_before`.
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    pub id_prefix: Option<String>,
}

impl SessionFilter {
    /// The filters as one condition. Timestamps compare as the engine
    /// stores them: `timestamptz` on PostgreSQL; on SQLite, RFC 3339 text
    /// in UTC, whose order is the instants' (as the listing's order is).
    /// The prefix is compared by its first characters, the same whatever
    /// the column's collation.
    fn condition(&self) -> Condition {
        let mut all = Condition::all();
        if let Some(session_type) = &self.session_type {
            all = all.add(Column::SessionType.eq(session_type.as_str()));
        }
        for (column, after, before) in [
            (Column::CreatedAt, self.created_after, self.created_before),
            (Column::UpdatedAt, self.updated_after, self.updated_before),
        ] {
            if let Some(after) = after {
                all = all.add(column.gt(after));
            }
            if let Some(before) = before {
                all = all.add(column.lt(before));
            }
        }
        if let Some(prefix) = &self.id_prefix {
            // An `int`: PostgreSQL has no `substr(text, int, bigint)`.
            let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
            let start = Func::cust("substr").arg(Expr::col(Column::SessionId)).arg(1).arg(chars);
            all = all.add(Expr::expr(start).eq(prefix.as_str()));
        }
        all
    }
}

/// One page of the tenant's sessions that `filter` lets through, newest
/// `created_at` first.
pub async fn list(
    db: &Conn,
    tenant: &str,
    filter: &SessionFilter,
    offset: u64,
    limit: u64,
) -> Result<listing::Page<Entity>, Error> {
    let total: SelectStatement = Query::select()
        .expr(Func::count(Expr::col(Column::SessionId)))
        .from(Entity)
        .and_where(Column::TenantId.eq(tenant))
        .cond_where(unexpired(db.backend()))
        .cond_where(filter.condition())
        .to_owned();
    let page = listing::Listing {
        select: Entity::find()
            .filter(Column::TenantId.eq(tenant))
            .filter(unexpired(db.backend()))
            .filter(filter.condition()),
        order: vec![(Column::CreatedAt, Order::Desc), (Column::SessionId, Order::Desc)],
        payload: vec![Column::Metadata],
        offset,
        limit,
        counts: vec![total.clone()],
    };
    Ok(match listing::open(db, page).await? {
        Some(rows) => listing::Page { total: rows.counts.first().copied().unwrap_or(0), rows: Some(rows) },
        None => listing::Page { total: count(db, &total).await?, rows: None },
    })
}

/// `Err(NotFound)` unless the session exists (for the rare empty-page path).
pub(super) async fn ensure_exists(db: &impl Db, tenant: &str, session_id: &str) -> Result<(), Error> {
    Entity::find_by_id((tenant.to_owned(), session_id.to_owned()))
        .filter(unexpired(db.backend()))
        .select_only()
        .column(Column::SessionId)
        .into_tuple::<String>()
        .one(&db.reads())
        .await?
        .map(drop)
        .ok_or_else(|| not_found(session_id))
}
