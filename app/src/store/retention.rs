//! Retention: a session with a TTL lapses at `updated_at + ttl` (kept as
//! `expires_at`, microseconds since the epoch). From that instant it and
//! everything under it answer as if they did not exist: every statement on
//! a session, or on a row under one, carries [`alive`] (or, on `sessions`
//! itself, [`unexpired`]); the sweeper then deletes lapsed sessions in
//! small batches (the foreign keys cascade to their rows).

use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr,
    sea_query::{Alias, Expr, ExprTrait, InsertStatement, Query, SelectStatement, SimpleExpr},
};

use crate::db::{Db, clock::now_micros};

use crate::domain::MAX_TTL_SECONDS;

/// `t` in microseconds since the Unix epoch.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// When a session written at `at` with `ttl_seconds` lapses (`None`: never).
pub fn expiry(at: DateTime<Utc>, ttl_seconds: Option<i64>) -> Option<i64> {
    ttl_seconds.map(|ttl| micros(at).saturating_add(ttl.saturating_mul(1_000_000)))
}

/// A TTL as stored: 0 means none.
pub fn stored_ttl(ttl_seconds: u64) -> Option<i64> {
    i64::try_from(Ord::min(ttl_seconds, MAX_TTL_SECONDS)).ok().filter(|ttl| *ttl > 0)
}

/// `expires_at` of a row of `sessions` has not passed by the database's
/// clock.
pub fn unexpired(backend: DatabaseBackend) -> Condition {
    let expires_at = Expr::col((session::Entity, session::Column::ExpiresAt));
    Condition::any().add(expires_at.clone().is_null()).add(expires_at.gt(now_micros(backend)))
}

/// `expires_at` of a row of `sessions` has passed by the database's clock.
fn lapsed(backend: DatabaseBackend) -> Condition {
    let expires_at = Expr::col((session::Entity, session::Column::ExpiresAt));
    Condition::all().add(expires_at.clone().is_not_null()).add(expires_at.lte(now_micros(backend)))
}

/// The session `(tenant, session_id)` exists and has not lapsed: the
/// condition every statement on rows under a session carries.
pub fn alive(backend: DatabaseBackend, tenant: &str, session_id: &str) -> SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(session::Entity)
            .and_where(Expr::col((session::Entity, session::Column::TenantId)).eq(tenant))
            .and_where(Expr::col((session::Entity, session::Column::SessionId)).eq(session_id))
            .cond_where(unexpired(backend))
            .to_owned(),
    )
}

/// `INSERT INTO table (columns) SELECT <rows> WHERE <alive>`: rows under a
/// session that are written only while it is alive, in one statement.
pub fn insert_alive(
    table: impl sea_orm::sea_query::IntoTableRef,
    columns: Vec<sea_orm::sea_query::DynIden>,
    rows: Vec<Vec<sea_orm::Value>>,
    alive: SimpleExpr,
) -> Result<InsertStatement, sea_orm::sea_query::error::Error> {
    let mut select = SelectStatement::new();
    match rows.as_slice() {
        [row] => {
            select.exprs(row.iter().cloned().map(Expr::val));
        }
        _ => {
            // Both backends name the columns of a VALUES list column1, column2, …
            select.exprs(
                (1..=columns.len()).map(|i| Expr::col((Alias::new("v"), Alias::new(format!("column{i}"))))),
            );
            select.from_values(rows.into_iter().map(sea_orm::sea_query::ValueTuple::Many), Alias::new("v"));
        }
    }
    select.and_where(alive);
    let mut insert = Query::insert();
    insert.into_table(table).columns(columns).select_from(select)?;
    Ok(insert)
}

/// Deletes up to `batch` lapsed sessions (and, by cascade, their rows);
/// their `(tenant, session_id)`s, for their snapshot blobs to follow.
/// Replicas sweeping at once skip each other's rows on PostgreSQL (`FOR
/// UPDATE SKIP LOCKED`); SQLite has one writer anyway.
pub async fn sweep(db: &impl Db, batch: u64) -> Result<Vec<(String, String)>, DbErr> {
    let mut delete = super::delete_due(
        session::Entity,
        [session::Column::TenantId, session::Column::SessionId],
        lapsed(db.backend()).into(),
        session::Column::ExpiresAt,
        batch,
    );
    delete.returning(Query::returning().columns([session::Column::TenantId, session::Column::SessionId]));
    let rows = db.writes().query_all_raw(db.backend().build(&delete)).await?;
    rows.iter().map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?))).collect()
}

/// Deletes up to `batch` of `tenant`'s lapsed sessions; how many.
pub async fn purge_lapsed_of(db: &impl Db, tenant: &str, batch: u64) -> Result<u64, DbErr> {
    let of_tenant = Expr::col((session::Entity, session::Column::TenantId)).eq(tenant);
    delete_lapsed(db, lapsed(db.backend()).add(of_tenant), batch).await
}

async fn delete_lapsed(db: &impl Db, due: Condition, batch: u64) -> Result<u64, DbErr> {
    let delete = super::delete_due(
        session::Entity,
        [session::Column::TenantId, session::Column::SessionId],
        due.into(),
        session::Column::ExpiresAt,
        batch,
    );
    let result = db.writes().execute_raw(db.backend().build(&delete)).await?;
    Ok(result.rows_affected())
}

/// Deletes the session `(tenant, session_id)` if it has lapsed, so that a
/// new session may take its id before the sweeper comes; whether it did.
pub async fn purge_lapsed(db: &impl Db, tenant: &str, session_id: &str) -> Result<bool, DbErr> {
    use sea_orm::{EntityTrait, QueryFilter};
    let deleted = session::Entity::delete_many()
        .filter(session::Column::TenantId.eq(tenant))
        .filter(session::Column::SessionId.eq(session_id))
        .filter(lapsed(db.backend()))
        .exec(&db.writes())
        .await?;
    Ok(deleted.rows_affected > 0)
}
