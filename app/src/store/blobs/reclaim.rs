//! The sweeper's part for blobs: deletes the chunks and index segments of
//! the versions listed in `blob_garbage` once their time has come by the
//! database's clock (uploads given up or cut off by a crash, values
//! replaced or deleted), a bounded batch per short transaction.

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr};

use super::{BlobKey, database_now, drop_version, read_head, statement};
use crate::db::{Conn, Db};

/// Listed versions reclaimed per transaction.
pub const BATCH: u64 = 16;

/// What one transaction reclaimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Versions whose listing came due.
    pub versions: u64,
    /// The bytes of their chunks.
    pub bytes: u64,
}

/// Reclaims up to [`BATCH`] versions that are due. A version the key
/// points at after all (a replica of an earlier release switched it in)
/// keeps its chunks. Replicas reclaiming at once skip each other's rows on
/// PostgreSQL (`FOR UPDATE SKIP LOCKED`); an upload storing a chunk holds
/// its listing, so it is never reclaimed under it.
pub async fn reclaim(db: &Conn) -> Result<Reclaimed, DbErr> {
    let txn = db.begin().await?;
    let backend = txn.backend();
    let skip_locked = if backend == DatabaseBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "DELETE FROM blob_garbage WHERE (tenant_id, key, version) IN (SELECT tenant_id, key, version \
         FROM blob_garbage WHERE reclaim_after <= {} ORDER BY reclaim_after LIMIT $1{skip_locked}) \
         RETURNING tenant_id, key, version",
        database_now(backend)
    );
    let batch = i64::try_from(BATCH).unwrap_or(i64::MAX);
    let due = txn.query_all_raw(statement(backend, &sql, vec![batch.into()])).await?;
    let mut reclaimed = Reclaimed::default();
    for row in due {
        let (tenant, key): (String, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let version: i64 = row.try_get_by_index(2)?;
        let blob = BlobKey { tenant: &tenant, key: &key };
        reclaimed.versions += 1;
        if read_head(&txn, blob).await?.is_some_and(|h| h.version == version) {
            continue;
        }
        reclaimed.bytes += drop_version(&txn, blob, version).await?;
    }
    txn.commit().await?;
    Ok(reclaimed)
}
