//! A value's chunks as they are stored: each with the index segments cut
//! from the value so far ([`Words`]), in one statement on PostgreSQL and
//! in one transaction on SQLite, each engine in its own SQL.

use bytes::Bytes;
use entity::search_text::{self, Indexer};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr};

use super::{
    BlobKey, execute,
    tables::{postgres, sqlite},
};
use crate::{
    db::{Conn, Db},
    error::Error,
};

/// A value's index segments, read from its first `index_bytes`.
pub(super) struct Words {
    indexer: Option<Indexer>,
    room: usize,
    next_seq: i32,
}

/// Index segments to store, numbered from `first`.
pub(super) struct Segments {
    first: i32,
    words: Vec<String>,
}

impl Words {
    pub(super) fn new(index_bytes: usize) -> Self {
        Self { indexer: (index_bytes > 0).then(Indexer::new), room: index_bytes, next_seq: 0 }
    }

    pub(super) fn feed(&mut self, piece: &[u8]) {
        if let Some(indexer) = &mut self.indexer {
            let taken = piece.len().min(self.room);
            indexer.feed(&piece[..taken]);
            self.room -= taken;
        }
    }

    /// The segments filled so far.
    pub(super) fn ready(&mut self) -> Segments {
        let words = self.indexer.as_mut().map(Indexer::take_segments).unwrap_or_default();
        self.numbered(words)
    }

    /// Every segment left, the value having ended.
    pub(super) fn rest(&mut self) -> Segments {
        let words = self.indexer.take().map(Indexer::finish).unwrap_or_default();
        self.numbered(words)
    }

    fn numbered(&mut self, words: Vec<String>) -> Segments {
        let first = self.next_seq;
        self.next_seq += i32::try_from(words.len()).unwrap_or(i32::MAX);
        Segments { first, words }
    }
}

/// Stores chunk `seq` of an upload while its garbage listing stands (it
/// goes once the upload is given up); whether it did.
pub(super) async fn store_listed(
    db: &Conn,
    blob: BlobKey<'_>,
    version: i64,
    seq: i32,
    data: Bytes,
    words: Segments,
) -> Result<bool, Error> {
    if db.backend() == DatabaseBackend::Postgres {
        return Ok(store(db, blob, version, seq, data, words, true).await?);
    }
    let txn = db.begin().await?;
    let stored = store(&txn, blob, version, seq, data, words, true).await?;
    txn.commit().await?;
    Ok(stored)
}

/// Stores one chunk of `version` and index segments with it (on SQLite,
/// within the caller's transaction); with `listed`, only while the
/// version's garbage listing stands, which it holds (`FOR KEY SHARE`) so
/// the sweeper cannot take it meanwhile. Whether the chunk was stored.
pub(super) async fn store(
    db: &impl Db,
    blob: BlobKey<'_>,
    version: i64,
    seq: i32,
    data: Bytes,
    words: Segments,
    listed: bool,
) -> Result<bool, DbErr> {
    let backend = db.backend();
    let chunk = blob.values([version.into(), seq.into(), Vec::from(data).into()]);
    match backend {
        DatabaseBackend::Postgres => {
            let guard = if listed {
                "WHERE EXISTS (SELECT 1 FROM blob_garbage WHERE tenant_id = $1 AND key = $2 \
                 AND version = $3 FOR KEY SHARE)"
            } else {
                ""
            };
            let sql = format!(
                "WITH chunk AS (INSERT INTO blob_chunks (tenant_id, key, version, seq, data) \
                 SELECT $1, $2, $3, $4, $5 {guard} RETURNING seq), \
                 words AS (INSERT INTO blob_text (tenant_id, key, version, seq, words) \
                 SELECT $1, $2, $3, $6 + s.n - 1, CAST(s.t AS tsvector) \
                 FROM chunk, unnest(string_to_array($7, E'\\n')) WITH ORDINALITY AS s(t, n)) \
                 SELECT count(*) FROM chunk"
            );
            let prefix = search_text::tenant_prefix(blob.tenant);
            let mut literals: Option<String> = None;
            for segment in words.words {
                let literal = super::search::tsvector(&prefix, &segment);
                match &mut literals {
                    Some(all) => {
                        all.push('\n');
                        all.push_str(&literal);
                    }
                    None => literals = Some(literal),
                }
            }
            let mut values = chunk;
            values.extend([words.first.into(), literals.into()]);
            let row = db.writes().query_one_raw(postgres(&sql, values)).await?;
            Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) > 0)
        }
        _ => {
            let guard = if listed {
                "WHERE EXISTS (SELECT 1 FROM blob_garbage WHERE tenant_id = ?1 AND key = ?2 AND version = ?3)"
            } else {
                ""
            };
            let sql = format!(
                "INSERT INTO blob_chunks (tenant_id, key, version, seq, data) SELECT ?1, ?2, ?3, ?4, ?5 {guard}"
            );
            if execute(db, sqlite(&sql, chunk)).await? == 0 {
                return Ok(false);
            }
            let prefix = search_text::tenant_prefix(blob.tenant);
            for (n, segment) in (words.first..).zip(words.words) {
                let row = blob.values([version.into(), n.into()]);
                let sql = "INSERT INTO blob_text (tenant_id, key, version, seq) VALUES (?1, ?2, ?3, ?4)";
                execute(db, sqlite(sql, row.clone())).await?;
                let sql = "INSERT INTO blob_words (rowid, words) SELECT id, ?5 FROM blob_text \
                           WHERE tenant_id = ?1 AND key = ?2 AND version = ?3 AND seq = ?4";
                let mut values = row;
                values.push(search_text::tenant_terms(&prefix, &segment).into());
                execute(db, sqlite(sql, values)).await?;
            }
            Ok(true)
        }
    }
}
