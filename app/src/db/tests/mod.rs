//! Component tests of the write path, each against a real database and
//! without HTTP: the PostgreSQL pool ([`pool`]), the SQLite writer
//! ([`writer`]) and transactions on both ([`transactions`]); grouped
//! appends are tested in `store::appender`, [`super::groups`] on paused time.
//!
//! SQLite runs in a temporary directory. PostgreSQL runs at
//! `TEST_DATABASE_URL` in a schema of each test's own; without it these
//! tests say so and pass, unless `REQUIRE_POSTGRES=1` (CI).

mod inline;
mod pool;
mod transactions;
mod writer;

use crate::{
    config::{Backend, Config},
    db::Database,
};

/// The PostgreSQL server tests use, if any.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set"
            );
            eprintln!("skipping the PostgreSQL variant: TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// A migrated database of its own that goes away with this value.
pub struct Scratch {
    pub db: Database,
    /// The URL it was opened with.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

impl Scratch {
    /// A migrated database of `backend` with `adjust`'s settings; `None`
    /// when PostgreSQL is not available (and not required).
    pub async fn new(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        let (url, dir, schema) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let base = postgres_url()?;
                let schema = format!("c_{}", uuid::Uuid::new_v4().simple());
                run_sql(&base, &format!("CREATE SCHEMA {schema}")).await;
                let separator = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
                (url, None, Some((base, schema)))
            }
        };
        let mut config = Config::for_database(&url);
        config.database.max_connections = 4;
        adjust(&mut config);
        let db = Database::connect(&config).await.expect("connect");
        db.prepare(true).await.expect("migrate");
        Some(Self { db, url, _dir: dir, schema })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else { return };
        // Drop cannot wait for async work: a thread of its own does it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(run_sql(&base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")));
            Some(())
        });
        drop(dropped.join());
    }
}

/// Runs `sql` on a connection of its own to `url`.
pub async fn run_sql(url: &str, sql: &str) {
    use sea_orm::sqlx::{Connection, Executor, postgres::PgConnection};
    let mut conn = PgConnection::connect(url).await.expect("connect");
    conn.execute(sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql.to_owned()))).await.expect(sql);
    drop(conn.close().await);
}
