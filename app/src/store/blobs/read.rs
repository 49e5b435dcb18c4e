//! Reading a value: its head and first chunk in one statement (the whole
//! value, for most), then the rest a chunk at a time. The chunks of the
//! version read stay at least [`super::Timing::grace`] after it is
//! replaced, so a read that keeps within [`super::Timing::transfer`]
//! always finds them.

use bytes::Bytes;
use sea_orm::{ConnectionTrait, DbErr};

use super::{BlobKey, Head, statement};
use crate::{db::Db, error::Error};

/// A value found: its head and its first chunk (empty for an empty value).
#[derive(Debug)]
pub struct Opened {
    pub head: Head,
    pub first: Bytes,
}

/// The key's head and first chunk, read together, if it exists.
pub async fn open(db: &impl Db, blob: BlobKey<'_>) -> Result<Option<Opened>, Error> {
    let sql = "SELECT b.version, b.size, c.data FROM blobs b LEFT JOIN blob_chunks c \
               ON c.tenant_id = b.tenant_id AND c.key = b.key AND c.version = b.version AND c.seq = 0 \
               WHERE b.tenant_id = $1 AND b.key = $2";
    let Some(row) = db.reads().query_one_raw(statement(db.backend(), sql, blob.values([]))).await? else {
        return Ok(None);
    };
    let head = Head { version: row.try_get_by_index(0)?, size: row.try_get_by_index(1)? };
    let first = row.try_get_by_index::<Option<Vec<u8>>>(2)?.map(Bytes::from).unwrap_or_default();
    if head.size > 0 && first.is_empty() {
        tracing::error!(
            tenant = blob.tenant,
            key = blob.key,
            version = head.version,
            "a value without its chunks"
        );
        return Err(Error::Internal);
    }
    Ok(Some(Opened { head, first }))
}

/// Chunk `seq` of `version`; `None` if it is not there (a read that took
/// longer than the transfer bound, or a damaged value).
pub async fn chunk(db: &impl Db, blob: BlobKey<'_>, version: i64, seq: i32) -> Result<Option<Bytes>, Error> {
    let sql = "SELECT data FROM blob_chunks WHERE tenant_id = $1 AND key = $2 AND version = $3 AND seq = $4";
    let row = db
        .reads()
        .query_one_raw(statement(db.backend(), sql, blob.values([version.into(), seq.into()])))
        .await?;
    Ok(row
        .map(|row| row.try_get_by_index::<Vec<u8>>(0))
        .transpose()
        .map_err(|e: DbErr| Error::from(e))?
        .map(Bytes::from))
}
