//! [`Conn`], what every store function runs its statements on, and its
//! transactions ([`Txn`]). On PostgreSQL a statement takes a connection
//! from the request [`Pool`] for exactly its own round trip; on SQLite it
//! goes through sea-orm's pool.

use std::future::Future;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult,
    RuntimeErr, Statement, TransactionTrait, Values,
    sqlx::{self, AssertSqlSafe, Executor, postgres::PgConnection},
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

use super::pool::{Lease, Pool};

/// The database, for statements and transactions.
#[derive(Clone, Debug)]
pub struct Conn {
    orm: DatabaseConnection,
    /// The request pool, on PostgreSQL.
    pool: Option<Pool>,
}

/// A transaction; rolled back unless committed.
pub struct Txn {
    inner: TxnInner,
}

enum TxnInner {
    Orm(DatabaseTransaction),
    Pg(Mutex<Lease>),
}

impl Conn {
    pub(super) fn new(orm: DatabaseConnection, pool: Option<Pool>) -> Self {
        Self { orm, pool }
    }

    pub(super) fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Txn, DbErr> {
        let inner = match &self.pool {
            Some(pool) => {
                let mut lease = pool.acquire().await?;
                traced(span("sea_orm.begin", "BEGIN"), async { lease.begin().await.map_err(exec_err) })
                    .await?;
                TxnInner::Pg(Mutex::new(lease))
            }
            None => TxnInner::Orm(self.orm.begin().await?),
        };
        Ok(Txn { inner })
    }
}

impl Txn {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), DbErr> {
        match self.inner {
            TxnInner::Orm(txn) => txn.commit().await,
            TxnInner::Pg(lease) => {
                let mut lease = lease.into_inner();
                traced(span("sea_orm.commit", "COMMIT"), async { lease.commit().await.map_err(exec_err) })
                    .await
            }
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Conn {
    fn get_database_backend(&self) -> DbBackend {
        self.orm.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.pool {
            Some(pool) => execute(&mut pool.acquire().await?, stmt).await,
            None => self.orm.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.pool {
            Some(pool) => execute_unprepared(&mut pool.acquire().await?, sql).await,
            None => self.orm.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.pool {
            Some(pool) => query_one(&mut pool.acquire().await?, stmt).await,
            None => self.orm.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.pool {
            Some(pool) => query_all(&mut pool.acquire().await?, stmt).await,
            None => self.orm.query_all_raw(stmt).await,
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Txn {
    fn get_database_backend(&self) -> DbBackend {
        match &self.inner {
            TxnInner::Orm(txn) => txn.get_database_backend(),
            TxnInner::Pg(_) => DbBackend::Postgres,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn) => txn.execute_raw(stmt).await,
            TxnInner::Pg(lease) => execute(&mut *lease.lock().await, stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn) => txn.execute_unprepared(sql).await,
            TxnInner::Pg(lease) => execute_unprepared(&mut *lease.lock().await, sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn) => txn.query_one_raw(stmt).await,
            TxnInner::Pg(lease) => query_one(&mut *lease.lock().await, stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.inner {
            TxnInner::Orm(txn) => txn.query_all_raw(stmt).await,
            TxnInner::Pg(lease) => query_all(&mut *lease.lock().await, stmt).await,
        }
    }
}

/// The statement as sqlx runs it, taking its values rather than copying
/// them (they may be documents of many MiB).
fn prepared(stmt: Statement) -> sqlx::query::Query<'static, sqlx::Postgres, SqlxValues> {
    let Statement { sql, values, .. } = stmt;
    sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values.unwrap_or(Values(Vec::new()))))
}

async fn execute(lease: &mut Lease, stmt: Statement) -> Result<ExecResult, DbErr> {
    let span = span("sea_orm.execute", &stmt.sql);
    let query = prepared(stmt);
    let run = lease.run(async |conn: &mut PgConnection| query.execute(conn).await);
    traced(span, async { run.await.map(Into::into).map_err(exec_err) }).await
}

async fn execute_unprepared(lease: &mut Lease, sql: &str) -> Result<ExecResult, DbErr> {
    let span = span("sea_orm.execute_unprepared", sql);
    let run = lease.run(async |conn: &mut PgConnection| {
        conn.execute(sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))).await
    });
    traced(span, async { run.await.map(Into::into).map_err(exec_err) }).await
}

async fn query_one(lease: &mut Lease, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
    let span = span("sea_orm.query_one", &stmt.sql);
    let query = prepared(stmt);
    let run = lease.run(async |conn: &mut PgConnection| query.fetch_optional(conn).await);
    traced(span, async { run.await.map(|row| row.map(Into::into)).map_err(query_err) }).await
}

async fn query_all(lease: &mut Lease, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
    let span = span("sea_orm.query_all", &stmt.sql);
    let query = prepared(stmt);
    let run = lease.run(async |conn: &mut PgConnection| query.fetch_all(conn).await);
    traced(span, async {
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

/// A client span for one PostgreSQL statement, shaped like the ones
/// sea-orm makes for its own (the SQL text, never the values), so traces
/// read the same on either backend.
fn span(name: &'static str, sql: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "db",
        otel.name = name,
        otel.kind = "client",
        db.system = "postgresql",
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
