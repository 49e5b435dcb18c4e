//! The blob tables as statements name them. A statement both engines run
//! is built with sea-query from these names, as the rest of the store's
//! are; one only an engine runs (PostgreSQL's advisory locks and
//! `tsvector`s, SQLite's FTS5 table) is written in that engine's own SQL
//! and placeholders ([`postgres`], [`sqlite`]).

use sea_orm::{
    DatabaseBackend, DeriveIden, Statement, Value,
    sea_query::{Condition, Expr, ExprTrait},
};

use super::BlobKey;

#[derive(Clone, Copy, DeriveIden)]
pub enum Table {
    Blobs,
    BlobChunks,
    BlobGarbage,
}

#[derive(Clone, Copy, DeriveIden)]
pub enum Column {
    TenantId,
    Key,
    Version,
    Size,
    Seq,
    Data,
    UpdatedAt,
    ReclaimAfter,
    /// PostgreSQL's `blobs.search`, the earlier release's index.
    Search,
}

impl BlobKey<'_> {
    /// The key's rows (`tenant_id`, `key`) in the table a statement reads.
    pub(super) fn rows(&self) -> Condition {
        Condition::all()
            .add(Expr::col(Column::TenantId).eq(self.tenant))
            .add(Expr::col(Column::Key).eq(self.key))
    }

    /// The rows of `version` of the key.
    pub(super) fn rows_of(&self, version: i64) -> Condition {
        self.rows().add(Expr::col(Column::Version).eq(version))
    }
}

/// A statement only PostgreSQL runs, with `$1`-style placeholders.
pub fn postgres(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values)
}

/// A statement only SQLite runs, with `?1`-style placeholders.
pub fn sqlite(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DatabaseBackend::Sqlite, sql, values)
}
