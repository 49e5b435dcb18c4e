//! Values an import (or a fork) stages: each stored as an upload is, under its final
//! key and one version for them all (listed in `blob_garbage`, its chunks
//! and index segments stored as they arrive), unseen until the import's
//! switch points the keys at that version, one statement for them all.
//! What is given up (or cut off by a crash) is reclaimed by the sweeper
//! like any upload.

use bytes::BytesMut;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};

use super::{
    BlobKey, CHUNK_BYTES, KEY_MAX_BYTES, Range, Timing,
    chunks::{Words, store_listed},
    drop_version, execute, garbage_listing, listing, lock,
    tables::{postgres, sqlite},
};
use crate::{
    db::{Conn, Db, Txn},
    error::Error,
    store::now,
};

/// The values of one import, in the importer's tenant (so their index
/// segments are that tenant's), under its session's prefix.
pub struct Staged {
    db: Conn,
    tenant: String,
    /// `session/<id>/`, once the document has named its session.
    prefix: Option<String>,
    version: i64,
    index_bytes: usize,
    /// How long after it is listed a value is kept if never switched in:
    /// past the longest an import may take, then as long as any upload.
    keep_micros: i64,
    /// Keys staged (each once), and the bytes of their values.
    count: u64,
    bytes: u64,
    current: Option<Current>,
    settled: bool,
}

/// The value being staged.
struct Current {
    key: String,
    pending: BytesMut,
    seq: i32,
    words: Words,
}

impl Staged {
    /// Stages values of `tenant` for an import that may take up to
    /// `timing.transfer`, indexing the first `index_bytes` of each.
    pub fn new(db: &Conn, tenant: &str, index_bytes: usize, timing: Timing) -> Self {
        let transfer = i64::try_from(timing.transfer.as_micros()).unwrap_or(i64::MAX);
        Self {
            db: db.clone(),
            tenant: tenant.to_owned(),
            prefix: None,
            version: super::write::fresh_version(),
            index_bytes,
            keep_micros: transfer.saturating_add(timing.grace_micros()),
            count: 0,
            bytes: 0,
            current: None,
            settled: false,
        }
    }

    /// The values to come are under `prefix` (a session's).
    pub fn under(&mut self, prefix: String) {
        self.prefix = Some(prefix);
    }

    /// How many values are staged.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Starts the value of `key` (below the session's prefix), replacing
    /// one staged before under it.
    pub async fn begin(&mut self, key: &str) -> Result<(), Error> {
        self.end().await?;
        let Some(prefix) = &self.prefix else { return Err(Error::Internal) };
        let full = format!("{prefix}{key}");
        if full.len() > KEY_MAX_BYTES {
            return Err(Error::Validation(format!(
                "`blobs`: a key under `{prefix}` is longer than {KEY_MAX_BYTES} bytes"
            )));
        }
        let blob = BlobKey { tenant: &self.tenant, key: &full };
        let listed = listing(self.db.backend(), blob, self.version, self.keep_micros)?
            .on_conflict(garbage_listing().do_nothing().to_owned())
            .to_owned();
        if execute(&self.db, self.db.backend().build(&listed)).await? == 1 {
            self.count += 1;
        } else {
            let dropped = drop_version(&self.db, blob, self.version).await?;
            self.bytes = self.bytes.saturating_sub(dropped);
        }
        let words = Words::new(self.index_bytes);
        self.current = Some(Current { key: full, pending: BytesMut::new(), seq: 0, words });
        Ok(())
    }

    /// More of the value begun last.
    pub async fn feed(&mut self, piece: &[u8]) -> Result<(), Error> {
        let Some(current) = &mut self.current else { return Err(Error::Internal) };
        current.pending.extend_from_slice(piece);
        current.words.feed(piece);
        self.bytes += piece.len() as u64;
        // A chunk is stored once more bytes have arrived, so the last chunk,
        // which carries the last index segments, is known at the end.
        while current.pending.len() > CHUNK_BYTES {
            let data = current.pending.split_to(CHUNK_BYTES).freeze();
            let words = current.words.ready();
            let blob = BlobKey { tenant: &self.tenant, key: &current.key };
            if !store_listed(&self.db, blob, self.version, current.seq, data, words).await? {
                return Err(lapsed());
            }
            current.seq += 1;
        }
        Ok(())
    }

    /// Ends the value begun last.
    pub async fn end(&mut self) -> Result<(), Error> {
        let Some(mut current) = self.current.take() else { return Ok(()) };
        if current.pending.is_empty() {
            return Ok(());
        }
        let data = current.pending.split().freeze();
        let words = current.words.rest();
        let blob = BlobKey { tenant: &self.tenant, key: &current.key };
        if !store_listed(&self.db, blob, self.version, current.seq, data, words).await? {
            return Err(lapsed());
        }
        Ok(())
    }

    /// First within the import's transaction `txn`: takes the session's
    /// prefix lock (imports into one session go one after another), holds
    /// the staged values' listings against the sweeper, and refuses (409)
    /// when a key under the prefix exists.
    pub async fn hold(&self, txn: &Txn) -> Result<(), Error> {
        let Some(prefix) = &self.prefix else { return Err(Error::Internal) };
        // `prefix` ends with `/`, so no key (which never does) shares its lock.
        lock(txn, BlobKey { tenant: &self.tenant, key: prefix }).await?;
        if txn.backend() == DatabaseBackend::Postgres && self.count > 0 {
            let (values, within) = self.staged("key");
            let sql = format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 FROM blob_garbage \
                 WHERE tenant_id = $1 AND version = $2{within} FOR UPDATE) AS held"
            );
            let row = txn.query_one_raw(postgres(&sql, values)).await?;
            let held: i64 = row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
            if u64::try_from(held).ok() != Some(self.count) {
                return Err(lapsed());
            }
        }
        if !super::list(txn, &self.tenant, prefix, None, 1).await?.0.is_empty() {
            return Err(Error::Conflict(format!("blobs under `{prefix}` exist")));
        }
        Ok(())
    }

    /// Points the staged keys at their values, within `txn` after
    /// [`Staged::hold`]; 409 when a key was written meanwhile.
    pub async fn switch(&self, txn: &Txn) -> Result<(), Error> {
        if self.count == 0 {
            return Ok(());
        }
        let backend = txn.backend();
        let (mut values, within) = self.staged("g.key");
        values.push(now().into());
        let at = values.len();
        let point = format!(
            "INSERT INTO blobs (tenant_id, key, version, size, updated_at) \
             SELECT g.tenant_id, g.key, g.version, COALESCE((SELECT SUM(length(c.data)) FROM blob_chunks c \
             WHERE c.tenant_id = g.tenant_id AND c.key = g.key AND c.version = g.version), 0), ${at} \
             FROM blob_garbage g WHERE g.tenant_id = $1 AND g.version = $2{within} \
             ON CONFLICT (tenant_id, key) DO NOTHING"
        );
        let pointed = execute(txn, statement(backend, &point, values)).await?;
        let (values, within) = self.staged("key");
        let claim = format!("DELETE FROM blob_garbage WHERE tenant_id = $1 AND version = $2{within}");
        if execute(txn, statement(backend, &claim, values)).await? != self.count {
            return Err(lapsed());
        }
        if pointed != self.count {
            return Err(Error::Conflict("a key of the session was written meanwhile".into()));
        }
        // Every chunk is there (a replica of an earlier release, during a
        // rolling upgrade, deletes all of a key's chunks).
        let (values, within) = self.staged("key");
        let sum = format!(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs WHERE tenant_id = $1 AND version = $2{within}"
        );
        let row = txn.query_one_raw(statement(backend, &sum, values)).await?;
        let stored: i64 = row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
        if u64::try_from(stored).ok() != Some(self.bytes) {
            return Err(lapsed());
        }
        Ok(())
    }

    /// Lets the staged values go: what was not switched in comes due now,
    /// for the sweeper's next pass (best effort: else it comes due by
    /// itself). Not after a switch: a value it made and a write has
    /// replaced since is listed again, for the grace of reads under way.
    pub async fn discard(mut self) {
        self.settled = true;
        if let Some(prefix) = self.prefix.take() {
            make_due(&self.db, &self.tenant, &prefix, self.version).await;
        }
    }

    /// The values are switched in: nothing is left to let go.
    pub fn settle(mut self) {
        self.settled = true;
    }

    /// The values of a statement on the staged rows (`$1` the tenant, `$2`
    /// the version), and the condition that `column` is under the prefix,
    /// its placeholders following.
    fn staged(&self, column: &str) -> (Vec<Value>, String) {
        listings(&self.tenant, self.prefix.as_deref().unwrap_or_default(), self.version, column)
    }
}

impl Drop for Staged {
    /// Dropped unsettled (its request given up), the values come due in
    /// the background.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Some(prefix) = self.prefix.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (db, tenant, version) = (self.db.clone(), std::mem::take(&mut self.tenant), self.version);
            runtime.spawn(async move { make_due(&db, &tenant, &prefix, version).await });
        }
    }
}

/// The values and the condition of a statement on the listings of
/// `version` of keys of `tenant` under `prefix`.
fn listings(tenant: &str, prefix: &str, version: i64, column: &str) -> (Vec<Value>, String) {
    let mut values: Vec<Value> = vec![tenant.into(), version.into()];
    let within = Range::of(prefix).sql(column, &mut values, '$');
    (values, within)
}

/// `sql`, written with `$n` placeholders, for `backend`.
fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    match backend {
        DatabaseBackend::Postgres => postgres(sql, values),
        _ => sqlite(&sql.replace('$', "?"), values),
    }
}

/// Makes the listings of `version` under `prefix` due now (best effort).
async fn make_due(db: &Conn, tenant: &str, prefix: &str, version: i64) {
    let (values, within) = listings(tenant, prefix, version, "key");
    let due =
        format!("UPDATE blob_garbage SET reclaim_after = 0 WHERE tenant_id = $1 AND version = $2{within}");
    if let Err(e) = execute(db, statement(db.backend(), &due, values)).await {
        tracing::warn!(error = %e, "staged values stay until their listing comes due");
    }
}

fn lapsed() -> Error {
    Error::Unavailable("the import or fork took too long and its staged values lapsed; try it again".into())
}
