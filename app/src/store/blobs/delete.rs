//! Deleting keys: each change under the keys' locks, like a write's
//! switch, so a delete and a write of one key take effect one after the
//! other. The deleted values go as a replaced one does ([`super::release`]).

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseBackend,
    sea_query::{Alias, Expr, ExprTrait, Query},
};

use super::{
    BlobKey, Head, Range, Timing, keys, lock, release,
    tables::{Column, Table},
};
use crate::{
    db::{Conn, Db},
    error::Error,
};

/// Keys deleted per transaction by a prefix delete: each holds a lock
/// (PostgreSQL's lock table has room for about 64 per transaction).
const BATCH: u64 = 64;

/// Deletes a key (a no-op when it does not exist).
pub async fn delete(db: &Conn, blob: BlobKey<'_>, timing: Timing) -> Result<(), Error> {
    let txn = db.begin().await?;
    lock(&txn, blob).await?;
    let delete = Query::delete()
        .from_table(Table::Blobs)
        .cond_where(blob.rows())
        .returning(Query::returning().columns([Column::Version, Column::Size]))
        .to_owned();
    let gone = txn.query_one_raw(txn.backend().build(&delete)).await?;
    if let Some(row) = gone {
        let old = Head { version: row.try_get_by_index(0)?, size: row.try_get_by_index(1)? };
        release(&txn, blob, old, timing).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Deletes every key with `prefix` (non-empty), a batch of keys per short
/// transaction; how many keys were deleted.
pub async fn delete_prefix(db: &Conn, tenant: &str, prefix: &str, timing: Timing) -> Result<u64, Error> {
    Ok(delete_prefix_unless_written(db, tenant, prefix, None, timing).await?.unwrap_or_default())
}

/// Like [`delete_prefix`], unless a key with `prefix` has been written at or
/// after `since`: each batch checks under its locks and, finding one, stops
/// there (`None`), so a value written while the prefix idled is kept.
pub async fn delete_idle_prefix(
    db: &Conn,
    tenant: &str,
    prefix: &str,
    since: DateTime<Utc>,
    timing: Timing,
) -> Result<Option<u64>, Error> {
    delete_prefix_unless_written(db, tenant, prefix, Some(since), timing).await
}

async fn delete_prefix_unless_written(
    db: &Conn,
    tenant: &str,
    prefix: &str,
    since: Option<DateTime<Utc>>,
    timing: Timing,
) -> Result<Option<u64>, Error> {
    let mut deleted = 0;
    let mut after: Option<String> = None;
    loop {
        let txn = db.begin().await?;
        let backend = txn.backend();
        let keys = lock_batch(&txn, tenant, prefix, after.as_deref()).await?;
        let Some(last) = keys.last().cloned() else { break };
        if let Some(since) = since {
            let written = Query::select()
                .expr(Expr::val(1))
                .from(Table::Blobs)
                .and_where(Expr::col(Column::TenantId).eq(tenant))
                .cond_where(Range::of(prefix).condition(Column::Key))
                .and_where(Expr::col(Column::UpdatedAt).gte(since))
                .limit(1)
                .to_owned();
            if txn.query_one_raw(backend.build(&written)).await?.is_some() {
                return Ok(None);
            }
        }
        // Exactly the keys locked: a key written meanwhile is not among
        // them, and its write comes after this batch.
        let delete = Query::delete()
            .from_table(Table::Blobs)
            .and_where(Expr::col(Column::TenantId).eq(tenant))
            .and_where(Expr::col(Column::Key).is_in(keys.iter().map(String::as_str)))
            .returning(Query::returning().columns([Column::Key, Column::Version, Column::Size]))
            .to_owned();
        let gone = txn.query_all_raw(backend.build(&delete)).await?;
        for row in &gone {
            let key: String = row.try_get_by_index(0)?;
            let old = Head { version: row.try_get_by_index(1)?, size: row.try_get_by_index(2)? };
            release(&txn, BlobKey { tenant, key: &key }, old, timing).await?;
        }
        txn.commit().await?;
        deleted += gone.len() as u64;
        if (keys.len() as u64) < BATCH {
            break;
        }
        after = Some(last);
    }
    Ok(Some(deleted))
}

/// The next batch of keys with `prefix` after `after`, ascending, each
/// locked for the transaction (in key order, so two prefix deletes cannot
/// deadlock).
async fn lock_batch(
    txn: &impl Db,
    tenant: &str,
    prefix: &str,
    after: Option<&str>,
) -> Result<Vec<String>, Error> {
    let backend = txn.backend();
    let keys = keys(tenant, prefix, after, BATCH);
    let select = match backend {
        DatabaseBackend::Postgres => {
            let k = Alias::new("k");
            let lock = "pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))";
            Query::select()
                .column((k.clone(), Column::Key))
                .expr(Expr::cust_with_exprs(lock, [Expr::val(tenant), Expr::col((k.clone(), Column::Key))]))
                .from_subquery(keys, k)
                .to_owned()
        }
        _ => keys,
    };
    let rows = txn.writes().query_all_raw(backend.build(&select)).await?;
    Ok(rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<_, _>>()?)
}
