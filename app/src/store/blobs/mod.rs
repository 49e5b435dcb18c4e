//! Blobs for the SDK's `Storage` protocol: opaque bytes under a key, kept
//! as chunks (see the migrations for the layout) so that neither a write
//! nor a read ever holds a whole value in memory.
//!
//! Every change of a key (a write's switch, a delete) is one short
//! transaction holding the key's lock (an advisory lock on PostgreSQL, the
//! one write lock on SQLite), so writes and deletes of a key take effect
//! one after another, as if sent in that order. An import's switch makes
//! only new keys, under its session's prefix lock rather than theirs
//! ([`Staged`]); a write that finds its key made meanwhile goes after it.
//! A value's chunks are never
//! deleted under a reader: one of a single chunk is read whole in one
//! statement, so it goes with the change that replaces it; a larger one is
//! read chunk by chunk within [`Timing::transfer`], so it is only listed in
//! `blob_garbage` and the sweeper deletes it [`Timing::grace`] later
//! ([`reclaim`]). A write larger than a chunk stores its chunks before its
//! switch ([`write`]), listed as garbage until the switch claims them, so a
//! crash mid-upload leaves nothing that is not reclaimed.

mod chunks;
mod delete;
mod read;
pub mod reclaim;
mod search;
mod staged;
pub(super) mod tables;
mod write;

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DbErr, Statement, Value,
    sea_query::{
        Alias, Condition, Expr, ExprTrait, Func, InsertStatement, IntoColumnRef, OnConflict, Order, Query,
    },
};

use self::tables::{Column, Table, postgres, sqlite};
pub use self::{
    delete::{delete, delete_idle_prefix, delete_prefix},
    read::{Opened, chunk, open},
    search::{Search, search},
    staged::Staged,
    write::{WriteLimits, write},
};
use crate::{
    db::{Db, clock::now_micros},
    error::Error,
};

/// A value is stored in pieces of this size (the last one shorter).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// The longest key, in bytes of UTF-8.
pub const KEY_MAX_BYTES: usize = 1024;

/// What a stored key currently holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub version: i64,
    pub size: i64,
}

impl Head {
    /// How many chunks the value has.
    pub fn chunks(&self) -> i32 {
        let size = u64::try_from(self.size).unwrap_or(0);
        i32::try_from(size.div_ceil(CHUNK_BYTES as u64)).unwrap_or(i32::MAX)
    }

    /// Whether the value is read whole in one statement (one chunk at most).
    fn read_at_once(&self) -> bool {
        self.chunks() <= 1
    }
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
    /// Whether the precondition holds for a key at `current` (`None`: absent).
    pub fn holds(&self, current: Option<i64>) -> bool {
        match self {
            Self::None => true,
            Self::Exists => current.is_some(),
            Self::Absent => current.is_none(),
            Self::OneOf(versions) => current.is_some_and(|v| versions.contains(&v)),
            Self::NoneOf(versions) => current.is_none_or(|v| !versions.contains(&v)),
        }
    }
}

/// The refusal of a write whose precondition does not hold.
pub fn stale() -> Error {
    Error::PreconditionFailed("the key's current state does not match `If-Match` / `If-None-Match`".into())
}

/// How long transfers may take, and so how long unused chunks are kept.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The longest a value's upload or download may take.
    pub transfer: Duration,
    /// How long after a value is replaced (or an upload starts) its chunks
    /// are kept: longer than any transfer, statements included.
    pub grace: Duration,
}

impl Timing {
    /// The timing `config` sets: transfers bounded by
    /// `storage.transfer_timeout_ms`, chunks kept for that plus what the
    /// last statement may take (waiting for a connection, then running),
    /// plus a second.
    pub fn of(config: &crate::config::Config) -> Self {
        let transfer = Duration::from_millis(config.storage.transfer_timeout_ms);
        let db = &config.database;
        let last_statement =
            Duration::from_millis(db.acquire_timeout_ms.saturating_add(db.statement_timeout_ms));
        Self { transfer, grace: transfer + last_statement + Duration::from_secs(1) }
    }

    fn grace_micros(&self) -> i64 {
        i64::try_from(self.grace.as_micros()).unwrap_or(i64::MAX)
    }
}

/// Which blob: the tenant and the normalised key.
#[derive(Clone, Copy, Debug)]
pub struct BlobKey<'a> {
    pub tenant: &'a str,
    pub key: &'a str,
}

impl BlobKey<'_> {
    /// The key's values, then `more`: placeholders 1, 2, … of a statement
    /// written in an engine's own SQL.
    fn values(&self, more: impl IntoIterator<Item = Value>) -> Vec<Value> {
        let mut values = vec![self.tenant.into(), self.key.into()];
        values.extend(more);
        values
    }
}

/// Runs a write; how many rows it changed.
async fn execute(db: &impl Db, statement: Statement) -> Result<u64, DbErr> {
    Ok(db.writes().execute_raw(statement).await?.rows_affected())
}

/// The key's current version and size, if it exists.
pub async fn head(db: &impl Db, blob: BlobKey<'_>) -> Result<Option<Head>, Error> {
    Ok(read_head(db, blob).await?)
}

async fn read_head(db: &impl Db, blob: BlobKey<'_>) -> Result<Option<Head>, DbErr> {
    let select = Query::select()
        .columns([Column::Version, Column::Size])
        .from(Table::Blobs)
        .cond_where(blob.rows())
        .to_owned();
    let row = db.reads().query_one_raw(db.backend().build(&select)).await?;
    row.map(|row| Ok(Head { version: row.try_get_by_index(0)?, size: row.try_get_by_index(1)? })).transpose()
}

/// Takes the key's lock for the rest of this transaction. On SQLite the
/// transaction already holds the one write lock (it began `IMMEDIATE`).
async fn lock(txn: &impl Db, blob: BlobKey<'_>) -> Result<(), DbErr> {
    if txn.backend() == DatabaseBackend::Postgres {
        let sql = "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))";
        txn.writes().query_all_raw(postgres(sql, blob.values([]))).await?;
    }
    Ok(())
}

/// Deletes the chunks and index segments of `version` of a key; how many
/// bytes its chunks held.
async fn drop_version(db: &impl Db, blob: BlobKey<'_>, version: i64) -> Result<u64, DbErr> {
    let backend = db.backend();
    let values = || blob.values([version.into()]);
    let sizes = match backend {
        DatabaseBackend::Postgres => {
            let sql = "WITH words AS (DELETE FROM blob_text WHERE tenant_id = $1 AND key = $2 AND version = $3) \
                       DELETE FROM blob_chunks WHERE tenant_id = $1 AND key = $2 AND version = $3 \
                       RETURNING octet_length(data)::bigint";
            db.writes().query_all_raw(postgres(sql, values())).await?
        }
        _ => {
            let rows = "SELECT id FROM blob_text WHERE tenant_id = ?1 AND key = ?2 AND version = ?3";
            execute(db, sqlite(&format!("DELETE FROM blob_words WHERE rowid IN ({rows})"), values())).await?;
            let sql = "DELETE FROM blob_text WHERE tenant_id = ?1 AND key = ?2 AND version = ?3";
            execute(db, sqlite(sql, values())).await?;
            let sql = "DELETE FROM blob_chunks WHERE tenant_id = ?1 AND key = ?2 AND version = ?3 \
                       RETURNING length(data)";
            db.writes().query_all_raw(sqlite(sql, values())).await?
        }
    };
    sizes
        .iter()
        .try_fold(0, |bytes, row| Ok(bytes + u64::try_from(row.try_get_by_index::<i64>(0)?).unwrap_or(0)))
}

/// Lists `version` of a key to be reclaimed once `grace` has passed (or
/// later, if it is listed already to go later).
async fn list_garbage(
    db: &impl Db,
    blob: BlobKey<'_>,
    version: i64,
    grace_micros: i64,
) -> Result<u64, DbErr> {
    let excluded = Alias::new("excluded");
    let later = Func::greatest([
        Expr::col((Table::BlobGarbage, Column::ReclaimAfter)),
        Expr::col((excluded, Column::ReclaimAfter)),
    ]);
    let on_conflict = garbage_listing().value(Column::ReclaimAfter, later).to_owned();
    let insert = listing(db.backend(), blob, version, grace_micros)?.on_conflict(on_conflict).to_owned();
    execute(db, db.backend().build(&insert)).await
}

/// The insert of a listing of `version` of a key, due `after_micros` from now.
fn listing(
    backend: DatabaseBackend,
    blob: BlobKey<'_>,
    version: i64,
    after_micros: i64,
) -> Result<InsertStatement, DbErr> {
    let mut insert = Query::insert();
    insert
        .into_table(Table::BlobGarbage)
        .columns([Column::TenantId, Column::Key, Column::Version, Column::ReclaimAfter])
        .values([
            Expr::val(blob.tenant),
            Expr::val(blob.key),
            Expr::val(version),
            now_micros(backend).add(after_micros),
        ])
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(insert)
}

/// A conflict with a listing already made (its key and version).
fn garbage_listing() -> OnConflict {
    OnConflict::columns([Column::TenantId, Column::Key, Column::Version])
}

/// Lets go of a version the key no longer points at, within the
/// transaction that changed the key: a value read in one statement goes
/// at once, a larger one after the grace period (a read may be streaming
/// it).
async fn release(txn: &impl Db, blob: BlobKey<'_>, old: Head, timing: Timing) -> Result<(), DbErr> {
    if old.read_at_once() {
        drop_version(txn, blob, old.version).await?;
    } else {
        list_garbage(txn, blob, old.version, timing.grace_micros()).await?;
    }
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

    /// `column` within the range.
    fn condition(&self, column: impl IntoColumnRef + Copy) -> Condition {
        let within = Condition::all().add(Expr::col(column).gte(self.from.as_str()));
        match &self.to {
            Some(to) => within.add(Expr::col(column).lt(to.as_str())),
            None => within,
        }
    }

    /// ` AND column >= ·n AND column < ·n+1` for a statement in an engine's
    /// own SQL whose placeholders are `mark` (`$` or `?`) and a number; the
    /// values are appended to `values`.
    fn sql(&self, column: &str, values: &mut Vec<Value>, mark: char) -> String {
        values.push(self.from.clone().into());
        let mut sql = format!(" AND {column} >= {mark}{}", values.len());
        if let Some(to) = &self.to {
            values.push(to.clone().into());
            sql.push_str(&format!(" AND {column} < {mark}{}", values.len()));
        }
        sql
    }
}

/// One page of keys: up to `limit` keys with `prefix` after `start_after`,
/// ascending, and the key to continue after when there are more.
pub async fn list(
    db: &impl Db,
    tenant: &str,
    prefix: &str,
    start_after: Option<&str>,
    limit: u64,
) -> Result<(Vec<String>, Option<String>), Error> {
    let rows =
        db.reads().query_all_raw(db.backend().build(&keys(tenant, prefix, start_after, limit + 1))).await?;
    let mut keys = rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect::<Result<Vec<_>, _>>()?;
    let more = keys.len() as u64 > limit;
    keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = if more { keys.last().cloned() } else { None };
    Ok((keys, next))
}

/// Up to `limit` keys with `prefix` after `after`, ascending, with what
/// each holds.
pub async fn heads(
    db: &impl Db,
    tenant: &str,
    prefix: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<(String, Head)>, Error> {
    let select = keys(tenant, prefix, after, limit).columns([Column::Version, Column::Size]).to_owned();
    let rows = db.reads().query_all_raw(db.backend().build(&select)).await?;
    let heads = rows.iter().map(|row| {
        let head = Head { version: row.try_get_by_index(1)?, size: row.try_get_by_index(2)? };
        Ok((row.try_get_by_index(0)?, head))
    });
    Ok(heads.collect::<Result<_, DbErr>>()?)
}

/// `SELECT key FROM blobs`: up to `limit` of the tenant's keys with
/// `prefix` after `after`, ascending.
fn keys(tenant: &str, prefix: &str, after: Option<&str>, limit: u64) -> sea_orm::sea_query::SelectStatement {
    let mut select = Query::select();
    select
        .column(Column::Key)
        .from(Table::Blobs)
        .and_where(Expr::col(Column::TenantId).eq(tenant))
        .cond_where(Range::of(prefix).condition(Column::Key));
    if let Some(after) = after {
        select.and_where(Expr::col(Column::Key).gt(after));
    }
    select.order_by(Column::Key, Order::Asc).limit(limit);
    select
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
    fn values_of_one_chunk_are_read_at_once() {
        let at = |size: usize| Head { version: 1, size: size as i64 };
        assert_eq!((at(0).chunks(), at(1).chunks(), at(CHUNK_BYTES).chunks()), (0, 1, 1));
        assert_eq!(at(CHUNK_BYTES + 1).chunks(), 2);
        assert!(at(CHUNK_BYTES).read_at_once() && !at(CHUNK_BYTES + 1).read_at_once());
    }
}
