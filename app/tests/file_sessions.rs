//! `session-backend import|export file-sessions`: the SDK's
//! `FileSessionManager` layout in and out, through the binary. (The Python
//! client's suite does the same with directories the real SDK wrote and
//! agents resuming from both sides.)

use std::{
    path::Path,
    process::{Command, Output},
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_session-backend");

fn run(dir: &Path, database: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", database)
        .env("LOG_LEVEL", "warn")
        .output()
        .expect("run the binary")
}

fn ok(output: &Output) -> String {
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed:\n{out}\n{err}");
    format!("{out}{err}")
}

fn put(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(path, serde_json::to_string_pretty(value).expect("json")).expect("write");
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("json")
}

/// A directory as `FileSessionManager` writes it: two sessions, one with an
/// agent of 12 messages (one redacted) and a graph state; plus bad files.
fn sdk_layout(root: &Path) {
    let s1 = root.join("session_chat-1");
    put(
        &s1.join("session.json"),
        &json!({"session_id": "chat-1", "session_type": "AGENT",
        "created_at": "2026-01-02T03:04:05.123456+00:00", "updated_at": "2026-01-02T03:04:06.000001+00:00"}),
    );
    let agent = s1.join("agents/agent_default");
    put(
        &agent.join("agent.json"),
        &json!({"agent_id": "default", "state": {"n": 18446744073709551616_u128},
        "conversation_manager_state": {"__name__": "SlidingWindowConversationManager", "removed_message_count": 0},
        "_internal_state": {"interrupt_state": {"activated": false, "context": {}, "interrupts": {}}},
        "created_at": "2026-01-02T03:04:05.123456+00:00", "updated_at": "2026-01-02T03:04:07+00:00"}),
    );
    for i in 0..12 {
        let redact =
            if i == 3 { json!({"role": "user", "content": [{"text": "[gone]"}]}) } else { Value::Null };
        put(
            &agent.join(format!("messages/message_{i}.json")),
            &json!({"message": {"role":
            if i % 2 == 0 { "user" } else { "assistant" }, "content": [{"text": format!("m{i} \u{0}")}]},
            "message_id": i, "redact_message": redact,
            "created_at": "2026-01-02T03:04:05.5+00:00", "updated_at": "2026-01-02T03:04:05.5+00:00"}),
        );
    }
    put(
        &s1.join("multi_agents/multi_agent_graph-1/multi_agent.json"),
        &json!({"type": "graph", "id": "graph-1", "status": "completed", "node_results": {}}),
    );
    let s2 = root.join("session_chat-2");
    put(
        &s2.join("session.json"),
        &json!({"session_id": "chat-2", "session_type": "AGENT",
        "created_at": "2026-02-02T00:00:00+00:00", "updated_at": "2026-02-02T00:00:00+00:00"}),
    );
    // Bad files: invalid JSON, a message that is not an object, a bad time.
    std::fs::create_dir_all(root.join("session_broken")).expect("dir");
    std::fs::write(root.join("session_broken/session.json"), "{not json").expect("write");
    put(
        &s2.join("agents/agent_a/agent.json"),
        &json!({"agent_id": "a", "state": {},
        "conversation_manager_state": {}, "created_at": "yesterday"}),
    );
    put(&agent.join("messages/message_99.json"), &json!({"message": "text", "message_id": 99}));
}

#[test]
fn import_keeps_everything_once_and_export_writes_it_back() {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("sessions");
    sdk_layout(&root);
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("db.sqlite").display());
    let import = ["import", "file-sessions", root.to_str().expect("utf-8")];

    // A dry run counts and writes nothing.
    let dry = ok(&run(dir.path(), &database, &[&import[..], &["--dry-run"]].concat()));
    assert!(dry.contains("dry run") && dry.contains("messages: 12 created, 0 already present"), "{dry}");
    let first = ok(&run(dir.path(), &database, &import));
    assert!(first.contains("sessions: 2 created, 0 already present"), "{first}");
    assert!(first.contains("agents: 1 created"), "{first}");
    assert!(first.contains("messages: 12 created"), "{first}");
    assert!(first.contains("multi-agent states: 1 created"), "{first}");
    assert!(first.contains("files skipped: 3"), "{first}");
    for path in ["session_broken/session.json", "agent_a/agent.json", "message_99.json"] {
        assert!(
            first.lines().any(|l| l.starts_with("skipped ") && l.contains(path)),
            "{path} reported: {first}"
        );
    }
    // Idempotent: a second run finds everything present.
    let second = ok(&run(dir.path(), &database, &import));
    assert!(second.contains("sessions: 0 created, 2 already present"), "{second}");
    assert!(second.contains("messages: 0 created, 12 already present"), "{second}");
    // Strict stops at the first bad file, naming it.
    let strict = run(dir.path(), &database, &[&import[..], &["--strict"]].concat());
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains(".json"), "{strict:?}");

    // Export, then compare with what went in.
    let out = dir.path().join("exported");
    let exported =
        ok(&run(dir.path(), &database, &["export", "file-sessions", out.to_str().expect("utf-8")]));
    assert!(
        exported.contains("exported 2 sessions, 1 agents, 12 messages, 1 multi-agent states"),
        "{exported}"
    );
    let agent_in = read(&root.join("session_chat-1/agents/agent_default/agent.json"));
    let agent_out = read(&out.join("session_chat-1/agents/agent_default/agent.json"));
    assert_eq!(agent_out, agent_in, "documents, big numbers and timestamps kept");
    let session = read(&out.join("session_chat-1/session.json"));
    assert_eq!(session["created_at"], "2026-01-02T03:04:05.123456+00:00");
    for i in 0..12 {
        let name = format!("session_chat-1/agents/agent_default/messages/message_{i}.json");
        let (a, b) = (read(&root.join(&name)), read(&out.join(&name)));
        assert_eq!(b["message"], a["message"], "{name}");
        assert_eq!(b["redact_message"], a["redact_message"], "{name}");
        assert_eq!(b["created_at"], "2026-01-02T03:04:05.500000+00:00", "{name}");
    }
    assert!(!out.join("session_chat-1/agents/agent_default/messages/message_99.json").exists());
    assert_eq!(
        read(&out.join("session_chat-1/multi_agents/multi_agent_graph-1/multi_agent.json")),
        read(&root.join("session_chat-1/multi_agents/multi_agent_graph-1/multi_agent.json"))
    );
    // One session only; an unknown one is an error.
    let one = dir.path().join("one");
    let only = ok(&run(
        dir.path(),
        &database,
        &["export", "file-sessions", one.to_str().expect("u"), "--session", "chat-2"],
    ));
    assert!(only.contains("exported 1 sessions"), "{only}");
    assert!(one.join("session_chat-2/session.json").exists() && !one.join("session_chat-1").exists());
    let missing = run(
        dir.path(),
        &database,
        &["export", "file-sessions", one.to_str().expect("u"), "--session", "nope"],
    );
    assert!(!missing.status.success());
}
