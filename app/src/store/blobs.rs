//! Blobs for the SDK's `Storage` protocol: opaque bytes under a key, kept
//! as chunks (see the migration for the layout) so that neither a write nor
//! a read ever holds a whole value in memory.
//!
//! A write stores its chunks under a fresh version as the body arrives, then
//! switches the key to that version in one short transaction that checks the
//! caller's precondition, updates the search index and drops the previous
//! version's chunks. Writes of one key are serialised only for that
//! transaction (an advisory lock on PostgreSQL, the write lock on SQLite),
//! never while a body is still arriving.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};

use super::{now, version};
use crate::{db::Conn, error::Error};

/// A value is stored in pieces of this size (the last one shorter).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Keys deleted per transaction by a prefix delete.
const DELETE_BATCH: u64 = 500;

/// Words of a search query that count; the rest are ignored.
const MAX_TERMS: usize = 32;

/// What a stored key currently holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub version: i64,
    pub size: i64,
}

/// What a write requires of the key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: the last writer wins.
    None,
    /// The key must exist (`If-Match: *`).
    Exists,
    /// The key must not exist (`If-None-Match: *`).
    Absent,
    /// The key must be at one of these versions (`If-Match: "…"`).
    OneOf(Vec<i64>),
    /// The key must not be at any of these versions (`If-None-Match: "…"`).
    NoneOf(Vec<i64>),
}

impl Precondition {
    fn holds(&self, current: Option<i64>) -> bool {
        match self {
            Self::None => true,
            Self::Exists => current.is_some(),
            Self::Absent => current.is_none(),
            Self::OneOf(versions) => current.is_some_and(|v| versions.contains(&v)),
            Self::NoneOf(versions) => current.is_none_or(|v| !versions.contains(&v)),
        }
    }
}

/// What a write may store.
#[derive(Clone, Copy, Debug)]
pub struct WriteLimits {
    /// Larger values are refused with 413.
    pub max_bytes: u64,
    /// How much of a text value is indexed for search.
    pub index_bytes: usize,
}

/// Which blob: the tenant and the normalised key.
#[derive(Clone, Copy, Debug)]
pub struct BlobKey<'a> {
    pub tenant: &'a str,
    pub key: &'a str,
}

fn stale() -> Error {
    Error::PreconditionFailed("the key's current state does not match `If-Match` / `If-None-Match`".into())
}

/// SQL written with `$1`-style parameters, as the backend wants it
/// (SQLite reads `?1` as "parameter 1").
fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    match backend {
        DatabaseBackend::Postgres => Statement::from_sql_and_values(backend, sql, values),
        _ => Statement::from_sql_and_values(backend, sql.replace('$', "?"), values),
    }
}

async fn execute(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
    let done = db.execute_raw(statement(db.get_database_backend(), sql, values)).await?;
    Ok(done.rows_affected())
}

fn key_values(blob: BlobKey<'_>) -> Vec<Value> {
    vec![blob.tenant.into(), blob.key.into()]
}

/// The key's current version and size, if it exists.
pub async fn head(db: &impl ConnectionTrait, blob: BlobKey<'_>) -> Result<Option<Head>, Error> {
    let sql = "SELECT version, size FROM blobs WHERE tenant_id = $1 AND key = $2";
    let row = db.query_one_raw(statement(db.get_database_backend(), sql, key_values(blob))).await?;
    row.map(|row| Ok(Head { version: row.try_get_by_index(0)?, size: row.try_get_by_index(1)? }))
        .transpose()
        .map_err(|e: DbErr| e.into())
}

/// Chunk `seq` of `version`; `None` once the version has been replaced or
/// deleted (a reader then stops short; its `Content-Length` tells the
/// client the value is incomplete).
pub async fn chunk(
    db: &impl ConnectionTrait,
    blob: BlobKey<'_>,
    version: i64,
    seq: i32,
) -> Result<Option<Bytes>, Error> {
    let sql = "SELECT data FROM blob_chunks WHERE tenant_id = $1 AND key = $2 AND version = $3 AND seq = $4";
    let mut values = key_values(blob);
    values.extend([version.into(), seq.into()]);
    let row = db.query_one_raw(statement(db.get_database_backend(), sql, values)).await?;
    Ok(row.map(|row| row.try_get_by_index::<Vec<u8>>(0)).transpose().map_err(Error::from)?.map(Bytes::from))
}

/// Stores `body` under `blob`, if `precondition` holds when the write
/// completes; the new version. The body's own errors (stalls, resets) end
/// the write with nothing stored.
pub async fn write<S>(
    db: &Conn,
    blob: BlobKey<'_>,
    precondition: Precondition,
    limits: WriteLimits,
    body: S,
) -> Result<Head, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send,
{
    // Refuse early what would be refused at the end, before the upload.
    if precondition != Precondition::None {
        let current = head(db, blob).await?.map(|h| h.version);
        if !precondition.holds(current) {
            crate::drain::discard(body, crate::drain::DRAIN_LIMIT).await;
            return Err(stale());
        }
    }
    let version = fresh_version();
    let result = store_and_switch(db, blob, version, &precondition, limits, body).await;
    if result.is_err() {
        // Best effort: the chunks of a write that did not land.
        let sql = "DELETE FROM blob_chunks WHERE tenant_id = $1 AND key = $2 AND version = $3";
        let mut values = key_values(blob);
        values.push(version.into());
        if let Err(err) = execute(db, sql, values).await {
            tracing::warn!(error = %err, "could not remove the chunks of a failed blob write");
        }
    }
    result
}

/// A version no other write of the same key picks: the clock in
/// microseconds with random low bits.
fn fresh_version() -> i64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let random = i64::from(u16::from_le_bytes([bytes[0], bytes[1]])) & 0x3ff;
    (version::first() << 10) | random
}

async fn store_and_switch<S>(
    db: &Conn,
    blob: BlobKey<'_>,
    version: i64,
    precondition: &Precondition,
    limits: WriteLimits,
    body: S,
) -> Result<Head, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send,
{
    let insert = "INSERT INTO blob_chunks (tenant_id, key, version, seq, data) VALUES ($1, $2, $3, $4, $5)";
    let mut body = std::pin::pin!(body);
    let mut pending = BytesMut::new();
    let mut indexed = Vec::new();
    let mut size: u64 = 0;
    let mut seq: i32 = 0;
    loop {
        let next = body.next().await.transpose()?;
        let done = next.is_none();
        if let Some(piece) = next {
            size += piece.len() as u64;
            if size > limits.max_bytes {
                return Err(Error::PayloadTooLarge(usize::try_from(limits.max_bytes).unwrap_or(usize::MAX)));
            }
            let room = limits.index_bytes.saturating_sub(indexed.len());
            indexed.extend_from_slice(&piece[..piece.len().min(room)]);
            pending.extend_from_slice(&piece);
        }
        while pending.len() >= CHUNK_BYTES || (done && !pending.is_empty()) {
            let data = pending.split_to(pending.len().min(CHUNK_BYTES));
            let mut values = key_values(blob);
            values.extend([version.into(), seq.into(), data.to_vec().into()]);
            execute(db, insert, values).await?;
            seq += 1;
        }
        if done {
            break;
        }
    }
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let text = search_text(indexed);
    let txn = db.begin().await?;
    let previous = lock_and_read(&txn, blob).await?;
    if !precondition.holds(previous) {
        return Err(stale());
    }
    let stored: i64 = {
        let sql = "SELECT COUNT(*) FROM blob_chunks WHERE tenant_id = $1 AND key = $2 AND version = $3";
        let mut values = key_values(blob);
        values.push(version.into());
        let row = txn.query_one_raw(statement(txn.get_database_backend(), sql, values)).await?;
        row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0)
    };
    if stored != i64::from(seq) {
        return Err(Error::Conflict(
            "the key was deleted while this value was being written; write it again".into(),
        ));
    }
    switch(&txn, blob, Head { version, size }, text).await?;
    if let Some(old) = previous {
        let sql = "DELETE FROM blob_chunks WHERE tenant_id = $1 AND key = $2 AND version = $3";
        let mut values = key_values(blob);
        values.push(old.into());
        execute(&txn, sql, values).await?;
    }
    txn.commit().await?;
    Ok(Head { version, size })
}

/// Takes the key's write lock for this transaction and reads its version.
async fn lock_and_read(txn: &impl ConnectionTrait, blob: BlobKey<'_>) -> Result<Option<i64>, Error> {
    let lock = match txn.get_database_backend() {
        DatabaseBackend::Postgres => "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))",
        // Any write takes SQLite's one write lock at once, even one that
        // changes nothing, so the read below cannot go stale.
        _ => "UPDATE blobs SET version = version WHERE tenant_id = $1 AND key = $2",
    };
    let statement = statement(txn.get_database_backend(), lock, key_values(blob));
    txn.query_all_raw(statement).await?;
    Ok(head(txn, blob).await?.map(|h| h.version))
}

/// Points the key at `head` and indexes `text`.
async fn switch(
    txn: &impl ConnectionTrait,
    blob: BlobKey<'_>,
    head: Head,
    text: Option<String>,
) -> Result<(), Error> {
    let mut values = key_values(blob);
    values.extend([head.version.into(), head.size.into(), now().into()]);
    match txn.get_database_backend() {
        DatabaseBackend::Postgres => {
            values.push(text.into());
            let sql = "INSERT INTO blobs (tenant_id, key, version, size, updated_at, search) \
                       VALUES ($1, $2, $3, $4, $5, to_tsvector('simple', $6)) \
                       ON CONFLICT (tenant_id, key) DO UPDATE SET version = excluded.version, \
                       size = excluded.size, updated_at = excluded.updated_at, search = excluded.search";
            execute(txn, sql, values).await?;
        }
        _ => {
            unindex_sqlite(txn, blob).await?;
            let sql = "INSERT INTO blobs (tenant_id, key, version, size, updated_at) \
                       VALUES ($1, $2, $3, $4, $5) \
                       ON CONFLICT (tenant_id, key) DO UPDATE SET version = excluded.version, \
                       size = excluded.size, updated_at = excluded.updated_at";
            execute(txn, sql, values).await?;
            if let Some(text) = text {
                let sql = "INSERT INTO blob_search (rowid, body) \
                           SELECT rowid, $3 FROM blobs WHERE tenant_id = $1 AND key = $2";
                let mut values = key_values(blob);
                values.push(text.into());
                execute(txn, sql, values).await?;
            }
        }
    }
    Ok(())
}

/// Drops the SQLite search entry of `blob`, if any.
async fn unindex_sqlite(txn: &impl ConnectionTrait, blob: BlobKey<'_>) -> Result<(), DbErr> {
    let sql = "DELETE FROM blob_search WHERE rowid IN \
               (SELECT rowid FROM blobs WHERE tenant_id = $1 AND key = $2)";
    execute(txn, sql, key_values(blob)).await.map(drop)
}

/// The indexable text of a value's first bytes: UTF-8 without NUL (a
/// character cut at the end is dropped), else nothing.
fn search_text(mut first: Vec<u8>) -> Option<String> {
    if first.is_empty() || first.contains(&0) {
        return None;
    }
    if let Err(err) = std::str::from_utf8(&first) {
        if err.error_len().is_some() {
            return None;
        }
        first.truncate(err.valid_up_to());
    }
    String::from_utf8(first).ok()
}

/// Deletes a key (a no-op when it does not exist), its chunks included.
pub async fn delete(db: &Conn, blob: BlobKey<'_>) -> Result<(), Error> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::Sqlite {
        unindex_sqlite(&txn, blob).await?;
    }
    execute(&txn, "DELETE FROM blobs WHERE tenant_id = $1 AND key = $2", key_values(blob)).await?;
    execute(&txn, "DELETE FROM blob_chunks WHERE tenant_id = $1 AND key = $2", key_values(blob)).await?;
    txn.commit().await?;
    Ok(())
}

/// The keys that start with `prefix`, as a range of keys: in byte order
/// (UTF-8 sorts like its code points), `[prefix, bound)`, where `bound`
/// is the first string after every key with the prefix.
struct Range {
    from: String,
    to: Option<String>,
}

impl Range {
    fn of(prefix: &str) -> Self {
        let mut to: Vec<char> = prefix.chars().collect();
        let to = loop {
            let Some(last) = to.pop() else { break None };
            let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
            if let Some(next) = next {
                to.push(next);
                break Some(to.into_iter().collect());
            }
        };
        Self { from: prefix.to_owned(), to }
    }

    /// `AND key >= $n AND key < $n+1`, its values appended to `values`.
    fn sql(&self, column: &str, values: &mut Vec<Value>) -> String {
        values.push(self.from.clone().into());
        let mut sql = format!(" AND {column} >= ${}", values.len());
        if let Some(to) = &self.to {
            values.push(to.clone().into());
            sql.push_str(&format!(" AND {column} < ${}", values.len()));
        }
        sql
    }
}

/// One page of keys: up to `limit` keys with `prefix` after `start_after`,
/// ascending, and the key to continue after when there are more.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    prefix: &str,
    start_after: Option<&str>,
    limit: u64,
) -> Result<(Vec<String>, Option<String>), Error> {
    let mut values: Vec<Value> = vec![tenant.into()];
    let mut sql = String::from("SELECT key FROM blobs WHERE tenant_id = $1");
    sql.push_str(&Range::of(prefix).sql("key", &mut values));
    if let Some(after) = start_after {
        values.push(after.into());
        sql.push_str(&format!(" AND key > ${}", values.len()));
    }
    values.push(i64::try_from(limit + 1).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(" ORDER BY key LIMIT ${}", values.len()));
    let rows = db.query_all_raw(statement(db.get_database_backend(), &sql, values)).await?;
    let mut keys = rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<Vec<_>, _>>()?;
    let more = keys.len() as u64 > limit;
    keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = if more { keys.last().cloned() } else { None };
    Ok((keys, next))
}

/// Deletes every key with `prefix` (non-empty), a batch of keys per short
/// transaction; how many keys were deleted.
pub async fn delete_prefix(db: &Conn, tenant: &str, prefix: &str) -> Result<u64, Error> {
    let mut deleted = 0;
    let mut after: Option<String> = None;
    loop {
        let (keys, more) = list(db, tenant, prefix, after.as_deref(), DELETE_BATCH).await?;
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else { break };
        let txn = db.begin().await?;
        let sqlite = txn.get_database_backend() == DatabaseBackend::Sqlite;
        let span = |table: &str, column: &str| {
            format!("{table} WHERE tenant_id = $1 AND {column} >= $2 AND {column} <= $3")
        };
        let values = || -> Vec<Value> { vec![tenant.into(), first.clone().into(), last.clone().into()] };
        if sqlite {
            let sql = format!(
                "DELETE FROM blob_search WHERE rowid IN (SELECT rowid FROM {})",
                span("blobs", "key")
            );
            execute(&txn, &sql, values()).await?;
        }
        // Between two keys of one listing there is no key without the
        // prefix: the prefix's keys are one contiguous range.
        deleted += execute(&txn, &format!("DELETE FROM {}", span("blobs", "key")), values()).await?;
        execute(&txn, &format!("DELETE FROM {}", span("blob_chunks", "key")), values()).await?;
        txn.commit().await?;
        if more.is_none() {
            break;
        }
        after = Some(last.clone());
    }
    Ok(deleted)
}

/// A search hit: a key and its relevance, higher is better.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub key: String,
    pub score: f64,
}

/// The words of a query: runs of letters and digits, lower-cased, each
/// once, at most [`MAX_TERMS`].
pub fn terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

/// The tenant's keys with `prefix` whose indexed text contains any of the
/// query's words, best first (ties by key); at most `limit`.
pub async fn search(
    db: &impl ConnectionTrait,
    tenant: &str,
    query: &str,
    prefix: &str,
    limit: u64,
) -> Result<Vec<Hit>, Error> {
    let terms = terms(query);
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
    let mut values: Vec<Value> = vec![tenant.into()];
    let sql = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            // `websearch_to_tsquery` never fails on its input; quoted words
            // joined by `or` match any of them.
            values.push(quoted.join(" or ").into());
            let range = Range::of(prefix).sql("key", &mut values);
            values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
            format!(
                "SELECT key, ts_rank(search, q)::float8 AS score \
                 FROM blobs, websearch_to_tsquery('simple', $2) AS q \
                 WHERE tenant_id = $1 AND search @@ q{range} ORDER BY score DESC, key LIMIT ${}",
                values.len()
            )
        }
        _ => {
            values.push(quoted.join(" OR ").into());
            let range = Range::of(prefix).sql("b.key", &mut values);
            values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
            format!(
                "SELECT b.key, -bm25(blob_search) AS score \
                 FROM blob_search JOIN blobs b ON b.rowid = blob_search.rowid \
                 WHERE blob_search MATCH $2 AND b.tenant_id = $1{range} \
                 ORDER BY score DESC, b.key LIMIT ${}",
                values.len()
            )
        }
    };
    let rows = db.query_all_raw(statement(db.get_database_backend(), &sql, values)).await?;
    rows.iter()
        .map(|r| Ok(Hit { key: r.try_get_by_index(0)?, score: r.try_get_by_index(1)? }))
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_end_after_the_last_key_with_the_prefix() {
        assert_eq!(Range::of("a/").to.as_deref(), Some("a0"));
        assert_eq!(Range::of("").to, None);
        assert_eq!(Range::of("x\u{10FFFF}").to.as_deref(), Some("y"));
        assert_eq!(Range::of("\u{D7FF}").to.as_deref(), Some("\u{E000}"));
        assert_eq!(Range::of("\u{10FFFF}").to, None);
    }

    #[test]
    fn search_text_is_utf8_without_nul() {
        assert_eq!(search_text(b"hello".to_vec()).as_deref(), Some("hello"));
        assert_eq!(search_text("h\u{e9}".as_bytes()[..2].to_vec()).as_deref(), Some("h"));
        assert_eq!(search_text(vec![0xff, b'a']), None);
        assert_eq!(search_text(b"a\0b".to_vec()), None);
        assert_eq!(search_text(Vec::new()), None);
    }

    #[test]
    fn query_terms_are_lowercase_words_once() {
        assert_eq!(terms("Hello, hello WORLD! o'neil"), ["hello", "world", "o", "neil"]);
        assert!(terms(" -- ").is_empty());
        assert_eq!(terms(&"w ".repeat(100)).len(), 1);
    }
}
