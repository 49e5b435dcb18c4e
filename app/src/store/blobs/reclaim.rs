//! The sweeper's part for blobs: deletes the chunks and index segments of
//! the versions listed in `blob_garbage` once their time has come by the
//! database's clock (uploads given up or cut off by a crash, values
//! replaced or deleted), a bounded batch per short transaction.

use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Expr, ExprTrait, Query},
};

use super::{
    BlobKey, drop_version, read_head,
    tables::{Column, Table},
};
use crate::db::{Conn, Db, clock::now_micros};

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
    let listing = [Column::TenantId, Column::Key, Column::Version];
    let due = Expr::col(Column::ReclaimAfter).lte(now_micros(backend));
    let delete = crate::store::delete_due(Table::BlobGarbage, listing, due, Column::ReclaimAfter, BATCH)
        .returning(Query::returning().columns(listing))
        .to_owned();
    let due = txn.query_all_raw(backend.build(&delete)).await?;
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
