//! Every SQL decision of the service lives here: plain async functions over
//! sea-orm, no HTTP types. Hot paths are one statement; "does the parent
//! exist" is answered by foreign keys, not by an extra query.

pub mod agents;
pub mod messages;
pub mod multi_agents;
pub mod sessions;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryTrait, Select, SqlErr,
    sea_query::{Expr, SelectStatement, SubQueryStatement},
};

use crate::error::Error;

/// The tenant of every row until authentication maps API keys to tenants.
pub const DEFAULT_TENANT: &str = "default";

/// Server time at the precision both backends store (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// One page of rows and the number of rows the listing has in all.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
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

/// Runs `select` with extra columns `count_0…` computed by the `counts`
/// statements (scalar subqueries), so a page and the sizes that describe it
/// come back in one round trip. The counts are `None` when the page is
/// empty: the caller then decides between "past the end" and "parent
/// missing", and counts separately.
async fn page_with_counts<E>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    counts: Vec<SelectStatement>,
) -> Result<(Vec<E::Model>, Option<Vec<u64>>), DbErr>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    let mut query = select.into_query();
    let query_count = counts.len();
    for (i, count) in counts.into_iter().enumerate() {
        query.expr_as(
            Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(count))),
            format!("count_{i}"),
        );
    }
    let rows = db.query_all(&query).await?;
    let counts = match rows.first() {
        Some(row) => Some(
            (0..query_count)
                .map(|i| row.try_get::<i64>("", &format!("count_{i}")).map(count_value))
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    let items = rows.iter().map(|row| E::Model::from_query_result(row, "")).collect::<Result<_, _>>()?;
    Ok((items, counts))
}

/// Runs a `SELECT COUNT(*) …` statement.
async fn count(db: &impl ConnectionTrait, count: &SelectStatement) -> Result<u64, DbErr> {
    let row = db.query_one(count).await?;
    Ok(match row {
        Some(row) => count_value(row.try_get_by_index::<i64>(0)?),
        None => 0,
    })
}

fn count_value(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
