//! The binary as a running server process, for the tests that measure or
//! kill it (`memory.rs`, `crash.rs`).

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The binary under test; `SESSION_BACKEND_BIN` runs another build.
pub fn binary() -> String {
    std::env::var("SESSION_BACKEND_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_session-backend").to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// The server process, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

/// Starts the binary on `database_url` with `env` besides, working (and
/// logging) in `dir`; the process and its base URL once it is ready.
pub async fn start(database_url: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> (Running, String) {
    let port = free_port();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log"));
    let child = Command::new(binary())
        .current_dir(dir)
        .env_clear()
        .env("API_PORT", port.to_string())
        .env("DATABASE_URL", database_url)
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log.expect("log file"))
        .spawn()
        .expect("spawn the server");
    let server = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/health/ready")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(30), "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, base)
}

/// A PostgreSQL schema of its own under `TEST_DATABASE_URL`, if set: runs
/// `work` with its URL and drops it after.
pub async fn with_postgres_schema<T, F: std::future::Future<Output = T>>(
    name: &str,
    work: impl FnOnce(String) -> F,
) -> Option<T> {
    let base = std::env::var("TEST_DATABASE_URL").ok()?;
    let schema = format!("{name}_{}", std::process::id());
    let admin = sea_orm::Database::connect(&base).await.expect("admin");
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let done = work(format!("{base}{separator}options=-c%20search_path%3D{schema}")).await;
    admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await.expect("drop schema");
    Some(done)
}
