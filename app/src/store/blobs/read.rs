//! Reading a value: its head and first chunk in one statement (the whole
//! value, for most), then the rest a chunk at a time. The chunks of the
//! version read stay at least [`super::Timing::grace`] after it is
//! replaced, so a read that keeps within [`super::Timing::transfer`]
//! always finds them.

use bytes::Bytes;
use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Alias, Condition, Expr, ExprTrait, JoinType, Query},
};

use super::{
    BlobKey, Head,
    tables::{Column, Table},
};
use crate::{db::Db, error::Error};

/// A value found: its head and its first chunk (empty for an empty value).
#[derive(Debug)]
pub struct Opened {
    pub head: Head,
    pub first: Bytes,
}

/// The key's head and first chunk, read together, if it exists.
pub async fn open(db: &impl Db, blob: BlobKey<'_>) -> Result<Option<Opened>, Error> {
    let (b, c) = (Alias::new("b"), Alias::new("c"));
    let same = |column: Column| Expr::col((c.clone(), column)).equals((b.clone(), column));
    let first_chunk = Condition::all()
        .add(same(Column::TenantId))
        .add(same(Column::Key))
        .add(same(Column::Version))
        .add(Expr::col((c.clone(), Column::Seq)).eq(0));
    let select = Query::select()
        .columns([(b.clone(), Column::Version), (b.clone(), Column::Size)])
        .column((c.clone(), Column::Data))
        .from_as(Table::Blobs, b.clone())
        .join_as(JoinType::LeftJoin, Table::BlobChunks, c, first_chunk)
        .and_where(Expr::col((b.clone(), Column::TenantId)).eq(blob.tenant))
        .and_where(Expr::col((b, Column::Key)).eq(blob.key))
        .to_owned();
    let Some(row) = db.reads().query_one_raw(db.backend().build(&select)).await? else {
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
    let select = Query::select()
        .column(Column::Data)
        .from(Table::BlobChunks)
        .cond_where(blob.rows_of(version).add(Expr::col(Column::Seq).eq(seq)))
        .to_owned();
    let row = db.reads().query_one_raw(db.backend().build(&select)).await?;
    Ok(row
        .map(|row| row.try_get_by_index::<Vec<u8>>(0))
        .transpose()
        .map_err(|e: DbErr| Error::from(e))?
        .map(Bytes::from))
}
