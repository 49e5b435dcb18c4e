//! The one classification of database errors: what kind of failure a
//! [`DbErr`] or a driver error is, by SQLSTATE, SQLite result code or
//! driver error kind, never by message text. The pool asks whether a
//! connection survives it, the SQLite writer whether a statement failed
//! alone, and the API how to answer it.

use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sqlx};

/// What went wrong, as far as anyone acting on it needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection became free within `database.acquire_timeout_ms`.
    PoolTimeout,
    /// `statement_timeout` cancelled the statement (57014).
    StatementTimeout,
    /// `lock_timeout` ran out waiting for another transaction's lock (55P03).
    LockTimeout,
    /// A serialization failure or a deadlock (40001, 40P01): the same work
    /// succeeds when tried again.
    Collision,
    /// SQLite's write lock is held by another connection (BUSY, LOCKED).
    Busy,
    /// The connection is gone or unusable: I/O, TLS, protocol errors, a
    /// closed pool, class 08, the server shutting down (57P).
    ConnectionLost,
    /// The database is out of something: class 53 (disk, memory,
    /// connections); SQLite out of memory, read-only, I/O error, full,
    /// cannot open.
    Exhausted,
    /// A constraint refused the row (class 23; SQLITE_CONSTRAINT).
    Constraint,
    /// Anything else: a statement the database rejects, a decoding error.
    Other,
}

impl Failure {
    /// The kind of `err`.
    pub fn of(err: &DbErr) -> Self {
        match err {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => Self::PoolTimeout,
            DbErr::ConnectionAcquire(_) => Self::ConnectionLost,
            DbErr::Conn(RuntimeErr::SqlxError(e))
            | DbErr::Exec(RuntimeErr::SqlxError(e))
            | DbErr::Query(RuntimeErr::SqlxError(e)) => Self::of_driver(e),
            DbErr::Conn(_) => Self::ConnectionLost,
            _ => Self::Other,
        }
    }

    /// The kind of a driver (sqlx) error.
    pub fn of_driver(err: &sqlx::Error) -> Self {
        use sqlx::Error as E;
        match err {
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    sqlite(code.parse::<i32>().unwrap_or_default())
                } else {
                    postgres(&code)
                }
            }
            E::PoolTimedOut => Self::PoolTimeout,
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolClosed | E::WorkerCrashed => Self::ConnectionLost,
            _ => Self::Other,
        }
    }

    /// Whether a retry may succeed: the database was unreachable, busy or
    /// slow, and nothing was written (answered 503).
    pub fn is_transient(self) -> bool {
        !matches!(self, Self::Constraint | Self::Other)
    }

    /// Whether the statement was cut off by a time limit.
    pub fn is_timeout(self) -> bool {
        matches!(self, Self::StatementTimeout | Self::LockTimeout)
    }

    /// Whether a connection that saw this error must be closed rather than
    /// used again.
    pub fn breaks_connection(self) -> bool {
        matches!(self, Self::ConnectionLost | Self::PoolTimeout)
    }
}

/// A SQLite result code (extended codes carry the primary in the low byte).
fn sqlite(code: i32) -> Failure {
    match code & 0xff {
        5 | 6 => Failure::Busy,
        7 | 8 | 10 | 13 | 14 => Failure::Exhausted,
        19 => Failure::Constraint,
        _ => Failure::Other,
    }
}

/// A PostgreSQL SQLSTATE.
fn postgres(code: &str) -> Failure {
    match code {
        "57014" => Failure::StatementTimeout,
        "55P03" => Failure::LockTimeout,
        "40001" | "40P01" => Failure::Collision,
        _ if code.starts_with("08") || code.starts_with("57P") => Failure::ConnectionLost,
        _ if code.starts_with("53") => Failure::Exhausted,
        _ if code.starts_with("23") => Failure::Constraint,
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_by_primary_code() {
        // SQLITE_BUSY_SNAPSHOT (517), SQLITE_CONSTRAINT_FOREIGNKEY (787),
        // SQLITE_IOERR_WRITE (778), SQLITE_ERROR (1).
        assert_eq!(sqlite(517), Failure::Busy);
        assert_eq!(sqlite(787), Failure::Constraint);
        assert_eq!(sqlite(778), Failure::Exhausted);
        assert_eq!(sqlite(1), Failure::Other);
    }

    #[test]
    fn postgres_codes_by_class() {
        assert_eq!(postgres("57014"), Failure::StatementTimeout);
        assert_eq!(postgres("57P01"), Failure::ConnectionLost);
        assert_eq!(postgres("08006"), Failure::ConnectionLost);
        assert_eq!(postgres("53300"), Failure::Exhausted);
        assert_eq!(postgres("23505"), Failure::Constraint);
        assert_eq!(postgres("42P01"), Failure::Other);
        assert!(!Failure::Constraint.is_transient() && Failure::Collision.is_transient());
    }

    #[test]
    fn pool_errors() {
        assert_eq!(Failure::of(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)), Failure::PoolTimeout);
        assert_eq!(
            Failure::of(&DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)),
            Failure::ConnectionLost
        );
        assert!(Failure::of_driver(&sqlx::Error::PoolTimedOut).breaks_connection());
    }
}
