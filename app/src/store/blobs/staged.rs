//! Values an import stages: each stored as an upload is (listed in
//! `blob_garbage`, its chunks and index segments stored as they arrive),
//! under a key no request can name and one version for them all, then
//! switched in together, renamed under their session, within the import's
//! switch. Nothing staged is seen before; what is given up (or cut off by
//! a crash) is reclaimed by the sweeper like any upload.

use bytes::BytesMut;
use sea_orm::{
    DatabaseBackend, Statement, Value,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};

use super::{
    BlobKey, CHUNK_BYTES, Range, Timing,
    chunks::{Words, store_listed},
    drop_version, execute, lock,
    tables::{Column, Table, postgres, sqlite},
};
use crate::{
    db::{Conn, Db, Txn, clock::now_micros},
    error::Error,
    store::now,
};

/// Longest key, in bytes (as the storage routes allow).
const KEY_MAX_BYTES: usize = 1024;

/// The values of one import, staged under `/import/<uuid>/` (no
/// normalised key starts with `/`) in the importer's tenant, so their
/// index segments are that tenant's.
pub struct Staged {
    tenant: String,
    prefix: String,
    version: i64,
    index_bytes: usize,
    timing: Timing,
    /// Keys staged (each once).
    count: u64,
    /// The longest key below the session's prefix.
    longest: usize,
    current: Option<Current>,
}

/// The value being staged.
struct Current {
    key: String,
    pending: BytesMut,
    seq: i32,
    words: Words,
}

impl Staged {
    /// Stages values of `tenant`, indexing the first `index_bytes` of each.
    pub fn new(tenant: &str, index_bytes: usize, timing: Timing) -> Self {
        Self {
            tenant: tenant.to_owned(),
            prefix: format!("/import/{}/", uuid::Uuid::new_v4()),
            version: super::write::fresh_version(),
            index_bytes,
            timing,
            count: 0,
            longest: 0,
            current: None,
        }
    }

    /// How many values are staged.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Starts the value of `key` (below the session's prefix), replacing
    /// one staged before under it.
    pub async fn begin(&mut self, db: &Conn, key: &str) -> Result<(), Error> {
        self.end(db).await?;
        let staged = format!("{}{key}", self.prefix);
        let blob = BlobKey { tenant: &self.tenant, key: &staged };
        // Due once the longest an import may take (and its switch) is over.
        let listed = Query::insert()
            .into_table(Table::BlobGarbage)
            .columns([Column::TenantId, Column::Key, Column::Version, Column::ReclaimAfter])
            .values([
                Expr::val(self.tenant.as_str()),
                Expr::val(staged.as_str()),
                Expr::val(self.version),
                now_micros(db.backend()).add(self.timing.grace_micros()),
            ])
            .map_err(|_| Error::Internal)?
            .on_conflict(
                OnConflict::columns([Column::TenantId, Column::Key, Column::Version]).do_nothing().to_owned(),
            )
            .to_owned();
        let listed = db.backend().build(&listed);
        if execute(db, listed).await? == 1 {
            self.count += 1;
        } else {
            drop_version(db, blob, self.version).await?;
        }
        self.longest = self.longest.max(key.len());
        self.current = Some(Current {
            key: staged,
            pending: BytesMut::new(),
            seq: 0,
            words: Words::new(self.index_bytes),
        });
        Ok(())
    }

    /// More of the value begun last.
    pub async fn feed(&mut self, db: &Conn, piece: &[u8]) -> Result<(), Error> {
        let Some(current) = &mut self.current else { return Err(Error::Internal) };
        current.pending.extend_from_slice(piece);
        current.words.feed(piece);
        // A chunk is stored once more bytes have arrived, so the last chunk,
        // which carries the last index segments, is known at the end.
        while current.pending.len() > CHUNK_BYTES {
            let data = current.pending.split_to(CHUNK_BYTES).freeze();
            let words = current.words.ready();
            let blob = BlobKey { tenant: &self.tenant, key: &current.key };
            if !store_listed(db, blob, self.version, current.seq, data, words).await? {
                return Err(lapsed());
            }
            current.seq += 1;
        }
        Ok(())
    }

    /// Ends the value begun last.
    pub async fn end(&mut self, db: &Conn) -> Result<(), Error> {
        let Some(mut current) = self.current.take() else { return Ok(()) };
        if current.pending.is_empty() {
            return Ok(());
        }
        let data = current.pending.split().freeze();
        let words = current.words.rest();
        let blob = BlobKey { tenant: &self.tenant, key: &current.key };
        if !store_listed(db, blob, self.version, current.seq, data, words).await? {
            return Err(lapsed());
        }
        Ok(())
    }

    /// Within the import's transaction `txn`, makes the staged values the
    /// keys under `prefix` (a session's); 409 when a key under it exists
    /// (staged values or not), checked under the prefix's own lock, which
    /// imports into the same session take one after another.
    pub async fn switch(&self, txn: &Txn, prefix: &str) -> Result<(), Error> {
        if prefix.len() + self.longest > KEY_MAX_BYTES {
            return Err(Error::Validation(format!(
                "`blobs`: a key under `{prefix}` would be longer than {KEY_MAX_BYTES} bytes"
            )));
        }
        // `prefix` ends with `/`, so no key (which never does) shares its lock.
        lock(txn, BlobKey { tenant: &self.tenant, key: prefix }).await?;
        if !super::list(txn, &self.tenant, prefix, None, 1).await?.0.is_empty() {
            return Err(Error::Conflict(format!("blobs under `{prefix}` exist")));
        }
        if self.count == 0 {
            return Ok(());
        }
        let backend = txn.backend();
        // `$3` is `prefix`; the staged keys' range follows.
        let renamed = |column: &str| format!("$3 || substr({column}, {})", self.prefix.chars().count() + 1);
        let (pointed, within) = self.sql(Some(prefix), "g.key");
        let pointed = self.statement(
            backend,
            &format!(
                "INSERT INTO blobs (tenant_id, key, version, size, updated_at) \
                 SELECT g.tenant_id, {}, g.version, COALESCE((SELECT SUM(length(c.data)) FROM blob_chunks c \
                 WHERE c.tenant_id = g.tenant_id AND c.key = g.key AND c.version = g.version), 0), ${} \
                 FROM blob_garbage g WHERE g.tenant_id = $1 AND g.version = $2{within} \
                 ON CONFLICT (tenant_id, key) DO NOTHING",
                renamed("g.key"),
                pointed.len() + 1,
            ),
            [pointed, vec![now().into()]].concat(),
        );
        let pointed = execute(txn, pointed).await?;
        let (values, within) = self.sql(None, "key");
        let claim = format!("DELETE FROM blob_garbage WHERE tenant_id = $1 AND version = $2{within}");
        if execute(txn, self.statement(backend, &claim, values)).await? != self.count {
            return Err(lapsed());
        }
        if pointed != self.count {
            return Err(Error::Conflict(format!("blobs under `{prefix}` were written meanwhile")));
        }
        for table in ["blob_chunks", "blob_text"] {
            let (values, within) = self.sql(Some(prefix), "key");
            let rename = format!(
                "UPDATE {table} SET key = {} WHERE tenant_id = $1 AND version = $2{within}",
                renamed("key")
            );
            execute(txn, self.statement(backend, &rename, values)).await?;
        }
        Ok(())
    }

    /// Gives the staged values up: their listings come due now, for the
    /// sweeper's next pass (best effort: else they come due by themselves).
    pub async fn discard(&self, db: &Conn) {
        if self.count == 0 {
            return;
        }
        let (values, within) = self.sql(None, "key");
        let due = format!(
            "UPDATE blob_garbage SET reclaim_after = 0 WHERE tenant_id = $1 AND version = $2{within}"
        );
        if let Err(e) = execute(db, self.statement(db.backend(), &due, values)).await {
            tracing::warn!(error = %e, "an import's staged values stay until their listing comes due");
        }
    }

    /// The values of a statement on the staged rows (`$1` the tenant, `$2`
    /// the version, then `$3` `prefix` if given), and the condition that
    /// `column` is a staged key, placeholders following.
    fn sql(&self, prefix: Option<&str>, column: &str) -> (Vec<Value>, String) {
        let mut values: Vec<Value> = vec![self.tenant.clone().into(), self.version.into()];
        values.extend(prefix.map(Value::from));
        let within = Range::of(&self.prefix).sql(column, &mut values, '$');
        (values, within)
    }

    /// `sql`, written with `$n` placeholders, for `backend`.
    fn statement(&self, backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
        match backend {
            DatabaseBackend::Postgres => postgres(sql, values),
            _ => sqlite(&sql.replace('$', "?"), values),
        }
    }
}

fn lapsed() -> Error {
    Error::Unavailable("the import took too long and its staged values lapsed; send it again".into())
}
