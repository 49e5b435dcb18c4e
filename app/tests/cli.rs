//! The `session-backend` binary as operators and container runtimes use
//! it: start-up, SIGTERM, one-line configuration errors, `config`,
//! `openapi`, `healthcheck` and `migrate`.

use std::{
    net::TcpListener,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_session-backend");

/// A command with a clean environment apart from what the test sets.
fn cmd(dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn text(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

fn healthcheck(dir: &tempfile::TempDir, port: u16, path: &str) -> Output {
    cmd(dir)
        .args([
            "healthcheck",
            "--address",
            &format!("127.0.0.1:{port}"),
            "--path",
            path,
            "--timeout-secs",
            "2",
        ])
        .output()
        .expect("run healthcheck")
}

/// Starts `serve` on a free port and waits for `/health`; returns the
/// child and how long the first 200 took. The caller waits for the child.
#[allow(clippy::zombie_processes)]
fn serve(dir: &tempfile::TempDir, port: u16) -> (Child, Duration) {
    let started = Instant::now();
    let mut child = cmd(dir)
        .env("API_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    loop {
        if healthcheck(dir, port, "/health").status.success() {
            return (child, started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(20) {
            drop(child.kill());
            drop(child.wait());
            panic!("server did not come up");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn serves_with_zero_configuration_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (mut child, first_ok) = serve(&dir, port);
    eprintln!("time from process start to first 200 on /health (SQLite): {first_ok:?}");
    assert!(dir.path().join("session-backend.db").exists(), "default SQLite file in the working directory");
    assert!(healthcheck(&dir, port, "/health/ready").status.success());
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "SIGTERM must drain and exit 0");
    let down = healthcheck(&dir, port, "/health");
    assert_eq!(down.status.code(), Some(1));
    assert!(text(&down.stderr).contains("unhealthy"), "{}", text(&down.stderr));
}

#[test]
fn bad_configuration_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    for (name, value, setting) in [
        ("LOG_LEVEL", "loud", "log.level"),
        ("API_PORT", "0", "server.port"),
        ("API_PORT", "70000", "server.port"),
        ("DATABASE_URL", "mysql://db/x", "database.url"),
        ("DATABASE_URL", "postgres://u:pw@127.0.0.1:1/x", "database.url"),
        ("SESSION_BACKEND_SERVER__BODY_LIMIT_BYTES", "huge", "server.body_limit_bytes"),
    ] {
        let output = cmd(&dir).env(name, value).arg("serve").output().expect("run");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}={value}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}={value}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(setting), "{name}={value}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("pw@"), "{stderr}");
    }
}

#[test]
fn config_shows_effective_values_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("dir");
    let output = cmd(&dir)
        .env("POSTGRES_HOST", "db.internal")
        .env("POSTGRES_USER", "app")
        .env("POSTGRES_PASSWORD", "hunter2")
        .env("API_HOST", "0.0.0.0")
        .arg("config")
        .output()
        .expect("run");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("postgres://app:***@db.internal:5432/session_backend"), "{stdout}");
    assert!(stdout.contains("host = \"0.0.0.0\""), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn openapi_prints_the_document() {
    let dir = tempfile::tempdir().expect("dir");
    let output = cmd(&dir).arg("openapi").output().expect("run");
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("\"/api/v1/sessions/{session_id}/agents/{agent_id}/messages/batch\""),
        "{stdout}"
    );
    assert!(!dir.path().join("session-backend.db").exists(), "openapi must not touch a database");
}

#[test]
fn every_command_explains_itself() {
    let dir = tempfile::tempdir().expect("dir");
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["migrate", "up", "--help"],
        &["migrate", "down", "--help"],
        &["migrate", "status", "--help"],
        &["migrate", "fresh", "--help"],
        &["openapi", "--help"],
        &["healthcheck", "--help"],
        &["config", "--help"],
    ] {
        let output = cmd(&dir).args(args).output().expect("run");
        assert!(output.status.success(), "{args:?}");
        assert!(text(&output.stdout).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn migrate_commands_manage_the_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |args: &[&str]| cmd(&dir).args(args).output().expect("run");
    let status = run(&["migrate", "status"]);
    assert!(text(&status.stdout).contains("pending"), "{}", text(&status.stdout));
    assert!(run(&["migrate", "up"]).status.success());
    let status = text(&run(&["migrate", "status"]).stdout);
    assert!(status.contains("applied") && !status.contains("pending"), "{status}");
    let refused = run(&["migrate", "fresh"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("--yes"));
    assert!(run(&["migrate", "fresh", "--yes"]).status.success());
    assert!(run(&["migrate", "down", "--yes"]).status.success());
    assert!(text(&run(&["migrate", "status"]).stdout).contains("pending"));
    // With auto_migrate off, serve refuses the out-of-date schema.
    let output = cmd(&dir).env("SESSION_BACKEND_DATABASE__AUTO_MIGRATE", "false").output().expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("session-backend migrate up"), "{}", text(&output.stderr));
}
