//! The database connection: pool set-up per backend, migrations under a
//! lock, and the probes behind the health endpoints.

pub mod clock;
mod conn;
mod failure;
pub mod groups;
mod inline;
mod pool;
mod sqlite_writer;
#[cfg(test)]
pub(crate) mod tests;

use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait,
    sqlx::{
        postgres::PgConnectOptions,
        sqlite::{SqliteJournalMode, SqliteSynchronous},
    },
};

use self::pool::Sharing;
pub use self::{
    conn::{Conn, Db, Statements, Txn},
    failure::Failure,
};
use crate::config::{Backend, Config, ConfigError, DatabaseUrl, Pooler};

/// Both halves of the `pg_advisory_xact_lock(int, int)` key that serialises
/// migrations: a constant for this program and the hash of the schema, so
/// replicas of one deployment wait for each other and others do not.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(1936023906, hashtext(current_schema()))";

/// The service's tables, parents first.
pub const TABLES: [&str; 6] = ["sessions", "agents", "messages", "multi_agents", "blobs", "blob_chunks"];

/// Rows per table.
pub type TableCounts = std::collections::BTreeMap<String, u64>;

/// A connected database.
#[derive(Clone, Debug)]
pub struct Database {
    /// sea-orm's own pool: migrations, and the maintenance commands.
    orm: DatabaseConnection,
    /// What requests run on.
    conn: Conn,
    backend: Backend,
    /// The database itself (past any pooler), for what goes wrong at start.
    url: DatabaseUrl,
}

/// Pool figures for `/health/db` and `/health/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Why the database could not be used at start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to the database at {url} (database.url / DATABASE_URL): {cause}")]
    Connect { url: DatabaseUrl, cause: String },
    #[error("migrating the database at {url} failed: {cause}")]
    Migrate { url: DatabaseUrl, cause: String },
    #[error(
        "the database schema at {url} is out of date ({pending} pending migration(s)) and \
         database.auto_migrate is false; run `session-backend migrate up` first"
    )]
    OutOfDate { url: DatabaseUrl, pending: usize },
}

impl Database {
    /// Opens the pools and checks that the database answers. On
    /// PostgreSQL requests get a pool of their own ([`pool`]) of
    /// `database.max_connections`; sea-orm's pool then keeps no connection
    /// open once it has idled for a while (it serves migrations at start).
    pub async fn connect(config: &Config) -> Result<Self, StartError> {
        let url = config.database_url()?;
        let direct = config.direct_database_url()?;
        let backend = url
            .backend()
            .ok_or_else(|| ConfigError::from_message(format!("unsupported database.url `{url}`")))?;
        let db = &config.database;
        let wait = config.acquire_timeout();
        let timeouts = [db.statement_timeout_ms, db.lock_timeout_ms];
        let in_memory = url.expose().contains(":memory:") || url.expose().contains("mode=memory");
        let pooled = db.pooler == Pooler::Transaction;
        let mut options = ConnectOptions::new(direct.expose());
        options
            .max_connections(db.max_connections)
            .acquire_timeout(wait)
            .connect_timeout(wait)
            .sqlx_logging(false)
            // Hot connections go straight to work; only ones idle for a
            // while are pinged first, so a restarted database is noticed.
            .test_before_acquire_if_idle_for(Duration::from_secs(1));
        match backend {
            Backend::Sqlite => {
                // SQLite's connections are never closed for age or
                // idleness (nothing on the other side restarts), so the one
                // start-up opens stays, and sqlx runs no maintenance task:
                // its reaper can read a transiently wrapped idle count and
                // spin a worker for good (seen once in CI), and a minimum
                // kept by it races start-up's connection on a new file
                // ("database is locked").
                options.idle_timeout(None).max_lifetime(None);
                if in_memory {
                    // Every connection to `:memory:` is its own database.
                    options.max_connections(1);
                }
                options.map_sqlx_sqlite_opts(move |o| {
                    o.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .foreign_keys(true)
                        .busy_timeout(wait)
                        // Rows cross from SQLite's worker thread a page at
                        // a time (every query is read to its end, and a
                        // listing bounds its own size: store/listing.rs).
                        .row_buffer_size(128)
                });
            }
            Backend::Postgres => {
                // The database gives up on a statement before the request
                // deadline does, so a 503 always means "not written".
                // This pool serves migrations at start (and the maintenance
                // commands): its connection stays, idle, and sqlx runs no
                // maintenance task, whose reaper can spin a worker for good
                // (see the SQLite branch).
                options
                    .map_sqlx_postgres_opts(move |o| postgres_options(o, timeouts))
                    .idle_timeout(None)
                    .max_lifetime(None)
                    // A connection that carried a document of many MiB would
                    // keep buffers that size while it idles in the pool.
                    .map_sqlx_postgres_pool_opts(|pool| {
                        pool.after_release(|conn, _| {
                            Box::pin(async move {
                                sea_orm::sqlx::Connection::shrink_buffers(conn);
                                Ok(true)
                            })
                        })
                    });
            }
        }
        // Both pools open their first connection at the same time.
        let requests = async {
            if backend != Backend::Postgres {
                return Ok(None);
            }
            let options = url.expose().parse::<PgConnectOptions>().map_err(|e| e.to_string())?;
            let limit = Duration::from_millis(db.statement_timeout_ms.max(db.lock_timeout_ms)) + wait;
            if pooled {
                // The pooler's connections carry no settings of ours, and
                // PgBouncer refuses startup parameters it does not know.
                let [statement, lock] = timeouts;
                let settings = format!(
                    "SET LOCAL statement_timeout = {statement}; SET LOCAL lock_timeout = {lock}; \
                     SET LOCAL idle_in_transaction_session_timeout = {statement}; "
                );
                let options = options.extra_float_digits(None);
                return pool::Pool::connect(
                    options,
                    Sharing::Pooled { settings },
                    db.max_connections,
                    wait,
                    limit,
                )
                .await
                .map(Some)
                .map_err(|e| cause_of(&e));
            }
            // Every statement a request sends names its tenant (and session
            // and agent) and reads through the same index whatever values are
            // bound: plan it once per connection. Left to choose, PostgreSQL
            // planned the page read again on every execution (its generic
            // plan, costed for an average agent's history, looked dearer than
            // each custom one): over 40% of the database's time per page.
            // Grouped appends alone are up to 64 statement texts (one per
            // group size), so each connection keeps more than sqlx's 100.
            // A transaction left idle (its replica stalled) is ended by the
            // database, its locks released and its writes undone, rather
            // than holding a key's lock or a blob's garbage listing open.
            let options = postgres_options(options, timeouts)
                .options([("plan_cache_mode", "force_generic_plan")])
                .options([("idle_in_transaction_session_timeout", db.statement_timeout_ms)])
                .statement_cache_capacity(256);
            pool::Pool::connect(options, Sharing::Private, db.max_connections, wait, limit)
                .await
                .map(Some)
                .map_err(|e| cause_of(&e))
        };
        let (orm, pool) = tokio::join!(sea_orm::Database::connect(options), requests);
        let orm = match orm {
            Ok(orm) => orm,
            Err(e) => {
                let cause = match backend {
                    // The pool only says it timed out; one plain connection
                    // attempt tells why (refused, bad password, no database…).
                    Backend::Postgres => direct_connect_error(&direct).await.unwrap_or_else(|| cause_of(&e)),
                    Backend::Sqlite => cause_of(&e),
                };
                return Err(StartError::Connect { url: direct, cause });
            }
        };
        let pool = pool.map_err(|cause| StartError::Connect { url: url.clone(), cause })?;
        // SQLite writes go through the writer, unless there is a single
        // connection (an in-memory database, or max_connections = 1): the
        // writer and a transaction would each hold what the other waits for.
        let writer = (backend == Backend::Sqlite && !in_memory && db.max_connections >= 2)
            .then(|| sqlite_writer::Writer::start(orm.get_sqlite_connection_pool().clone(), wait));
        Ok(Self { conn: Conn::new(orm.clone(), pool, writer), orm, backend, url: direct })
    }

    /// What every store function takes.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// sea-orm's own connection, for what needs its types (migrations,
    /// snapshot transactions).
    pub fn orm(&self) -> &DatabaseConnection {
        &self.orm
    }

    /// Which database system this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations. On PostgreSQL this holds a transaction
    /// advisory lock, so replicas starting together migrate one at a time
    /// and the later ones find nothing left to do.
    pub async fn migrate_up(&self) -> Result<(), DbErr> {
        match self.backend {
            Backend::Postgres => {
                let txn = self.orm.begin().await?;
                txn.execute_unprepared(MIGRATION_LOCK).await?;
                Migrator::up(&txn, None).await?;
                txn.commit().await
            }
            Backend::Sqlite => Migrator::up(&self.orm, None).await,
        }
    }

    /// Migrates (or, with `auto_migrate = false`, checks the schema is current).
    pub async fn prepare(&self, auto_migrate: bool) -> Result<(), StartError> {
        if auto_migrate {
            return self
                .migrate_up()
                .await
                .map_err(|e| StartError::Migrate { url: self.url.clone(), cause: cause_of(&e) });
        }
        let pending = Migrator::get_pending_migrations_read_only(&self.orm)
            .await
            .map_err(|e| StartError::Migrate { url: self.url.clone(), cause: cause_of(&e) })?
            .len();
        if pending > 0 {
            return Err(StartError::OutOfDate { url: self.url.clone(), pending });
        }
        Ok(())
    }

    /// Runs `SELECT 1` within `timeout` the way writes run (through the
    /// SQLite writer; behind a pooler, with the limits writes set), so it
    /// fails when they would; the round-trip time on success, else a fixed
    /// sentence for the probe's answer. The cause (which may name hosts and
    /// users) goes to the log only.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        match tokio::time::timeout(timeout, self.conn.writes().execute_unprepared("SELECT 1")).await {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(e)) => {
                tracing::warn!(error = %cause_of(&e), "database probe failed");
                Err("the database is unavailable".into())
            }
            Err(_) => {
                tracing::warn!(timeout_ms = timeout.as_millis(), "database probe timed out");
                Err(format!("the database did not answer within {} ms", timeout.as_millis()))
            }
        }
    }

    /// Rows in each of the service's tables (a missing table counts 0), in
    /// a stable order; `on` is this connection or a transaction of it.
    pub async fn table_counts(on: &impl ConnectionTrait) -> Result<TableCounts, DbErr> {
        let mut counts = TableCounts::new();
        for table in TABLES {
            let n = if has_table(on, table).await? {
                let row = on
                    .query_one_raw(Statement::from_string(
                        on.get_database_backend(),
                        format!("SELECT COUNT(*) FROM {table}"),
                    ))
                    .await?;
                row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0)
            } else {
                0
            };
            counts.insert(table.to_owned(), u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
    }

    /// The newest applied migration, if any.
    pub async fn schema_version(&self) -> Result<Option<String>, DbErr> {
        if !has_table(&self.orm, "seaql_migrations").await? {
            return Ok(None);
        }
        Ok(Migrator::get_migration_with_status_read_only(&self.orm)
            .await?
            .into_iter()
            .filter(|m| m.status() == migration::MigrationStatus::Applied)
            .map(|m| m.name().to_owned())
            .last())
    }

    /// Current pool figures.
    pub fn pool_stats(&self) -> PoolStats {
        if let Some(pool) = self.conn.pool() {
            let pool::Stats { size, idle, max } = pool.stats();
            return PoolStats { size, idle, max };
        }
        let pool = self.orm.get_sqlite_connection_pool();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        PoolStats { size: pool.size(), idle, max: pool.options().get_max_connections() }
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(self) {
        if let Some(pool) = self.conn.pool() {
            pool.close().await;
        }
        if let Err(e) = self.orm.close().await {
            tracing::warn!(error = %e, "closing the database pool");
        }
    }
}

/// `statement_timeout` and `lock_timeout` on every PostgreSQL connection:
/// the database gives up on a statement before the request deadline does,
/// so a 503 always means "not written".
fn postgres_options(options: PgConnectOptions, timeouts: [u64; 2]) -> PgConnectOptions {
    let [statement, lock] = timeouts;
    options.options([("statement_timeout", statement), ("lock_timeout", lock)])
}

/// Whether `table` exists (in the current schema, on PostgreSQL).
async fn has_table(on: &impl ConnectionTrait, table: &str) -> Result<bool, DbErr> {
    let backend = on.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1"
        }
        _ => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
    };
    let row = on.query_one_raw(Statement::from_sql_and_values(backend, sql, [table.into()])).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) > 0)
}

/// Why a single PostgreSQL connection to `url` fails, if it does.
async fn direct_connect_error(url: &DatabaseUrl) -> Option<String> {
    use sea_orm::sqlx::{Connection, postgres::PgConnection};
    match PgConnection::connect(url.expose()).await {
        Ok(conn) => {
            drop(conn.close().await);
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// The innermost useful text of a database error, for one-line messages.
fn cause_of(err: &DbErr) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}
