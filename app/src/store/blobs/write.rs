//! Writing a value. One of a chunk or less arrives whole and is stored
//! with its switch, in one transaction. A larger one is an upload: listed
//! in `blob_garbage` first (so that a crash leaves nothing unreclaimed),
//! its chunks and index segments stored as the body arrives (each only
//! while that listing stands), then switched in by a transaction that
//! claims the listing. Either way the switch checks the precondition under
//! the key's lock and lets go of the version it replaces.

use std::{pin::Pin, time::Duration};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DbErr,
    sea_query::{Asterisk, Expr, ExprTrait, Func, OnConflict, Query},
};
use tokio::time::Instant;

use super::{
    BlobKey, CHUNK_BYTES, Head, Precondition, Timing,
    chunks::{Segments, Words, store, store_listed},
    drop_version, execute, list_garbage, lock, release, stale,
    tables::{Column, Table},
};
use crate::{
    db::{Conn, Db},
    error::Error,
    store::now,
};

/// What a write may store, and how long it may take.
#[derive(Clone, Copy, Debug)]
pub struct WriteLimits {
    /// Larger values are refused with 413.
    pub max_bytes: u64,
    /// How much of a text value is indexed for search.
    pub index_bytes: usize,
    pub timing: Timing,
}

/// Stores `body` under `blob`, if `precondition` holds when the write
/// completes; the new version. The body's own errors (stalls, resets) end
/// the write with nothing stored, as does a body that takes longer than
/// [`Timing::transfer`] (408).
pub async fn write<S>(
    db: &Conn,
    blob: BlobKey<'_>,
    precondition: &Precondition,
    limits: WriteLimits,
    body: S,
) -> Result<Head, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut incoming = Incoming {
        body: body.as_mut(),
        deadline: Instant::now() + limits.timing.transfer,
        limits,
        size: 0,
        words: Words::new(limits.index_bytes),
    };
    let mut pending = BytesMut::new();
    while pending.len() <= CHUNK_BYTES {
        let Some(piece) = incoming.next().await? else {
            let head = Head { version: fresh_version(), size: incoming.size() };
            let whole = Content::Whole { data: pending.freeze(), words: incoming.words.rest() };
            return switch(db, blob, head, precondition, limits.timing, whole).await;
        };
        pending.extend_from_slice(&piece);
    }
    let version = fresh_version();
    list_garbage(db, blob, version, limits.timing.grace_micros()).await?;
    let result = upload(db, blob, version, precondition, incoming, pending).await;
    if result.is_err() {
        abandon(db, blob, version).await;
    }
    result
}

/// The request body as it arrives: bounded in size and time, its words
/// read on the way.
struct Incoming<'a, S> {
    body: Pin<&'a mut S>,
    deadline: Instant,
    limits: WriteLimits,
    size: u64,
    words: Words,
}

impl<S: Stream<Item = Result<Bytes, Error>>> Incoming<'_, S> {
    async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        let Ok(piece) = tokio::time::timeout_at(self.deadline, self.body.next()).await else {
            return Err(too_slow(self.limits.timing.transfer));
        };
        let piece = piece.transpose()?;
        if let Some(piece) = &piece {
            self.size += piece.len() as u64;
            if self.size > self.limits.max_bytes {
                let max = usize::try_from(self.limits.max_bytes).unwrap_or(usize::MAX);
                return Err(Error::PayloadTooLarge(max));
            }
            self.words.feed(piece);
        }
        Ok(piece)
    }

    fn size(&self) -> i64 {
        i64::try_from(self.size).unwrap_or(i64::MAX)
    }

    fn check_deadline(&self) -> Result<(), Error> {
        if Instant::now() >= self.deadline {
            return Err(too_slow(self.limits.timing.transfer));
        }
        Ok(())
    }
}

fn too_slow(transfer: Duration) -> Error {
    Error::RequestTimeout(format!(
        "the value did not arrive within {} ms (storage.transfer_timeout_ms); nothing was stored",
        transfer.as_millis()
    ))
}

/// A version no other write of the same key picks: the clock in
/// microseconds with random low bits.
pub(super) fn fresh_version() -> i64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let random = i64::from(u16::from_le_bytes([bytes[0], bytes[1]])) & 0x3ff;
    (crate::store::version::first() << 10) | random
}

/// Stores the rest of an upload's chunks (the first are in `pending`),
/// then switches the key to it.
async fn upload<S: Stream<Item = Result<Bytes, Error>>>(
    db: &Conn,
    blob: BlobKey<'_>,
    version: i64,
    precondition: &Precondition,
    mut incoming: Incoming<'_, S>,
    mut pending: BytesMut,
) -> Result<Head, Error> {
    let mut seq = 0;
    let mut done = false;
    while !(done && pending.is_empty()) {
        // A chunk is stored once more bytes (or the end) have arrived, so
        // the last chunk, which carries the last segments, is known.
        while pending.len() <= CHUNK_BYTES && !done {
            match incoming.next().await? {
                Some(piece) => pending.extend_from_slice(&piece),
                None => done = true,
            }
        }
        let last = done && pending.len() <= CHUNK_BYTES;
        let data = pending.split_to(pending.len().min(CHUNK_BYTES)).freeze();
        let words = if last { incoming.words.rest() } else { incoming.words.ready() };
        incoming.check_deadline()?;
        if !store_listed(db, blob, version, seq, data, words).await? {
            return Err(given_up());
        }
        seq += 1;
    }
    let head = Head { version, size: incoming.size() };
    switch(db, blob, head, precondition, incoming.limits.timing, Content::Uploaded).await
}

fn given_up() -> Error {
    Error::Unavailable(
        "the upload's chunks are gone (it took too long, or a replica of an earlier release deleted the key \
         meanwhile); nothing was stored, write the value again"
            .into(),
    )
}

/// What a switch puts in place.
enum Content {
    /// A value of a chunk or less, stored here.
    Whole { data: Bytes, words: Segments },
    /// An upload's chunks, already stored and listed as garbage.
    Uploaded,
}

/// Points the key at `head` if `precondition` holds, under the key's lock,
/// and lets go of the version it replaces.
async fn switch(
    db: &Conn,
    blob: BlobKey<'_>,
    head: Head,
    precondition: &Precondition,
    timing: Timing,
    content: Content,
) -> Result<Head, Error> {
    let txn = db.begin().await?;
    lock(&txn, blob).await?;
    let mut previous = super::head(&txn, blob).await?;
    if !precondition.holds(previous.map(|h| h.version)) {
        return Err(stale());
    }
    match content {
        Content::Uploaded => {
            if execute(&txn, unlist(&txn, blob, head.version)).await? == 0 {
                return Err(given_up());
            }
            // Every chunk is there (a replica of the earlier release, during
            // a rolling upgrade, deletes all of a key's chunks).
            let count = Query::select()
                .expr(Func::count(Expr::col(Asterisk)))
                .from(Table::BlobChunks)
                .cond_where(blob.rows_of(head.version))
                .to_owned();
            let row = txn.query_one_raw(txn.backend().build(&count));
            let stored: i64 = row.await?.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
            if stored != i64::from(head.chunks()) {
                return Err(given_up());
            }
        }
        Content::Whole { data, words } if !data.is_empty() => {
            store(&txn, blob, head.version, 0, data, words, false).await?;
        }
        Content::Whole { .. } => {}
    }
    // An import's switch points keys at its values without their locks
    // (`staged`): when one did meanwhile, this write comes after it.
    for _ in 0..3 {
        if point(&txn, blob, head, previous.map(|h| h.version)).await? {
            if let Some(old) = previous {
                release(&txn, blob, old, timing).await?;
            }
            txn.commit().await?;
            return Ok(head);
        }
        previous = super::head(&txn, blob).await?;
        if !precondition.holds(previous.map(|h| h.version)) {
            return Err(stale());
        }
    }
    Err(Error::Unavailable("the key kept changing under the write; write it again".into()))
}

/// Points the key at `head`, if it points at `previous` (`None`: nowhere);
/// whether it did.
async fn point(txn: &impl Db, blob: BlobKey<'_>, head: Head, previous: Option<i64>) -> Result<bool, DbErr> {
    let backend = txn.backend();
    let mut on_conflict = OnConflict::columns([Column::TenantId, Column::Key]);
    on_conflict.update_columns([Column::Version, Column::Size, Column::UpdatedAt]);
    on_conflict.action_and_where(match previous {
        Some(version) => Expr::col((Table::Blobs, Column::Version)).eq(version),
        None => Expr::cust("FALSE"),
    });
    if backend == DatabaseBackend::Postgres {
        // `search` is the earlier index's column, written only by replicas
        // of the earlier version during a rolling upgrade.
        on_conflict.value(Column::Search, Expr::cust("NULL"));
    }
    let insert = Query::insert()
        .into_table(Table::Blobs)
        .columns([Column::TenantId, Column::Key, Column::Version, Column::Size, Column::UpdatedAt])
        .values(blob.values([head.version.into(), head.size.into(), now().into()]).into_iter().map(Expr::val))
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(on_conflict)
        .to_owned();
    Ok(execute(txn, backend.build(&insert)).await? == 1)
}

/// Removes what an upload that did not land stored, unless it was switched
/// in after all (its listing gone). Best effort: what stays is reclaimed
/// by the sweeper once the listing is due.
async fn abandon(db: &Conn, blob: BlobKey<'_>, version: i64) {
    let removed = async {
        let txn = db.begin().await?;
        if execute(&txn, unlist(&txn, blob, version)).await? > 0 {
            drop_version(&txn, blob, version).await?;
        }
        txn.commit().await
    };
    if let Err(err) = removed.await {
        tracing::warn!(error = %err, "could not remove the chunks of a failed blob write; the sweeper will");
    }
}

/// Takes `version` of the key off the garbage list.
fn unlist(db: &impl Db, blob: BlobKey<'_>, version: i64) -> sea_orm::Statement {
    db.backend()
        .build(&Query::delete().from_table(Table::BlobGarbage).cond_where(blob.rows_of(version)).to_owned())
}
