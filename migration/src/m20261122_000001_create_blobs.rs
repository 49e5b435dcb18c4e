//! Blobs for the SDK's `Storage` protocol (snapshot storage).
//!
//! A value is kept as chunks of at most 1 MiB in `blob_chunks`, written as
//! the request body arrives and read back one chunk at a time, so a value
//! of any size costs a chunk of memory. `blobs` holds one row per key naming
//! the version whose chunks are current; a write stores its chunks under a
//! new version first and then switches the row, so readers never see half
//! a value.
//!
//! Keys sort in byte order on both backends (`COLLATE "C"` on PostgreSQL,
//! SQLite's default `BINARY`). Text values are indexed for search: a
//! `tsvector` column with a GIN index on PostgreSQL, a contentless FTS5
//! table keyed by the blob's rowid on SQLite. PostgreSQL stores chunks
//! uncompressed (`STORAGE EXTERNAL`): snapshots are often compressed or
//! binary already, and compressing megabytes on every write costs more
//! than it saves.
//!
//! The SQL differs enough between the backends (collation, full-text
//! search) that each is written out in full.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    r#"CREATE TABLE blobs (
        tenant_id varchar(255) NOT NULL,
        key text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        size bigint NOT NULL,
        updated_at timestamptz NOT NULL,
        search tsvector,
        PRIMARY KEY (tenant_id, key)
    )"#,
    "CREATE INDEX idx_blobs_search ON blobs USING gin (search)",
    r#"CREATE TABLE blob_chunks (
        tenant_id varchar(255) NOT NULL,
        key text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        seq integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (tenant_id, key, version, seq)
    )"#,
    "ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
];

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE blobs (
        tenant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        size INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, key)
    )",
    "CREATE VIRTUAL TABLE blob_search USING fts5(body, content='', contentless_delete=1)",
    "CREATE TABLE blob_chunks (
        tenant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (tenant_id, key, version, seq)
    )",
];

const DOWN: &[&str] = &["DROP TABLE blob_chunks", "DROP TABLE blobs"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match manager.get_database_backend() {
            DatabaseBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        run(manager, statements).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            run(manager, &["DROP TABLE blob_search"]).await?;
        }
        run(manager, DOWN).await
    }
}

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for statement in statements {
        manager.get_connection().execute_unprepared(statement).await?;
    }
    Ok(())
}
