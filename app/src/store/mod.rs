//! Every SQL decision of the service lives here: plain async functions over
//! sea-orm, no HTTP types. Hot paths are one statement; "does the parent
//! exist" is answered by foreign keys, not by an extra query. Listings
//! stream their rows ([`listing`]).

pub mod agents;
pub mod appender;
pub mod blobs;
pub mod children;
pub mod fork;
pub mod leases;
pub mod listing;
pub mod messages;
pub mod multi_agents;
pub mod retention;
pub mod sessions;
pub mod snapshots;
pub mod spool;
pub mod transfer;
pub mod version;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, FromQueryResult, SqlErr,
    sea_query::{
        DeleteStatement, Expr, ExprTrait, InsertStatement, IntoColumnRef, IntoTableRef, LockBehavior,
        LockType, Order, Query, SelectStatement, SimpleExpr, UpdateStatement,
    },
};

pub use self::children::ChildKey;
use crate::{db::Db, error::Error};

/// Server time at the precision both backends store (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Deletes a batch of the rows of `table` that are `due`: up to `batch`
/// of them, earliest by `order` first, named by their `key` columns.
/// Replicas deleting at once skip each other's rows on PostgreSQL
/// (`FOR UPDATE SKIP LOCKED`; SQLite's builder leaves the lock out, it has
/// one writer anyway).
fn delete_due<C, const N: usize>(
    table: impl IntoTableRef + Clone,
    key: [C; N],
    due: SimpleExpr,
    order: C,
    batch: u64,
) -> DeleteStatement
where
    C: IntoColumnRef + Copy,
{
    let rows = Query::select()
        .columns(key)
        .from(table.clone())
        .and_where(due)
        .order_by(order, Order::Asc)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    Query::delete().from_table(table).and_where(Expr::tuple(key.map(Expr::col)).in_subquery(rows)).to_owned()
}

/// Maps a failed insert: a missing parent (foreign key) and a taken key
/// (unique constraint) become the given errors, anything else is classified
/// as usual.
fn insert_error(err: DbErr, missing_parent: impl FnOnce() -> Error, taken: impl FnOnce() -> Error) -> Error {
    match err.sql_err() {
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => missing_parent(),
        Some(SqlErr::UniqueConstraintViolation(_)) => taken(),
        _ => err.into(),
    }
}

/// Runs an insert whose values may be large (documents of many MiB),
/// holding as few copies of them as it can: the statement is built, its
/// builder freed, and only then sent.
async fn insert(db: &impl Db, insert: InsertStatement) -> Result<u64, DbErr> {
    let statement = db.backend().build(&insert);
    drop(insert);
    Ok(db.writes().execute_raw(statement).await?.rows_affected())
}

/// Runs an update the same way and returns the rows it changed.
async fn update_returning<E>(db: &impl Db, mut update: UpdateStatement) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    update.returning_all();
    let statement = db.backend().build(&update);
    drop(update);
    let rows = db.writes().query_all_raw(statement).await?;
    rows.iter().map(|row| E::Model::from_query_result(row, "")).collect()
}

/// Runs a `SELECT COUNT(*) …` statement.
async fn count(db: &impl Db, count: &SelectStatement) -> Result<u64, DbErr> {
    let row = db.reads().query_one(count).await?;
    Ok(match row {
        Some(row) => count_value(row.try_get_by_index::<i64>(0)?),
        None => 0,
    })
}

fn count_value(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
