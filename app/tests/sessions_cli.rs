//! `session-backend sessions …` against the real binary serving on SQLite:
//! list, show, export, import, fork and delete, as text for people and
//! `--json` for scripts; colours and progress only on a terminal (run
//! under `script`, which gives the command a pseudo-terminal), never in a
//! pipe; refusals in one line. Also: the long commands' progress, and
//! server logs in a file without colour codes.

use std::{path::Path, process::Command};

use serde_json::{Value, json};

#[allow(dead_code)]
mod running;

const BIN: &str = env!("CARGO_BIN_EXE_session-backend");
const ESC: char = '\u{1b}';

/// The service with one key, seeded over HTTP; its URL, key and directory.
struct Service {
    _server: running::Running,
    base: String,
    key: String,
    dir: tempfile::TempDir,
}

impl Service {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let key = session_backend::domain::keys::mint().expect("key");
        let keys = format!("cli {}", key.hash);
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
        let env =
            [("SESSION_BACKEND_AUTH__KEYS", keys.as_str()), ("LOG_FORMAT", "text"), ("LOG_LEVEL", "info")];
        let (server, base) = running::start(&url, dir.path(), &env).await;
        let service = Self { _server: server, base, key: key.key, dir };
        service.seed().await;
        service
    }

    async fn post(&self, path: &str, body: Value) {
        let reply = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert!(reply.status().is_success(), "POST {path}: {}", reply.status());
    }

    async fn seed(&self) {
        self.post("/api/v1/sessions", json!({"session_id": "trip plan", "metadata": {"who": "ada"}})).await;
        self.post(
            "/api/v1/sessions/trip%20plan/agents",
            json!({"agent_id": "planner", "state": {}, "conversation_manager_state": {}}),
        )
        .await;
        let messages = json!({"messages": [
            {"message_id": 0, "message": {"role": "user", "content": [{"text": "Plan a day in Kyoto.\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7}"}]}},
            {"message_id": 1, "message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "Check the weather first."}}},
                {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Kyoto"}}}]}},
            {"message_id": 2, "message": {"role": "user", "content": [
                {"toolResult": {"toolUseId": "t1", "status": "success", "content": [{"text": "Sunny, 18 °C"}]}}]}},
            {"message_id": 3, "message": {"role": "assistant", "content": [
                {"text": "Temples in the morning, the river at dusk."},
                {"image": {"format": "jpeg", "source": {"bytes": {"__bytes_encoded__": true, "data": "AAAAAAAA"}}}}]}},
        ]});
        self.post("/api/v1/sessions/trip%20plan/agents/planner/messages/batch", messages).await;
        let snapshot = json!({"scope": "agent", "schema_version": "1.0", "created_at": "2026-12-05T08:00:00Z",
            "data": {"messages": [{"role": "user", "content": [{"text": "Kept as a snapshot."}]}]}, "app_data": {}});
        let key = "session/snap-only/scopes/agent/helper/snapshots/snapshot_latest.json";
        let reply = reqwest::Client::new()
            .put(format!("{}/api/v1/storage/{key}", self.base))
            .bearer_auth(&self.key)
            .body(snapshot.to_string())
            .send()
            .await
            .expect("put");
        assert_eq!(reply.status(), 204);
    }

    /// `session-backend sessions args…` with the URL and key from the
    /// environment, piped; (success, stdout, stderr).
    fn sessions(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(BIN)
            .arg("sessions")
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("SESSION_BACKEND_URL", &self.base)
            .env("SESSION_BACKEND_API_KEY", &self.key)
            .output()
            .expect("run");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    }

    /// The same on a pseudo-terminal (`script`); whether it succeeded and
    /// everything it printed.
    fn on_terminal(&self, args: &str) -> (bool, String) {
        let line = format!("{BIN} sessions {args}");
        terminal(
            &line,
            self.dir.path(),
            &[("SESSION_BACKEND_URL", &self.base), ("SESSION_BACKEND_API_KEY", &self.key)],
        )
    }
}

/// Runs `line` under `script`, so it sees a terminal; whether it
/// succeeded and what it printed.
fn terminal(line: &str, dir: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .output()
        .expect("script (util-linux) runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_shown_exported_imported_forked_and_deleted() {
    let service = Service::start().await;

    let (ok, listed, _) = service.sessions(&["list"]);
    assert!(ok, "{listed}");
    assert!(listed.contains("1 sessions (page 1 of 1)") && listed.contains("trip plan"), "{listed}");
    assert!(listed.contains("snapshot sessions") && listed.contains("snap-only"), "{listed}");
    assert!(!listed.contains(ESC), "no colour codes in a pipe");
    let (_, json_list, _) = service.sessions(&["list", "--json"]);
    let json_list: Value = serde_json::from_str(&json_list).expect("JSON");
    assert_eq!(
        (json_list["total"].clone(), json_list["snapshot_sessions"].clone()),
        (json!(1), json!(["snap-only"]))
    );

    let (ok, shown, _) = service.sessions(&["show", "trip plan"]);
    assert!(ok, "{shown}");
    // Stored control characters are shown, never sent to the terminal.
    assert!(!shown.contains(ESC) && !shown.contains('\u{7}'), "{shown:?}");
    assert!(shown.contains("Kyoto.\\u{1b}[2J\\u{1b}]52;c;cHduZWQ=\\u{7}"), "{shown}");
    for line in [
        "session trip plan",
        "agent planner",
        "[0] user",
        "    Plan a day in Kyoto.",
        "    (reasoning) Check the weather first.",
        "    → weather {\"city\":\"Kyoto\"}",
        "    ← weather (success)",
        "      Sunny, 18 °C",
        "    [image, jpeg, 6 B]",
        "(4 messages)",
    ] {
        assert!(shown.contains(line), "`{line}` missing from:\n{shown}");
    }
    let (_, snapshot, _) = service.sessions(&["show", "snap-only"]);
    assert!(
        snapshot.contains("agent helper (latest snapshot") && snapshot.contains("Kept as a snapshot."),
        "{snapshot}"
    );

    // Export to a file, delete, import it back: the same document.
    let file = service.dir.path().join("trip.json");
    let (ok, _, err) = service.sessions(&["export", "trip plan", "-o", file.to_str().expect("path")]);
    assert!(ok && err.is_empty(), "no progress in a pipe: {err}");
    let exported = std::fs::read(&file).expect("exported");
    let (ok, _, err) = service.sessions(&["delete", "trip plan"]);
    assert!(!ok && err.contains("add --yes"), "no silent delete without a terminal: {err}");
    let (ok, said, _) = service.sessions(&["delete", "trip plan", "--yes"]);
    assert!(ok && said.trim() == "deleted trip plan", "{said}");
    let (ok, _, err) = service.sessions(&["show", "trip plan"]);
    assert!(!ok && err.contains("404 NotFoundError"), "{err}");
    let (ok, said, _) = service.sessions(&["import", file.to_str().expect("path")]);
    assert!(ok && said.trim() == "imported trip plan", "{said}");
    let (_, again, _) = service.sessions(&["export", "trip plan"]);
    assert_eq!(again.as_bytes(), exported, "export → import → export");
    // A snapshot session goes the same way, its blobs with it.
    let (ok, snap, _) = service.sessions(&["export", "snap-only"]);
    assert!(ok && snap.contains(r#""session":null"#), "{snap}");
    service.sessions(&["delete", "snap-only", "--yes"]);
    let snap_file = service.dir.path().join("snap.json");
    std::fs::write(&snap_file, &snap).expect("written");
    let (ok, said, _) = service.sessions(&["import", snap_file.to_str().expect("path"), "--json"]);
    assert_eq!(
        (ok, serde_json::from_str::<Value>(&said).ok()),
        (true, Some(json!({"session_id": "snap-only", "blobs": 1})))
    );
    let (_, shown, _) = service.sessions(&["show", "snap-only"]);
    assert!(shown.contains("Kept as a snapshot."), "{shown}");
    let (ok, said, _) = service.sessions(&["fork", "snap-only", "snap-branch"]);
    assert!(ok && said.trim() == "forked snap-only into snap-branch", "{said}");
    let (_, shown, _) = service.sessions(&["show", "snap-branch"]);
    assert!(shown.contains("Kept as a snapshot."), "{shown}");

    // Fork, cut after the tool call; --json for scripts.
    let (ok, forked, _) =
        service.sessions(&["fork", "trip plan", "trip-b", "--agent", "planner", "--up-to", "1", "--json"]);
    assert!(ok, "{forked}");
    assert_eq!(serde_json::from_str::<Value>(&forked).expect("JSON")["session_id"], "trip-b");
    let (_, shown, _) = service.sessions(&["show", "trip-b"]);
    assert!(shown.contains("(2 messages)") && !shown.contains("Temples"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_one_line_that_says_what_to_do() {
    let service = Service::start().await;
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output =
            Command::new(BIN).arg("sessions").args(args).env_clear().envs(env.iter().copied()).output();
        let output = output.expect("run");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, err) = run(&["list", "--url", &service.base], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: 401 UnauthorizedError") && err.contains("SESSION_BACKEND_API_KEY"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let (code, err) = run(&["list", "--url", &service.base, "--api-key", "sb_not_a_key"], &[]);
    assert!(code == Some(1) && err.contains("not valid"), "{err}");
    let (_, err) = run(&["list"], &[("SESSION_BACKEND_URL", "http://127.0.0.1:9")]);
    assert!(err.contains("cannot reach the service at http://127.0.0.1:9"), "{err}");
    let (_, err) = run(&["list", "--url", "https://sessions.example.com"], &[]);
    assert!(err.contains("only http:// is supported"), "{err}");
    let (_, err) = run(&["fork", "a", "b", "--agent", "x"], &[]);
    assert!(err.contains("--up-to"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_gets_colours_and_progress_and_logs_in_files_get_none() {
    let service = Service::start().await;
    let (ok, shown) = service.on_terminal("show 'trip plan'");
    assert!(ok && shown.contains(&format!("{ESC}[1;36muser{ESC}[0m")), "coloured roles: {shown:?}");
    let (ok, exported) = service.on_terminal("export 'trip plan' -o trip.json");
    assert!(ok && exported.contains("exporting trip plan: "), "progress on a terminal: {exported:?}");
    assert!(exported.contains(&format!("\r{ESC}[2K")), "the line is cleared: {exported:?}");
    let (ok, imported) = service.on_terminal("import trip.json");
    assert!(!ok && imported.contains("importing trip.json: "), "{imported:?}");
    let cleared = imported.rfind(&format!("\r{ESC}[2K")).expect("the line is cleared");
    assert!(
        imported[cleared..].contains("error: 409 ConflictError"),
        "the error after the cleared line: {imported:?}"
    );

    // The long commands of the binary itself.
    let db = format!("sqlite://{}?mode=rwc", service.dir.path().join("cli.db").display());
    let env = [("DATABASE_URL", db.as_str())];
    let (ok, out) = terminal(&format!("{BIN} export file-sessions files"), service.dir.path(), &env);
    assert!(ok && out.contains("exporting: ") && out.contains("exported"), "{out:?}");
    let piped = Command::new(BIN)
        .args(["export", "file-sessions", "files-piped"])
        .current_dir(service.dir.path())
        .env_clear()
        .envs(env)
        .output()
        .expect("run");
    assert!(piped.status.success());
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("exporting:"), "no progress in a pipe");
    let (ok, out) =
        terminal(&format!("{BIN} backup --database-url '{db}' --output backups"), service.dir.path(), &[]);
    assert!(ok && out.contains("backing up: ") && out.contains("backed up"), "{out:?}");

    // The server's text logs go to a file: plain text.
    let log = std::fs::read_to_string(service.dir.path().join("server.log")).expect("log");
    assert!(!log.is_empty() && !log.contains(ESC), "{log:?}");
}
