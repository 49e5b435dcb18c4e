//! Snapshot sessions: the SDK's `SnapshotSessionManager` keeps a session
//! only as blobs under `session/<id>/` (its agents' and orchestrators'
//! latest snapshots under `…/snapshots/`, and every earlier one under
//! `…/immutable_history/`), with no session row. What is done to a session
//! is done to those blobs too, and retention expires them: whole idle
//! snapshot sessions, and old history.

use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, Order, Query},
};

use super::blobs::{
    self, BlobKey, Timing,
    tables::{Column, Table},
};
use crate::{
    db::{Conn, Db},
    error::Error,
};

/// The blob prefix of session `session_id`'s snapshots.
pub fn prefix(session_id: &str) -> String {
    format!("session/{session_id}/")
}

/// Whether session `session_id` has snapshot blobs.
pub async fn exist(db: &impl Db, tenant: &str, session_id: &str) -> Result<bool, Error> {
    Ok(!blobs::list(db, tenant, &prefix(session_id), None, 1).await?.0.is_empty())
}

/// Deletes the snapshot blobs of session `session_id`; how many.
pub async fn delete(db: &Conn, tenant: &str, session_id: &str, timing: Timing) -> Result<u64, Error> {
    blobs::delete_prefix(db, tenant, &prefix(session_id), timing).await
}

/// Deletes the snapshot blobs of a session whose row lapsed, unless one was
/// written at or after `since` (a new session of that id has begun).
pub async fn delete_lapsed(
    db: &Conn,
    tenant: &str,
    session_id: &str,
    since: DateTime<Utc>,
    timing: Timing,
) -> Result<(), Error> {
    blobs::delete_idle_prefix(db, tenant, &prefix(session_id), since, timing).await.map(drop)
}

/// The keys, across tenants, of blobs matching `pattern` (`*` for any
/// text, compared case-sensitively: `LIKE` on PostgreSQL, `GLOB` on SQLite)
/// last written before `cutoff`, after `after` in key order, `batch` at
/// most: `(tenant, key)`.
async fn written_before(
    db: &Conn,
    pattern: &str,
    cutoff: DateTime<Utc>,
    after: Option<&(String, String)>,
    batch: u64,
) -> Result<Vec<(String, String)>, Error> {
    let mut select = Query::select()
        .columns([Column::TenantId, Column::Key])
        .from(Table::Blobs)
        .and_where(match db.backend() {
            DatabaseBackend::Sqlite => Expr::cust_with_values("\"key\" GLOB ?", [pattern]),
            _ => Expr::col(Column::Key).like(pattern.replace('_', "\\_").replace('*', "%")),
        })
        .and_where(Expr::col(Column::UpdatedAt).lt(cutoff))
        .order_by(Column::TenantId, Order::Asc)
        .order_by(Column::Key, Order::Asc)
        .limit(batch)
        .to_owned();
    if let Some((tenant, key)) = after {
        select.and_where(
            Expr::tuple([Expr::col(Column::TenantId), Expr::col(Column::Key)])
                .gt(Expr::tuple([Expr::val(tenant.as_str()), Expr::val(key.as_str())])),
        );
    }
    let rows = db.reads().query_all_raw(db.backend().build(&select)).await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect::<Result<_, sea_orm::DbErr>>()?)
}

/// Whether `key` is an `immutable_history/` snapshot in the SDK's layout,
/// `session/<id>/scopes/<scope>/<owner>/immutable_history/<file>` (and not,
/// say, the latest snapshot of an agent called `immutable_history`).
fn is_history(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    parts.len() == 7 && parts[0] == "session" && parts[2] == "scopes" && parts[5] == "immutable_history"
}

/// Deletes `immutable_history/` snapshots written before `cutoff`, looking
/// at `batches` batches of `batch` candidates at most; how many. The latest
/// snapshots stay.
pub async fn expire_history(
    db: &Conn,
    cutoff: DateTime<Utc>,
    batch: u64,
    batches: usize,
    timing: Timing,
) -> Result<u64, Error> {
    let mut deleted = 0;
    let mut after = None;
    for _ in 0..batches {
        let due = written_before(db, "session/*/immutable_history/*", cutoff, after.as_ref(), batch).await?;
        for (tenant, key) in due.iter().filter(|(_, key)| is_history(key)) {
            blobs::delete(db, BlobKey { tenant, key }, timing).await?;
            deleted += 1;
        }
        if (due.len() as u64) < batch {
            break;
        }
        after = due.last().cloned();
    }
    Ok(deleted)
}

/// Deletes snapshot sessions (blobs only, no session row) where nothing has
/// been written since `cutoff`, looking at `batches` batches of `batch`
/// latest snapshots at most; how many sessions.
pub async fn expire_idle(
    db: &Conn,
    cutoff: DateTime<Utc>,
    batch: u64,
    batches: usize,
    timing: Timing,
) -> Result<u64, Error> {
    let mut deleted = 0;
    let mut after = None;
    for _ in 0..batches {
        let stale =
            written_before(db, "session/*/snapshots/snapshot_latest.json", cutoff, after.as_ref(), batch)
                .await?;
        for (tenant, key) in &stale {
            let Some(session_id) = key.strip_prefix("session/").and_then(|rest| rest.split('/').next())
            else {
                continue;
            };
            // A row's own TTL governs a session that has one; a write while
            // the blobs go keeps the session (the delete stops there).
            if !has_row(db, tenant, session_id).await?
                && matches!(blobs::delete_idle_prefix(db, tenant, &prefix(session_id), cutoff, timing).await?, Some(n) if n > 0)
            {
                deleted += 1;
            }
        }
        if (stale.len() as u64) < batch {
            break;
        }
        after = stale.last().cloned();
    }
    Ok(deleted)
}

/// Whether `session_id` has a session row.
async fn has_row(db: &Conn, tenant: &str, session_id: &str) -> Result<bool, Error> {
    let rows = session::Entity::find()
        .filter(session::Column::TenantId.eq(tenant))
        .filter(session::Column::SessionId.eq(session_id))
        .count(&db.reads())
        .await?;
    Ok(rows > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn history_is_only_the_sdks_layout() {
        assert!(super::is_history("session/s/scopes/agent/a/immutable_history/snapshot_1.json"));
        for other in [
            "session/s/scopes/agent/immutable_history/snapshots/snapshot_latest.json",
            "session/s/immutable_history/x",
            "notes/s/scopes/agent/a/immutable_history/x",
        ] {
            assert!(!super::is_history(other), "{other}");
        }
    }
}
