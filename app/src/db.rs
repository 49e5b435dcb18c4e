//! The database connection: pool set-up per backend, migrations under a
//! lock, and the probes behind the health endpoints.

use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use crate::config::{Backend, Config, ConfigError, DatabaseUrl};

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
    conn: DatabaseConnection,
    backend: Backend,
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
    /// Opens the pool and checks that the database answers.
    pub async fn connect(config: &Config) -> Result<Self, StartError> {
        let url = config.database_url()?;
        let backend = url
            .backend()
            .ok_or_else(|| ConfigError::from_message(format!("unsupported database.url `{url}`")))?;
        let db = &config.database;
        let wait = config.acquire_timeout();
        let mut options = ConnectOptions::new(url.expose());
        options
            .max_connections(db.max_connections)
            .min_connections(1)
            .acquire_timeout(wait)
            .connect_timeout(wait)
            .sqlx_logging(false)
            // Hot connections go straight to work; only ones idle for a
            // while are pinged first, so a restarted database is noticed.
            .test_before_acquire_if_idle_for(Duration::from_secs(1));
        match backend {
            Backend::Sqlite => {
                let in_memory = url.expose().contains(":memory:") || url.expose().contains("mode=memory");
                if in_memory {
                    // Every connection to `:memory:` is its own database.
                    options.max_connections(1).idle_timeout(None).max_lifetime(None);
                }
                options.map_sqlx_sqlite_opts(move |o| {
                    o.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .foreign_keys(true)
                        .busy_timeout(wait)
                        // Rows a streamed listing may have in flight.
                        .row_buffer_size(4)
                });
            }
            Backend::Postgres => {
                // The database gives up on a statement before the request
                // deadline does, so a 503 always means "not written".
                let statement = db.statement_timeout_ms;
                let lock = db.lock_timeout_ms;
                options
                    .map_sqlx_postgres_opts(move |o| {
                        o.options([("statement_timeout", statement), ("lock_timeout", lock)])
                    })
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
        let conn = match sea_orm::Database::connect(options).await {
            Ok(conn) => conn,
            Err(e) => {
                let cause = match backend {
                    // The pool only says it timed out; one plain connection
                    // attempt tells why (refused, bad password, no database…).
                    Backend::Postgres => direct_connect_error(&url).await.unwrap_or_else(|| cause_of(&e)),
                    Backend::Sqlite => cause_of(&e),
                };
                return Err(StartError::Connect { url, cause });
            }
        };
        Ok(Self { conn, backend, url })
    }

    /// The sea-orm connection every store function takes.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
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
                let txn = self.conn.begin().await?;
                txn.execute_unprepared(MIGRATION_LOCK).await?;
                Migrator::up(&txn, None).await?;
                txn.commit().await
            }
            Backend::Sqlite => Migrator::up(&self.conn, None).await,
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
        let pending = Migrator::get_pending_migrations_read_only(&self.conn)
            .await
            .map_err(|e| StartError::Migrate { url: self.url.clone(), cause: cause_of(&e) })?
            .len();
        if pending > 0 {
            return Err(StartError::OutOfDate { url: self.url.clone(), pending });
        }
        Ok(())
    }

    /// Runs `SELECT 1` within `timeout`; the round-trip time on success,
    /// else a fixed sentence for the probe's answer. The cause (which may
    /// name hosts and users) goes to the log only.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        match tokio::time::timeout(timeout, self.conn.execute_unprepared("SELECT 1")).await {
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
        if !has_table(&self.conn, "seaql_migrations").await? {
            return Ok(None);
        }
        Ok(Migrator::get_migration_with_status_read_only(&self.conn)
            .await?
            .into_iter()
            .filter(|m| m.status() == migration::MigrationStatus::Applied)
            .map(|m| m.name().to_owned())
            .last())
    }

    /// Current pool figures.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle, max) = match self.backend {
            Backend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
            Backend::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
        };
        PoolStats { size, idle: u32::try_from(idle).unwrap_or(u32::MAX), max }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(self) {
        if let Err(e) = self.conn.close().await {
            tracing::warn!(error = %e, "closing the database pool");
        }
    }
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
