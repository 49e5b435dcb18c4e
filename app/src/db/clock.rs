//! The database's clock. Whether a session has lapsed, and when a blob's
//! chunks may go, is judged by it, never by a replica's clock, so replicas
//! whose clocks disagree still agree.
//!
//! PostgreSQL's is the statement's start (`statement_timestamp()`): one
//! value for the whole statement, which may then use an index on it. A
//! statement that first waits for a row lock judges by the time it
//! started, at most its statement timeout earlier.

use sea_orm::{DatabaseBackend, sea_query::Expr};

/// Now, in microseconds since the Unix epoch, as SQL: when the statement
/// started on PostgreSQL, the time of the statement's step on SQLite.
pub fn now_micros(backend: DatabaseBackend) -> Expr {
    Expr::cust(match backend {
        DatabaseBackend::Postgres => "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint",
        _ => "CAST(unixepoch('subsec') * 1000000 AS INTEGER)",
    })
}
