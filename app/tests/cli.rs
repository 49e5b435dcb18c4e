//! The `session-backend` binary as operators and container runtimes use
//! it: start-up, SIGTERM, one-line configuration errors, `config`,
//! `openapi`, `healthcheck` and `migrate`.
//!
//! Over 400 lines: one test per operator-facing behaviour of one process,
//! all sharing its spawn-and-wait helpers.

use std::{
    net::TcpListener,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

mod raw_http;

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
fn serve(dir: &tempfile::TempDir, port: u16) -> (Child, Duration) {
    serve_with(dir, port, |cmd| cmd.stderr(Stdio::null()))
}

/// Like [`serve`], with the command adjusted first (environment, stderr).
#[allow(clippy::zombie_processes)]
fn serve_with(
    dir: &tempfile::TempDir,
    port: u16,
    adjust: impl FnOnce(&mut Command) -> &mut Command,
) -> (Child, Duration) {
    let started = Instant::now();
    let mut command = cmd(dir);
    command.env("API_PORT", port.to_string()).stdout(Stdio::null());
    let mut child = adjust(&mut command).spawn().expect("spawn serve");
    loop {
        if healthcheck(dir, port, "/health/ready").status.success() {
            return (child, started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(20) || child.try_wait().ok().flatten().is_some() {
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
fn port_zero_on_the_command_line_is_chosen_by_the_system_and_announced() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = cmd(&dir)
        .args(["serve", "--port", "0", "--host", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the announcement");
    let address = line.trim().strip_prefix("session-backend listening on http://").expect(&line);
    let port: u16 = address.strip_prefix("127.0.0.1:").and_then(|p| p.parse().ok()).expect(address);
    assert_ne!(port, 0);
    // Its standard output is closed now (the reader is gone): serving goes on.
    assert_eq!(http(port, "GET", "/health/ready", "").0, 200);
    assert_eq!(terminate(&mut child), Some(0));
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
        &["keys", "--help"],
        &["keys", "new", "--help"],
        &["backup", "--help"],
        &["restore", "--help"],
        &["import", "file-sessions", "--help"],
        &["export", "file-sessions", "--help"],
        &["sessions", "--help"],
        &["sessions", "show", "--help"],
        &["sessions", "fork", "--help"],
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

/// One HTTP/1.1 exchange over a plain socket: `(status, body)`.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with(port, method, path, "", body)
}

/// Like [`http`], with extra header lines (each ending in `\r\n`).
fn http_with(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    raw_http::exchange(port, method, path, headers, body)
}

/// Stops a child with SIGTERM; its exit code.
fn terminate(child: &mut Child) -> Option<i32> {
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    child.wait().expect("wait").code()
}

/// The environment a Kubernetes pod of a release named `session-backend`
/// gets for its Services: service links that share our prefix.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("SESSION_BACKEND_PORT", "tcp://10.96.0.12:8001"),
    ("SESSION_BACKEND_PORT_8001_TCP", "tcp://10.96.0.12:8001"),
    ("SESSION_BACKEND_PORT_8001_TCP_ADDR", "10.96.0.12"),
    ("SESSION_BACKEND_PORT_8001_TCP_PORT", "8001"),
    ("SESSION_BACKEND_PORT_8001_TCP_PROTO", "tcp"),
    ("SESSION_BACKEND_SERVICE_HOST", "10.96.0.12"),
    ("SESSION_BACKEND_SERVICE_PORT", "8001"),
    ("SESSION_BACKEND_SERVICE_PORT_HTTP", "8001"),
    ("SESSION_BACKEND_POSTGRESQL_PORT", "tcp://10.96.0.13:5432"),
    ("SESSION_BACKEND_POSTGRESQL_PORT_5432_TCP_ADDR", "10.96.0.13"),
    ("SESSION_BACKEND_POSTGRESQL_SERVICE_HOST", "10.96.0.13"),
    ("SESSION_BACKEND_POSTGRESQL_SERVICE_PORT", "5432"),
];

#[test]
fn kubernetes_service_links_warn_once_and_the_server_starts() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let log = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&log).expect("log");
    let (mut child, _) = serve_with(&dir, port, |cmd| {
        cmd.envs(SERVICE_LINKS.iter().copied()).env("LOG_FORMAT", "json").stderr(stderr)
    });
    assert_eq!(terminate(&mut child), Some(0));
    let stderr = std::fs::read_to_string(&log).expect("log");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("name no setting")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    for (name, _) in SERVICE_LINKS {
        assert!(warnings[0].contains(name), "{name} not named: {}", warnings[0]);
    }
    // `config` says the same on standard error and shows the effective values.
    let output = cmd(&dir).envs(SERVICE_LINKS.iter().copied()).arg("config").output().expect("config");
    assert!(output.status.success());
    assert!(text(&output.stderr).starts_with("warning: "), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("port = 8001"), "{}", text(&output.stdout));
}

#[test]
fn text_settings_reach_the_database_url_as_written() {
    let dir = tempfile::tempdir().expect("dir");
    let output = cmd(&dir)
        .env("POSTGRES_HOST", "db.internal")
        .env("POSTGRES_DB", "2024")
        .env("POSTGRES_USER", "true")
        .env("POSTGRES_PASSWORD", "123456")
        .arg("config")
        .output()
        .expect("config");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains(r#"url = "postgres://true:***@db.internal:5432/2024""#), "{stdout}");
}

#[test]
fn sigterm_exits_promptly_while_clients_stall() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (mut child, _) = serve(&dir, port);
    let connect = || std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut half_header = connect();
    half_header.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n").expect("half a header");
    let mut mid_body = connect();
    mid_body
        .write_all(b"POST /api/v1/sessions HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\n\r\n{\"session_id\"")
        .expect("part of a body");
    let silent = connect();
    // A blob upload that stops arriving, and a client that asks for a
    // large value and reads none of it.
    let mut mid_upload = connect();
    mid_upload
        .write_all(b"PUT /api/v1/storage/stalled HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n")
        .and_then(|()| mid_upload.write_all(&[b'x'; 300_000]))
        .expect("part of an upload");
    let value = vec![b'v'; 48 * 1024 * 1024];
    let mut writer = connect();
    writer
        .write_all(
            format!("PUT /api/v1/storage/big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", value.len())
                .as_bytes(),
        )
        .and_then(|()| writer.write_all(&value))
        .expect("a large value");
    let mut answer = [0u8; 12];
    std::io::Read::read_exact(&mut writer, &mut answer).expect("its answer");
    assert_eq!(&answer, b"HTTP/1.1 204", "the large value was stored");
    let mut not_reading = connect();
    not_reading.write_all(b"GET /api/v1/storage/big HTTP/1.1\r\nHost: t\r\n\r\n").expect("ask for it");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(terminate(&mut child), Some(0));
    let took = started.elapsed();
    eprintln!("exit after SIGTERM with five stalled clients: {took:?}");
    assert!(took < Duration::from_secs(5), "stalled clients held the exit for {took:?}");
    drop((half_header, mid_body, silent, mid_upload, writer, not_reading));
}

#[test]
fn backup_and_restore_run_from_the_binary() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (mut child, _) = serve(&dir, port);
    let (status, _) = http(
        port,
        "POST",
        "/api/v1/sessions",
        r#"{"session_id": "kept", "metadata": {"n": 9007199254740993}}"#,
    );
    assert_eq!(status, 201);
    assert_eq!(terminate(&mut child), Some(0));
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("session-backend.db").display());
    let backups = dir.path().join("backups");
    let backup = cmd(&dir)
        .args(["backup", "--database-url", &url, "--output", &backups.display().to_string(), "--name", "b"])
        .output()
        .expect("backup");
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    let manifest = backups.join("b.manifest.json").display().to_string();
    let refused = cmd(&dir)
        .args(["restore", "--manifest", &manifest, "--database-url", &url])
        .output()
        .expect("restore");
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("--force"), "{}", text(&refused.stderr));
    for suffix in ["", "-wal", "-shm"] {
        drop(std::fs::remove_file(dir.path().join(format!("session-backend.db{suffix}"))));
    }
    let restored = cmd(&dir)
        .args(["restore", "--manifest", &manifest, "--database-url", &url])
        .output()
        .expect("restore");
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    let (mut child, _) = serve(&dir, port);
    let (status, body) = http(port, "GET", "/api/v1/sessions/kept", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("9007199254740993"), "{body}");
    assert_eq!(terminate(&mut child), Some(0));
}

/// `keys new` for `tenant`: `(key, hash)`.
fn mint(dir: &tempfile::TempDir, tenant: &str) -> (String, String) {
    let output = cmd(dir).args(["keys", "new", "--tenant", tenant, "--json"]).output().expect("run");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let minted: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(minted["tenant"], tenant);
    let (key, hash) = (minted["key"].as_str().expect("key"), minted["hash"].as_str().expect("hash"));
    assert!(key.starts_with("sbk_") && key.len() == 68, "{key}");
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
    (key.to_owned(), hash.to_owned())
}

#[test]
fn keys_new_mints_keys_the_server_accepts_and_sighup_rotates_them() {
    let dir = tempfile::tempdir().expect("dir");
    let (old_key, old_hash) = mint(&dir, "team-a");
    let (new_key, new_hash) = mint(&dir, "team-a");
    assert_ne!(old_key, new_key);
    let human = cmd(&dir).args(["keys", "new", "--tenant", "team-a"]).output().expect("run");
    let shown = text(&human.stdout);
    assert!(shown.contains("key:  sbk_") && shown.contains("line: team-a sha256:"), "{shown}");
    let refused = cmd(&dir).args(["keys", "new", "--tenant", "no spaces"]).output().expect("run");
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).starts_with("error: invalid tenant"), "{}", text(&refused.stderr));

    // A keys file that cannot be read stops start-up with one line.
    let file = dir.path().join("keys");
    let missing = cmd(&dir).env("SESSION_BACKEND_AUTH__KEYS_FILE", &file).arg("serve").output().expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("auth.keys_file"), "{}", text(&missing.stderr));

    std::fs::write(&file, format!("# production\nteam-a {old_hash}\n")).expect("keys file");
    let port = free_port();
    let (mut child, _) = serve_with(&dir, port, |cmd| {
        cmd.env("SESSION_BACKEND_AUTH__KEYS_FILE", &file)
            // Only SIGHUP reloads within this test.
            .env("SESSION_BACKEND_AUTH__RELOAD_INTERVAL_MS", "3600000")
            .stderr(Stdio::null())
    });
    let create = r#"{"session_id": "s1"}"#;
    let bearer = |key: &str| format!("Authorization: Bearer {key}\r\n");
    assert_eq!(http(port, "POST", "/api/v1/sessions", create).0, 401);
    assert_eq!(http_with(port, "POST", "/api/v1/sessions", &bearer(&old_key), create).0, 201);
    assert_eq!(http_with(port, "GET", "/api/v1/sessions/s1", &bearer(&new_key), "").0, 401);

    std::fs::write(&file, format!("team-a {new_hash}\n")).expect("keys file");
    let hup = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().expect("kill");
    assert!(hup.success());
    let started = Instant::now();
    while http_with(port, "GET", "/api/v1/sessions/s1", &bearer(&new_key), "").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(5), "SIGHUP did not reload the keys");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http_with(port, "GET", "/api/v1/sessions/s1", &bearer(&old_key), "").0, 401);
    assert_eq!(terminate(&mut child), Some(0), "SIGHUP must not stop the server; SIGTERM exits 0");
}

#[test]
fn serving_without_keys_warns_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (mut child, _) = serve_with(&dir, port, |cmd| cmd.stderr(Stdio::piped()));
    assert_eq!(http(port, "POST", "/api/v1/sessions", r#"{"session_id": "s1"}"#).0, 201);
    assert_eq!(terminate(&mut child), Some(0));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut log).expect("log");
    assert!(log.contains("authentication is off") && log.contains("auth.keys_file"), "{log}");
}

/// One POST over a fresh connection: the status, or why there was none.
fn post_once(port: u16, path: &str, body: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| format!("read: {e}"))?;
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| "no response".to_owned())
}

#[test]
fn sigterm_under_load_completes_every_accepted_request() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (mut child, _) = serve(&dir, port);
    let writers = 12;
    assert_eq!(http(port, "POST", "/api/v1/sessions", r#"{"session_id": "load"}"#).0, 201);
    for i in 0..writers {
        let agent = format!(r#"{{"agent_id": "w{i}", "state": {{}}, "conversation_manager_state": {{}}}}"#);
        assert_eq!(http(port, "POST", "/api/v1/sessions/load/agents", &agent).0, 201);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..writers)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut acked, mut statuses, mut unanswered) = (Vec::new(), Vec::new(), Vec::new());
                let path = format!("/api/v1/sessions/load/agents/w{i}/messages");
                let mut id = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let body =
                        format!(r#"{{"message_id": {id}, "message": {{"role": "user", "content": []}}}}"#);
                    match post_once(port, &path, &body) {
                        Ok(status) => {
                            statuses.push(status);
                            if status == 201 {
                                acked.push(id);
                                id += 1;
                            }
                        }
                        // Refused: the server no longer accepts; it is stopping.
                        Err(e) if e.starts_with("connect") => break,
                        Err(e) => unanswered.push(e),
                    }
                }
                (acked, statuses, unanswered)
            })
        })
        .collect();
    // Requests whose bodies are still arriving when SIGTERM comes.
    let slow: Vec<_> = (0..3)
        .map(|i| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let body = format!(r#"{{"session_id": "slow-{i}"}}"#);
            let head = format!(
                "POST /api/v1/sessions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).expect("head");
            stream.write_all(&body.as_bytes()[..5]).expect("part of the body");
            (stream, body)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let slow_statuses: Vec<String> = slow
        .into_iter()
        .map(|(mut stream, body)| {
            stream.write_all(&body.as_bytes()[5..]).expect("rest of the body");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).expect("answer");
            answer.split_whitespace().nth(1).unwrap_or_default().to_owned()
        })
        .collect();
    let code = child.wait().expect("wait").code();
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let results: Vec<_> = threads.into_iter().map(|t| t.join().expect("writer")).collect();
    assert_eq!(code, Some(0), "exit code after SIGTERM under load");
    assert!(took < Duration::from_secs(10), "exit took {took:?} (the grace period is 15 s)");
    assert_eq!(slow_statuses, ["201", "201", "201"], "requests in flight at SIGTERM complete");
    let answered: usize = results.iter().map(|r| r.1.len()).sum();
    let unanswered: Vec<&String> = results.iter().flat_map(|r| &r.2).collect();
    for (_, statuses, _) in &results {
        assert!(statuses.iter().all(|s| *s == 201), "every answer is a success: {statuses:?}");
    }
    eprintln!(
        "SIGTERM under load: {answered} requests answered (all 201), {} without an answer ({:?}), exit 0 after {took:?}",
        unanswered.len(),
        unanswered
    );
    assert!(answered > 100, "too little load: {answered}");
    // Requests on connections the server took were all answered. A
    // connection the kernel completes in the instant between the last
    // accept and the listener closing is reset unanswered (it never
    // reached the server): at most one such.
    assert!(unanswered.len() <= 1, "requests the server took went unanswered: {unanswered:?}");
    // What was acknowledged is stored.
    let (mut child, _) = serve(&dir, port);
    for (i, (acked, _, _)) in results.iter().enumerate() {
        let (status, body) =
            http_get(port, &format!("/api/v1/sessions/load/agents/w{i}/messages?offset=0&limit=10000"));
        assert_eq!(status, 200);
        let listed: serde_json::Value = serde_json::from_str(&body).expect("json");
        let stored: Vec<i64> = listed["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["message_id"].as_i64().expect("id"))
            .collect();
        assert!(
            acked.iter().all(|id| stored.contains(id)),
            "writer {i}: acknowledged {acked:?}, stored {stored:?}"
        );
    }
    for i in 0..3 {
        assert_eq!(http_get(port, &format!("/api/v1/sessions/slow-{i}")).0, 200);
    }
    assert_eq!(terminate(&mut child), Some(0));
}

/// A GET as HTTP/1.0, so that a streamed body comes unchunked.
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}
