//! Deleting keys: each change under the keys' locks, like a write's
//! switch, so a delete and a write of one key take effect one after the
//! other. The deleted values go as a replaced one does ([`super::release`]).

use sea_orm::{ConnectionTrait, DatabaseBackend, Value};

use super::{BlobKey, Head, Range, Timing, lock, release, statement};
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
    let sql = "DELETE FROM blobs WHERE tenant_id = $1 AND key = $2 RETURNING version, size";
    let gone = txn.query_one_raw(statement(txn.backend(), sql, blob.values([]))).await?;
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
    let mut deleted = 0;
    let mut after: Option<String> = None;
    loop {
        let txn = db.begin().await?;
        let backend = txn.backend();
        let keys = lock_batch(&txn, tenant, prefix, after.as_deref()).await?;
        let Some(last) = keys.last().cloned() else { break };
        // Exactly the keys locked: a key written meanwhile is not among
        // them, and its write comes after this batch.
        let listed: Vec<String> = (2..keys.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "DELETE FROM blobs WHERE tenant_id = $1 AND key IN ({}) RETURNING key, version, size",
            listed.join(", ")
        );
        let values: Vec<Value> =
            std::iter::once(tenant.into()).chain(keys.iter().map(|k| Value::from(k.clone()))).collect();
        let gone = txn.query_all_raw(statement(backend, &sql, values)).await?;
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
    Ok(deleted)
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
    let mut values: Vec<Value> = vec![tenant.into()];
    let mut keys =
        format!("SELECT key FROM blobs WHERE tenant_id = $1{}", Range::of(prefix).sql("key", &mut values));
    if let Some(after) = after {
        values.push(after.into());
        keys.push_str(&format!(" AND key > ${}", values.len()));
    }
    values.push(i64::try_from(BATCH).unwrap_or(i64::MAX).into());
    keys.push_str(&format!(" ORDER BY key LIMIT ${}", values.len()));
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            "SELECT k.key, pg_advisory_xact_lock(hashtextextended($1 || '/' || k.key, 7)) FROM ({keys}) k"
        ),
        _ => keys,
    };
    let rows = txn.writes().query_all_raw(statement(backend, &sql, values)).await?;
    Ok(rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<_, _>>()?)
}
