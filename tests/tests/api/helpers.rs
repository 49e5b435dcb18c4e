//! `spawn_app(backend)`: the real server on port 0 against a database of
//! its own, and typed request helpers.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (one schema per test, dropped
//! when the test ends), else from a reusable testcontainers PostgreSQL
//! (`TEST_POSTGRES_IMAGE` overrides the image). Without either, PostgreSQL
//! tests say so and pass, unless `REQUIRE_POSTGRES=1`. `TEST_LOG=1` shows
//! the server's log of a failing test (`RUST_LOG` picks the level).
//!
//! With `TEST_POOLER_URL` (a transaction-mode PgBouncer in front of
//! `TEST_DATABASE_URL`'s server, as `.ci/pgbouncer.sh` starts one), the
//! servers reach PostgreSQL through it (`database.pooler = "transaction"`,
//! migrations on the direct URL). A pooler passes no startup options, so
//! each test then gets a role of its own whose default `search_path` is
//! its schema.
//!
//! Over 400 lines: it is every helper the API tests share (servers,
//! databases, requests, assertions), kept in one place on purpose.

use std::{
    net::SocketAddr,
    sync::{Once, OnceLock},
};

use reqwest::{Method, StatusCode, header::HeaderMap};
use sea_orm::ConnectionTrait;
use serde_json::Value;
use session_backend::{
    Server,
    config::{Config, DatabaseUrl, Pooler},
};
use tokio::{sync::oneshot, task::JoinHandle};

/// Which database a test runs against: the server's own notion of one.
pub use session_backend::config::Backend;

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// The URL the server connects with (for tests that reach in).
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _database: Option<Fresh>,
}

/// A response: status, headers and body parsed as JSON (`Null` if empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `ETag` header, asserted present.
    #[track_caller]
    pub fn etag(&self) -> String {
        let tag = self.headers.get("etag").expect("an ETag header").to_str().expect("ASCII ETag");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2, "strong ETag: {tag}");
        tag.to_owned()
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts an error status with the contract's envelope and kind.
    #[track_caller]
    pub fn expect_error(self, status: u16, kind: &str) -> String {
        let request_id = self.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = self.expect(status);
        let detail = &body["detail"];
        assert_eq!(detail["error"], kind, "envelope: {body}");
        assert!(detail["message"].as_str().is_some_and(|m| !m.is_empty()), "envelope: {body}");
        assert_eq!(detail["request_id"].as_str(), request_id.as_deref(), "envelope: {body}");
        detail["message"].as_str().unwrap_or_default().to_owned()
    }
}

/// The `message_id`s of a message listing, in order.
pub fn message_ids(listing: &Value) -> Vec<i64> {
    listing["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["message_id"].as_i64().expect("id"))
        .collect()
}

/// Percent-encodes one path segment.
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `body` (JSON) with `method` to `path`.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(body) = body {
            req = req.json(body);
        }
        Self::reply(req.send().await.expect("request failed")).await
    }

    /// Sends a raw body with a JSON content type.
    pub async fn call_raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let req = self.client.request(method, self.url(path)).header("content-type", "application/json");
        Self::reply(req.body(body).send().await.expect("request failed")).await
    }

    pub async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("reading the body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `PUT` with an `If-Match` header.
    pub async fn put_if_match(&self, path: &str, body: &Value, if_match: &str) -> Reply {
        let req = self.client.put(self.url(path)).header("if-match", if_match).json(body);
        Self::reply(req.send().await.expect("request failed")).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a session, asserting 201.
    pub async fn session(&self, id: &str) -> Value {
        self.post("/api/v1/sessions", &serde_json::json!({"session_id": id})).await.expect(201)
    }

    /// Creates a session and an agent in it, asserting 201s.
    pub async fn agent(&self, session: &str, agent: &str) -> Value {
        self.session(session).await;
        self.agent_in(session, agent).await
    }

    /// Creates an agent in an existing session, asserting 201.
    pub async fn agent_in(&self, session: &str, agent: &str) -> Value {
        self.post(
            &format!("/api/v1/sessions/{}/agents", enc(session)),
            &serde_json::json!({"agent_id": agent, "state": {}, "conversation_manager_state": {}}),
        )
        .await
        .expect(201)
    }

    /// Path of an agent's messages.
    pub fn messages_path(session: &str, agent: &str) -> String {
        format!("/api/v1/sessions/{}/agents/{}/messages", enc(session), enc(agent))
    }

    /// Asks the server to stop and waits for it (draining in-flight work).
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await.expect("server task panicked"),
            None => Ok(()),
        }
    }

    /// Triggers shutdown without waiting.
    pub fn begin_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server already stopped")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A configuration for tests: port 0, a small pool, the given database.
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::for_database(database_url);
    if let Some(direct) = past_the_pooler(database_url) {
        config.database.pooler = Pooler::Transaction;
        config.database.direct_url = Some(DatabaseUrl::new(direct));
    }
    config.server.port = 0;
    config.database.max_connections = 5;
    config
}

/// Starts the server against a fresh database of `backend`; `None` (after
/// saying why) when PostgreSQL is unavailable and not required.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with a chance to adjust the configuration.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let database = fresh_database(backend).await?;
    let mut config = test_config(&database.url);
    adjust(&mut config);
    Some(start(config, Some(database)).await)
}

/// An empty database that goes away with this value: a SQLite file in a
/// temporary directory, or a PostgreSQL schema dropped on drop.
pub struct Fresh {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
    /// The schema's name is also a role's, made for the test.
    role: bool,
}

impl Fresh {
    /// The URL of the database itself, past the pooler if there is one:
    /// for looking inside it.
    pub fn direct_url(&self) -> String {
        past_the_pooler(&self.url).unwrap_or_else(|| self.url.clone())
    }

    /// A test configuration that reaches this database at `url` (a proxy
    /// in front of it, say), through the pooler if there is one.
    pub fn config_via(&self, url: &str) -> Config {
        let mut config = test_config(url);
        if self.role {
            config.database.pooler = Pooler::Transaction;
            config.database.direct_url = Some(DatabaseUrl::new(self.direct_url()));
        }
        config
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else { return };
        let role = self.role;
        // Drop cannot wait for async work: a thread of its own does it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&base).await.ok()?;
                admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.ok()?;
                if role {
                    admin.execute_unprepared(&format!("DROP ROLE IF EXISTS {schema}")).await.ok()?;
                }
                admin.close().await.ok()
            })
        });
        drop(dropped.join());
    }
}

/// An empty database of `backend`; `None` when PostgreSQL is unavailable.
pub async fn fresh_database(backend: Backend) -> Option<Fresh> {
    Some(match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            Fresh { url, _dir: Some(dir), schema: None, role: false }
        }
        Backend::Postgres => fresh_postgres_schema().await?,
    })
}

/// Starts a server with exactly `config`; `database` lives as long as it.
pub async fn start(config: Config, database: Option<Fresh>) -> TestApp {
    init_test_log();
    let database_url = config.direct_database_url().expect("database url").expose().to_owned();
    let server = Server::start(config).await.expect("server start");
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        database_url,
        shutdown: Some(tx),
        server: Some(handle),
        _database: database,
    }
}

/// With `TEST_LOG=1`, the server's log goes to the test's captured output.
fn init_test_log() {
    static ONCE: Once = Once::new();
    if std::env::var("TEST_LOG").as_deref() != Ok("1") {
        return;
    }
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug,sqlx=warn,hyper=info"));
        drop(tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init());
    });
}

/// One connection to the test's database, for looking inside it. No pool
/// maintenance task runs (sqlx's can spin for good when it reads an idle
/// count that a concurrent release has not yet raised).
pub async fn direct(url: &str) -> sea_orm::DatabaseConnection {
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).min_connections(0).idle_timeout(None).max_lifetime(None).sqlx_logging(false);
    sea_orm::Database::connect(options).await.expect("connecting to the test database")
}

/// The first column of the first row of `sql`, a count or a sum.
pub async fn scalar(url: &str, sql: &str) -> i64 {
    let db = direct(url).await;
    let row =
        db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql.to_owned())).await;
    let n = row.expect("query").expect("a row").try_get_by_index::<i64>(0).expect("an integer");
    db.close().await.ok();
    n
}

/// Whether PostgreSQL tests must run (CI).
pub fn postgres_required() -> bool {
    std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// `TEST_POSTGRES_IMAGE` as (name, tag); default the official image.
pub fn postgres_image() -> (String, String) {
    let image = std::env::var("TEST_POSTGRES_IMAGE").unwrap_or_else(|_| "postgres:16".into());
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image, "latest".into()),
    }
}

/// The server-level URL tests create their schemas in.
async fn postgres_base_url() -> Option<String> {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return Some(url);
    }
    static BASE: OnceLock<tokio::sync::Mutex<Option<Result<String, String>>>> = OnceLock::new();
    let mut slot = BASE.get_or_init(|| tokio::sync::Mutex::new(None)).lock().await;
    if slot.is_none() {
        *slot = Some(reusable_container().await);
    }
    match slot.as_ref() {
        Some(Ok(url)) => Some(url.clone()),
        Some(Err(why)) => {
            assert!(!postgres_required(), "REQUIRE_POSTGRES=1 but PostgreSQL is unavailable: {why}");
            eprintln!("skipping the PostgreSQL variant: no TEST_DATABASE_URL and {why}");
            None
        }
        None => None,
    }
}

/// One PostgreSQL container shared by every test run on this machine
/// (`session-backend-test-postgres`, kept between runs; remove it with
/// `docker rm -f session-backend-test-postgres`).
async fn reusable_container() -> Result<String, String> {
    use testcontainers::{ImageExt, ReuseDirective, runners::AsyncRunner};
    let (name, tag) = postgres_image();
    let container = testcontainers_modules::postgres::Postgres::default()
        .with_name(name)
        .with_tag(tag)
        .with_container_name("session-backend-test-postgres")
        .with_reuse(ReuseDirective::Always)
        .start()
        .await
        .map_err(|e| format!("testcontainers could not start PostgreSQL ({e})"))?;
    let port = container.get_host_port_ipv4(5432).await.map_err(|e| e.to_string())?;
    // Reused on purpose: dropping the handle must not stop it.
    std::mem::forget(container);
    Ok(format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"))
}

/// Creates a schema of its own for one test; dropped with the value.
pub async fn fresh_postgres_schema() -> Option<Fresh> {
    let base = postgres_base_url().await?;
    Some(schema_in(&base).await)
}

/// Creates a new schema in the database at `base`; its URL puts it first
/// on the search path (through the pooler, if there is one).
pub async fn schema_in(base: &str) -> Fresh {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(base).await.expect("connecting to TEST_DATABASE_URL");
    admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.expect("create schema");
    let pooler = pooler_url();
    if pooler.is_some() {
        admin
            .execute_unprepared(&format!(
                "CREATE ROLE {schema} LOGIN PASSWORD '{schema}'; \
                 GRANT USAGE, CREATE ON SCHEMA {schema} TO {schema}; \
                 ALTER ROLE {schema} SET search_path = {schema}"
            ))
            .await
            .expect("create the test's role (TEST_DATABASE_URL's role needs CREATEROLE)");
    }
    admin.close().await.ok();
    let url = match &pooler {
        Some(pooler) => with_login(pooler, &schema),
        None => {
            let separator = if base.contains('?') { '&' } else { '?' };
            format!("{base}{separator}options=-c%20search_path%3D{schema}")
        }
    };
    Fresh { url, _dir: None, schema: Some((base.to_owned(), schema)), role: pooler.is_some() }
}

/// `TEST_POOLER_URL`, if set.
fn pooler_url() -> Option<String> {
    std::env::var("TEST_POOLER_URL").ok().filter(|url| !url.is_empty())
}

/// `url` logging in as `role`, whose password is its name.
fn with_login(url: &str, role: &str) -> String {
    let mut url = url::Url::parse(url).expect("a PostgreSQL URL");
    url.set_username(role).and_then(|()| url.set_password(Some(role))).expect("a URL with a login");
    url.into()
}

/// For a URL of the pooler, the same login on the database itself.
fn past_the_pooler(url: &str) -> Option<String> {
    let (pooler, direct) = (url::Url::parse(&pooler_url()?).ok()?, std::env::var("TEST_DATABASE_URL").ok()?);
    let (mut url, direct) = (url::Url::parse(url).ok()?, url::Url::parse(&direct).ok()?);
    if (url.host_str(), url.port()) != (pooler.host_str(), pooler.port()) {
        return None;
    }
    url.set_host(direct.host_str()).ok()?;
    url.set_port(direct.port()).ok()?;
    Some(url.into())
}

/// Runs a test body against SQLite and PostgreSQL: for each listed async
/// `fn(Backend)`, generates `sqlite::name` and `postgres::name` tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )+
        }
    };
}

/// `let app = app!(backend);` — spawns the app or returns early when the
/// backend is unavailable (and not required).
#[macro_export]
macro_rules! app {
    ($backend:expr) => {
        match $crate::helpers::spawn_app($backend).await {
            Some(app) => app,
            None => return,
        }
    };
}
