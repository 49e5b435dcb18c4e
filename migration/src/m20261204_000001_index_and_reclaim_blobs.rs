//! Blobs: a search index over whole values, and chunks that are reclaimed.
//!
//! `blob_text` holds a value's words ([`entity::search_text`]) in segments
//! of at most 128 KiB, one row each, keyed by the value's version: written
//! as the value's chunks are, seen by search once the key points at that
//! version. PostgreSQL keeps a `tsvector` per segment (GIN index);
//! SQLite a contentless FTS5 table `blob_words` (tokenizer `ascii`: the
//! words arrive cut and lower-cased, and every other byte of them is part
//! of a word) whose rowid is `blob_text.id`, with `blob_word_instances`
//! (`fts5vocab`) to count a word in a segment. Both rank by each value's
//! own words only, never by statistics over other tenants' values.
//!
//! `blob_garbage` lists versions whose chunks are to be deleted once
//! `reclaim_after` (microseconds since the epoch, the database's clock)
//! has passed: an upload in progress (until the key points at it), and a
//! replaced or deleted value over one chunk (while reads of it may still
//! be streaming). Chunks that no key points at when this runs (uploads cut
//! off by a crash) are listed to go in an hour.
//!
//! The earlier index (`blobs.search` on PostgreSQL, `blob_search` on
//! SQLite) held a value's first 256 KiB: PostgreSQL's is copied over as
//! each value's first segment (its words behind their tenant's prefix,
//! without positions), and its column stays (NULL) for replicas of the
//! earlier version during a rolling upgrade; SQLite's, which kept no text,
//! is rebuilt from the values here, within this migration's transaction.

use entity::search_text::{self, Indexer};
use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An hour, in microseconds: the grace of chunks found orphaned here.
const HOUR_MICROS: i64 = 3_600_000_000;

const POSTGRES_UP: &[&str] = &[
    r#"CREATE TABLE blob_text (
        tenant_id varchar(255) NOT NULL,
        key text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        seq integer NOT NULL,
        words tsvector NOT NULL,
        PRIMARY KEY (tenant_id, key, version, seq)
    )"#,
    "CREATE INDEX idx_blob_text_words ON blob_text USING gin (words)",
    // Each lexeme behind its tenant's prefix (`entity::search_text::tenant_prefix`).
    "INSERT INTO blob_text (tenant_id, key, version, seq, words) \
     SELECT b.tenant_id, b.key, b.version, 0, \
     (SELECT array_to_tsvector(array_agg(left(encode(sha256(convert_to(b.tenant_id, 'UTF8')), 'hex'), 16) \
     || l.lexeme)) FROM unnest(b.search) AS l) \
     FROM blobs b WHERE b.search IS NOT NULL AND length(b.search) > 0",
    "DROP INDEX idx_blobs_search",
    "UPDATE blobs SET search = NULL WHERE search IS NOT NULL",
    r#"CREATE TABLE blob_garbage (
        tenant_id varchar(255) NOT NULL,
        key text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        reclaim_after bigint NOT NULL,
        PRIMARY KEY (tenant_id, key, version)
    )"#,
    "CREATE INDEX idx_blob_garbage_due ON blob_garbage (reclaim_after)",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE blob_text (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        seq INTEGER NOT NULL
    )",
    "CREATE UNIQUE INDEX idx_blob_text_version ON blob_text (tenant_id, key, version, seq)",
    "CREATE VIRTUAL TABLE blob_words USING fts5(words, tokenize = 'ascii', content = '', contentless_delete = 1)",
    "CREATE VIRTUAL TABLE blob_word_instances USING fts5vocab(blob_words, instance)",
    "DROP TABLE blob_search",
    "CREATE TABLE blob_garbage (
        tenant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        reclaim_after INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, key, version)
    )",
    "CREATE INDEX idx_blob_garbage_due ON blob_garbage (reclaim_after)",
];

/// The orphans found now, listed to go in an hour.
fn list_orphans(backend: DatabaseBackend) -> String {
    let now = match backend {
        DatabaseBackend::Postgres => "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
        _ => "CAST(unixepoch('subsec') * 1000000 AS INTEGER)",
    };
    format!(
        "INSERT INTO blob_garbage (tenant_id, key, version, reclaim_after) \
         SELECT DISTINCT c.tenant_id, c.key, c.version, {now} + {HOUR_MICROS} FROM blob_chunks c \
         WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.tenant_id = c.tenant_id AND b.key = c.key \
         AND b.version = c.version)"
    )
}

const POSTGRES_DOWN: &[&str] = &[
    "UPDATE blobs b SET search = t.words FROM blob_text t \
     WHERE t.tenant_id = b.tenant_id AND t.key = b.key AND t.version = b.version AND t.seq = 0",
    "CREATE INDEX idx_blobs_search ON blobs USING gin (search)",
    "DROP TABLE blob_garbage",
    "DROP TABLE blob_text",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TABLE blob_garbage",
    "DROP TABLE blob_word_instances",
    "DROP TABLE blob_words",
    "DROP TABLE blob_text",
    "CREATE VIRTUAL TABLE blob_search USING fts5(body, content='', contentless_delete=1)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too: a crash while values are indexed
    /// leaves the schema as it was, to be migrated again.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let statements = match backend {
            DatabaseBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        db.execute_unprepared(&list_orphans(backend)).await?;
        if backend == DatabaseBackend::Sqlite {
            index_sqlite_values(db).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match manager.get_database_backend() {
            DatabaseBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        for statement in statements {
            manager.get_connection().execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

/// Indexes every stored value's words on SQLite, a chunk at a time.
async fn index_sqlite_values(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    let sqlite =
        |sql: &str, values: Vec<Value>| Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values);
    let heads = db.query_all_raw(sqlite("SELECT tenant_id, key, version FROM blobs", vec![])).await?;
    for head in heads {
        let (tenant, key): (String, String) = (head.try_get_by_index(0)?, head.try_get_by_index(1)?);
        let version: i64 = head.try_get_by_index(2)?;
        let prefix = search_text::tenant_prefix(&tenant);
        let value = || -> Vec<Value> { vec![tenant.clone().into(), key.clone().into(), version.into()] };
        let mut indexer = Indexer::new();
        let mut next_segment = 0i64;
        let mut seq = 0i64;
        loop {
            let mut values = value();
            values.push(seq.into());
            let sql =
                "SELECT data FROM blob_chunks WHERE tenant_id = ? AND key = ? AND version = ? AND seq = ?";
            let row = db.query_one_raw(sqlite(sql, values)).await?;
            let last = row.is_none();
            let segments = match row {
                Some(row) => {
                    indexer.feed(&row.try_get_by_index::<Vec<u8>>(0)?);
                    indexer.take_segments()
                }
                None => std::mem::take(&mut indexer).finish(),
            };
            for words in segments {
                let mut values = value();
                values.push(next_segment.into());
                next_segment += 1;
                let sql = "INSERT INTO blob_text (tenant_id, key, version, seq) VALUES (?1, ?2, ?3, ?4)";
                db.execute_raw(sqlite(sql, values.clone())).await?;
                values.push(search_text::tenant_terms(&prefix, &words).into());
                let sql = "INSERT INTO blob_words (rowid, words) SELECT id, ?5 FROM blob_text \
                           WHERE tenant_id = ?1 AND key = ?2 AND version = ?3 AND seq = ?4";
                db.execute_raw(sqlite(sql, values)).await?;
            }
            if last {
                break;
            }
            seq += 1;
        }
    }
    Ok(())
}
