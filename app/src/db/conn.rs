//! [`Conn`], what every store function runs its statements on, and its
//! transactions ([`Txn`]). A store function says of each statement whether
//! it reads or writes ([`Db::reads`], [`Db::writes`]); nothing is decided by
//! the statement's text. On PostgreSQL a statement takes a connection from
//! the request [`Pool`] for exactly its own round trip, either way; on
//! SQLite a read goes through sea-orm's pool and a write to the [`Writer`],
//! which commits the writes of many requests together. In a transaction
//! both go to the transaction.

use std::future::Future;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult,
    RuntimeErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Values,
    sqlx::{
        self, AssertSqlSafe, Executor, IntoArguments,
        postgres::{PgArguments, PgConnection},
    },
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    inline,
    pool::{Lease, Pool},
    sqlite_writer::Writer,
};

/// The database, for statements and transactions.
#[derive(Clone, Debug)]
pub struct Conn {
    orm: DatabaseConnection,
    /// The request pool, on PostgreSQL.
    pool: Option<Pool>,
    /// The group-commit writer, on SQLite (unless in memory).
    writer: Option<Writer>,
}

/// A transaction; rolled back unless committed.
pub struct Txn {
    inner: TxnInner,
}

enum TxnInner {
    /// On SQLite, holding the writer's turn (when there is a writer).
    Orm(DatabaseTransaction, Option<OwnedMutexGuard<()>>),
    Pg(Mutex<Lease>),
}

/// What store functions run statements on: a [`Conn`] or a [`Txn`].
pub trait Db: Sync {
    /// Where a statement that only reads goes.
    fn reads(&self) -> Statements<'_>;
    /// Where a statement that writes goes (an `UPDATE … RETURNING` too).
    fn writes(&self) -> Statements<'_>;

    /// Which database system the statements run on.
    fn backend(&self) -> DbBackend {
        self.reads().get_database_backend()
    }
}

/// Statements of one kind, sent where that kind goes: sea-orm's queries
/// run on it as on any connection.
#[derive(Clone, Copy)]
pub struct Statements<'a>(Route<'a>);

#[derive(Clone, Copy)]
enum Route<'a> {
    Read(&'a Conn),
    Write(&'a Conn),
    Txn(&'a Txn),
}

impl Db for Conn {
    fn reads(&self) -> Statements<'_> {
        Statements(Route::Read(self))
    }

    fn writes(&self) -> Statements<'_> {
        Statements(Route::Write(self))
    }
}

impl Db for Txn {
    fn reads(&self) -> Statements<'_> {
        Statements(Route::Txn(self))
    }

    fn writes(&self) -> Statements<'_> {
        Statements(Route::Txn(self))
    }
}

/// A transaction shared by the readers of one snapshot.
impl<T: Db + Send> Db for std::sync::Arc<T> {
    fn reads(&self) -> Statements<'_> {
        T::reads(self)
    }

    fn writes(&self) -> Statements<'_> {
        T::writes(self)
    }
}

impl Conn {
    pub(super) fn new(orm: DatabaseConnection, pool: Option<Pool>, writer: Option<Writer>) -> Self {
        Self { orm, pool, writer }
    }

    pub(super) fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// Runs SQL text (no values) on a pooled connection in autocommit,
    /// outside the SQLite writer: probes and maintenance (`VACUUM INTO`).
    pub async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.pool {
            Some(pool) => execute_unprepared(&mut pool.acquire().await?, sql).await,
            None => self.orm.execute_unprepared(sql).await,
        }
    }

    /// The SQLite writer, for a write (none on PostgreSQL, or with a
    /// single connection).
    fn writer(&self, route: Route<'_>) -> Option<&Writer> {
        self.writer.as_ref().filter(|_| matches!(route, Route::Write(_)))
    }

    async fn execute_raw(&self, route: Route<'_>, stmt: Statement) -> Result<ExecResult, DbErr> {
        if let Some(writer) = self.writer(route) {
            let span = span("sea_orm.execute", "sqlite", &stmt.sql);
            return traced(span, writer.execute(stmt)).await;
        }
        match &self.pool {
            Some(pool) => execute(&mut pool.acquire().await?, stmt).await,
            None => self.orm.execute_raw(stmt).await,
        }
    }

    async fn query_one_raw(&self, route: Route<'_>, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        if let Some(writer) = self.writer(route) {
            let span = span("sea_orm.query_one", "sqlite", &stmt.sql);
            return traced(span, writer.query_one(stmt)).await;
        }
        match &self.pool {
            Some(pool) => query_one(&mut pool.acquire().await?, stmt).await,
            None => self.orm.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, route: Route<'_>, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if let Some(writer) = self.writer(route) {
            let span = span("sea_orm.query_all", "sqlite", &stmt.sql);
            return traced(span, writer.query_all(stmt)).await;
        }
        match &self.pool {
            Some(pool) => query_all(&mut pool.acquire().await?, stmt).await,
            None => self.orm.query_all_raw(stmt).await,
        }
    }

    /// Starts a transaction. Its statements must all go through it: on
    /// SQLite it holds the turn to write, which this `Conn`'s own writes
    /// would wait for.
    pub async fn begin(&self) -> Result<Txn, DbErr> {
        let inner = match &self.pool {
            Some(pool) => TxnInner::Pg(Mutex::new(begun(pool).await?)),
            // Every transaction of the store writes: taking the write lock
            // at BEGIN waits its turn (busy timeout) where a read turned
            // write would fail at once once another write committed.
            None => {
                let turn = match &self.writer {
                    Some(writer) => Some(writer.turn().await?),
                    None => None,
                };
                let txn = self
                    .orm
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..TransactionOptions::default()
                    })
                    .await?;
                TxnInner::Orm(txn, turn)
            }
        };
        Ok(Txn { inner })
    }

    /// Starts a transaction that only reads, every statement of it from one
    /// snapshot of the database: `REPEATABLE READ, READ ONLY` on
    /// PostgreSQL; on SQLite a deferred transaction on a reading connection
    /// (its first read fixes the snapshot, and it never takes the turn to
    /// write, so writers go on meanwhile).
    pub async fn begin_snapshot(&self) -> Result<Txn, DbErr> {
        let inner = match &self.pool {
            Some(pool) => {
                let mut lease = begun(pool).await?;
                execute_unprepared(&mut lease, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?;
                TxnInner::Pg(Mutex::new(lease))
            }
            None => {
                let options = TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Deferred),
                    ..TransactionOptions::default()
                };
                TxnInner::Orm(self.orm.begin_with_options(options).await?, None)
            }
        };
        Ok(Txn { inner })
    }
}

/// A connection of `pool` with a transaction begun on it.
async fn begun(pool: &Pool) -> Result<Lease, DbErr> {
    let mut lease = pool.acquire().await?;
    traced(span("sea_orm.begin", "postgresql", "BEGIN"), async { lease.begin().await.map_err(exec_err) })
        .await?;
    Ok(lease)
}

impl Txn {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), DbErr> {
        match self.inner {
            TxnInner::Orm(txn, _turn) => txn.commit().await,
            TxnInner::Pg(lease) => {
                let mut lease = lease.into_inner();
                traced(span("sea_orm.commit", "postgresql", "COMMIT"), async {
                    lease.commit().await.map_err(exec_err)
                })
                .await
            }
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Statements<'_> {
    fn get_database_backend(&self) -> DbBackend {
        match self.0 {
            Route::Read(conn) | Route::Write(conn) => conn.orm.get_database_backend(),
            Route::Txn(txn) => txn.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self.0 {
            Route::Read(conn) | Route::Write(conn) => conn.execute_raw(self.0, stmt).await,
            Route::Txn(txn) => txn.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self.0 {
            Route::Read(conn) | Route::Write(conn) => match conn.writer(self.0) {
                Some(writer) => {
                    let stmt = Statement::from_string(DbBackend::Sqlite, sql);
                    traced(span("sea_orm.execute_unprepared", "sqlite", sql), writer.execute(stmt)).await
                }
                None => conn.execute_unprepared(sql).await,
            },
            Route::Txn(txn) => txn.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self.0 {
            Route::Read(conn) | Route::Write(conn) => conn.query_one_raw(self.0, stmt).await,
            Route::Txn(txn) => txn.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self.0 {
            Route::Read(conn) | Route::Write(conn) => conn.query_all_raw(self.0, stmt).await,
            Route::Txn(txn) => txn.query_all_raw(stmt).await,
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Txn {
    fn get_database_backend(&self) -> DbBackend {
        match &self.inner {
            TxnInner::Orm(txn, _) => txn.get_database_backend(),
            TxnInner::Pg(_) => DbBackend::Postgres,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn, _) => txn.execute_raw(stmt).await,
            TxnInner::Pg(lease) => execute(&mut *lease.lock().await, stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn, _) => txn.execute_unprepared(sql).await,
            TxnInner::Pg(lease) => execute_unprepared(&mut *lease.lock().await, sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn, _) => txn.query_one_raw(stmt).await,
            TxnInner::Pg(lease) => query_one(&mut *lease.lock().await, stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn, _) => txn.query_all_raw(stmt).await,
            TxnInner::Pg(lease) => query_all(&mut *lease.lock().await, stmt).await,
        }
    }
}

/// The statement as sqlx runs it on `lease`'s connection. Direct, it is
/// prepared (and cached) with its values bound, which are taken rather than
/// copied (they may be documents of many MiB). Behind a pooler, it is text
/// with its values inlined, sent by the simple query protocol after the
/// lease's `SET LOCAL`s: one round trip, one implicit transaction.
fn sent(lease: &Lease, stmt: Statement) -> Result<(AssertSqlSafe<String>, Option<PgArguments>), DbErr> {
    let Statement { sql, values, .. } = stmt;
    let values = values.unwrap_or(Values(Vec::new()));
    match lease.pooled_prefix() {
        None => Ok((
            AssertSqlSafe(sql),
            Some(IntoArguments::<sqlx::Postgres>::into_arguments(SqlxValues(values))),
        )),
        Some(prefix) => Ok((AssertSqlSafe(format!("{prefix}{}", inline::statement(&sql, &values.0)?)), None)),
    }
}

async fn execute(lease: &mut Lease, stmt: Statement) -> Result<ExecResult, DbErr> {
    let span = span("sea_orm.execute", "postgresql", &stmt.sql);
    traced(span, async {
        let query = sent(lease, stmt)?;
        let run = lease.run(async |conn: &mut PgConnection| conn.execute(query).await);
        run.await.map(Into::into).map_err(exec_err)
    })
    .await
}

async fn execute_unprepared(lease: &mut Lease, sql: &str) -> Result<ExecResult, DbErr> {
    let span = span("sea_orm.execute_unprepared", "postgresql", sql);
    let sql = format!("{}{sql}", lease.pooled_prefix().unwrap_or_default());
    let run =
        lease.run(async |conn: &mut PgConnection| conn.execute(sqlx::raw_sql(AssertSqlSafe(sql))).await);
    traced(span, async { run.await.map(Into::into).map_err(exec_err) }).await
}

async fn query_one(lease: &mut Lease, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
    let span = span("sea_orm.query_one", "postgresql", &stmt.sql);
    traced(span, async {
        let query = sent(lease, stmt)?;
        let run = lease.run(async |conn: &mut PgConnection| conn.fetch_optional(query).await);
        run.await.map(|row| row.map(Into::into)).map_err(query_err)
    })
    .await
}

async fn query_all(lease: &mut Lease, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
    let span = span("sea_orm.query_all", "postgresql", &stmt.sql);
    traced(span, async {
        let query = sent(lease, stmt)?;
        let run = lease.run(async |conn: &mut PgConnection| conn.fetch_all(query).await);
        run.await.map(|rows| rows.into_iter().map(Into::into).collect()).map_err(query_err)
    })
    .await
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(e.into()))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(e.into()))
}

/// A client span for one statement of ours, shaped like the ones
/// sea-orm makes for its own (the SQL text, never the values), so traces
/// read the same on either backend.
fn span(name: &'static str, system: &'static str, sql: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "db",
        otel.name = name,
        otel.kind = "client",
        db.system = system,
        db.operation = tracing::field::Empty,
        db.statement = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        exception.message = tracing::field::Empty,
    );
    if !span.is_disabled() {
        let operation = sql.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        span.record("db.operation", operation).record("db.statement", sql);
    }
    span
}

/// Runs `statement` in `span`, recording how it ended.
async fn traced<T>(
    span: tracing::Span,
    statement: impl Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    use tracing::Instrument;
    let result = statement.instrument(span.clone()).await;
    if !span.is_disabled() {
        match &result {
            Ok(_) => span.record("otel.status_code", "OK"),
            Err(e) => span
                .record("otel.status_code", "ERROR")
                .record("exception.message", tracing::field::display(e)),
        };
    }
    result
}
