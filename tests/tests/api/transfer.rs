//! `GET …/export` and `POST /api/v1/sessions/import`: one session as one
//! document, out of one snapshot and back in through a staging that leaves
//! nothing behind when the document is refused or cut short.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp, scalar, spawn_app_with},
};

both_backends!(
    an_export_imports_back_to_the_same_document,
    members_come_in_any_order_and_repeats_replace,
    an_export_reads_one_snapshot,
    malformed_documents_are_refused_naming_the_path,
    documents_past_the_body_limit_stream_in,
    an_upload_cut_short_leaves_nothing,
    a_session_called_import_is_still_a_session
);

const IMPORT: &str = "/api/v1/sessions/import";

/// A session with awkward documents: two agents (one with a summary and
/// redacted message), and a multi-agent state.
async fn seeded(app: &TestApp, id: &str) {
    let created = json!({"session_id": id, "session_type": "MULTI_AGENT",
                         "metadata": {"team": "x", "big": 123456789012345678901234567890u128}, "ttl_seconds": 3600});
    app.post("/api/v1/sessions", &created).await.expect(201);
    let cms = json!({"__name__": "SummarizingConversationManager", "removed_message_count": 2,
                     "summary_message": {"role": "user", "content": [{"text": "earlier"}]}});
    let agent = json!({"agent_id": "a", "state": {"k": [1, 2], "nul": "a\u{0}b"}, "conversation_manager_state": cms,
                       "_internal_state": {"interrupt_state": {"activated": false}}});
    app.post(&format!("/api/v1/sessions/{id}/agents"), &agent).await.expect(201);
    app.agent_in(id, "b").await;
    for (agent, count) in [("a", 5), ("b", 3)] {
        for n in 0..count {
            let role = if n % 2 == 0 { "user" } else { "assistant" };
            let text = format!("{agent} {n} ünïcödé \u{0} <script>alert(1)</script>");
            let message = json!({"message_id": n, "message": {"role": role, "content": [{"text": text}]}});
            app.post(&TestApp::messages_path(id, agent), &message).await.expect(201);
        }
    }
    let raw = r#"{"message": {"role": "user", "content": [{"toolUse": {"input": {"n": 1e400, "deep": [[[[{}]]]]}}}]},
                  "redact_message": {"role": "user", "content": [{"text": "[removed]"}]}}"#;
    app.call_raw(Method::PUT, &format!("{}/1", TestApp::messages_path(id, "a")), raw).await.expect(200);
    let graph = json!({"multi_agent_id": "g", "state": {"status": "executing", "node_history": ["a"]}});
    app.post(&format!("/api/v1/sessions/{id}/multi-agents"), &graph).await.expect(201);
}

/// The export's bytes, checked to be whole (status, type, length).
async fn export(app: &TestApp, id: &str) -> Vec<u8> {
    let resp =
        app.client.get(app.url(&format!("/api/v1/sessions/{id}/export"))).send().await.expect("export");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("type").starts_with("application/json"));
    let length: usize = resp.headers()["content-length"].to_str().expect("length").parse().expect("number");
    let bytes = resp.bytes().await.expect("body").to_vec();
    assert_eq!(bytes.len(), length);
    assert!(bytes.ends_with(br#","complete":true}"#), "ends with the mark");
    bytes
}

/// Sends `document` to the import.
async fn import(app: &TestApp, document: impl Into<reqwest::Body>) -> crate::helpers::Reply {
    app.call_raw(Method::POST, IMPORT, document).await
}

/// Staged rows left in the database (there should be none between imports).
async fn staged(app: &TestApp) -> i64 {
    scalar(&app.database_url, "SELECT COUNT(*) FROM sessions WHERE tenant_id = '!staging'").await
}

async fn an_export_imports_back_to_the_same_document(backend: Backend) {
    let app = app!(backend);
    seeded(&app, "s").await;
    let first = export(&app, "s").await;
    let document: Value = serde_json::from_slice(&first).expect("one JSON document");
    let members: Vec<&String> = document.as_object().expect("object").keys().collect();
    assert_eq!(members, ["format", "session_id", "session", "agents", "multi_agents", "blobs", "complete"]);
    assert_eq!(document["format"], "session-backend/1");
    assert_eq!(
        document["session"]["metadata"],
        json!({"team": "x", "big": 123456789012345678901234567890u128})
    );
    assert_eq!(document["session"]["ttl_seconds"], 3600);
    let agents = document["agents"].as_array().expect("agents");
    assert_eq!(agents.iter().map(|a| a["agent_id"].clone()).collect::<Vec<_>>(), [json!("a"), json!("b")]);
    // Every stored document exactly as the API serves it.
    for agent in agents {
        let id = agent["agent_id"].as_str().expect("id");
        let stored = app.get(&format!("/api/v1/sessions/s/agents/{id}")).await.expect(200);
        for field in ["state", "conversation_manager_state", "created_at", "updated_at"] {
            assert_eq!(agent[field], stored[field], "{id}.{field}");
        }
        assert_eq!(agent["internal_state"], stored["_internal_state"]);
        let listed = app.get(&format!("{}?limit=100", TestApp::messages_path("s", id))).await.expect(200);
        let mut listed = listed["messages"].clone();
        for message in listed.as_array_mut().expect("messages") {
            message.as_object_mut().expect("message").remove("session_id");
            message.as_object_mut().expect("message").remove("agent_id");
        }
        assert_eq!(agent["messages"], listed, "{id}'s messages");
    }
    let text = String::from_utf8(first.clone()).expect("UTF-8");
    assert!(text.contains("1e400") && text.contains(r#"\u0000"#), "numbers and escapes as stored");
    assert_eq!(document["multi_agents"][0]["state"], json!({"status": "executing", "node_history": ["a"]}));

    // Deleted and imported back, it exports the same bytes.
    app.delete("/api/v1/sessions/s").await.expect(204);
    let made = import(&app, first.clone()).await.expect(201);
    assert_eq!(made["session_id"], "s");
    assert_eq!(made["ttl_seconds"], 3600);
    assert!(made["expires_at"].is_string(), "the TTL counts from the import");
    assert_eq!(export(&app, "s").await, first, "export → import → export is the same document");
    // The imported session is an ordinary one: it takes the next message.
    let next = json!({"message_id": 5, "message": {"role": "user", "content": [{"text": "next"}]}});
    app.post(&TestApp::messages_path("s", "a"), &next).await.expect(201);
    assert_eq!(staged(&app).await, 0, "nothing left staged");
}

/// An agent's `messages` before its other members; a repeated message,
/// agent or multi-agent state replaces the earlier one; members the
/// format does not name are ignored (as in every request).
async fn members_come_in_any_order_and_repeats_replace(backend: Backend) {
    let app = app!(backend);
    let at = "2026-12-05T10:00:00.000000+00:00";
    let message = |n: i64, text: &str| {
        json!({"updated_at": at, "created_at": at, "redact_message": null,
               "message": {"content": [{"text": text}], "role": "user"}, "message_id": n})
    };
    let document = json!({
        "complete": true,
        "multi_agents": [{"multi_agent_id": "g", "state": {"v": 1}, "created_at": at, "updated_at": at},
                         {"multi_agent_id": "g", "state": {"v": 2}, "created_at": at, "updated_at": at}],
        "agents": [
            {"messages": [message(2, "two"), message(0, "zero"), message(2, "two again")],
             "created_at": at, "updated_at": at, "state": {"first": true}, "conversation_manager_state": {},
             "internal_state": {}, "agent_id": "a"},
            {"agent_id": "a", "messages": [message(1, "one")], "state": {"second": true},
             "conversation_manager_state": {}, "internal_state": {}, "created_at": at, "updated_at": at},
        ],
        "session": {"updated_at": at, "created_at": at, "ttl_seconds": 0, "metadata": {},
                    "session_type": "AGENT", "session_id": "any-order"},
        "format": "session-backend/1",
        "exported_by": {"tool": "a member the format does not name, ignored"},
    });
    import(&app, serde_json::to_string(&document).expect("JSON")).await.expect(201);
    let exported: Value = serde_json::from_slice(&export(&app, "any-order").await).expect("JSON");
    let agents = exported["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["state"], json!({"second": true}), "the later agent's members");
    let texts: Vec<&Value> = agents[0]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["message"]["content"][0]["text"])
        .collect();
    assert_eq!(
        texts,
        [&json!("zero"), &json!("one"), &json!("two again")],
        "by id, the later of a repeated id"
    );
    assert_eq!(exported["multi_agents"].as_array().map(Vec::len), Some(1));
    assert_eq!(exported["multi_agents"][0]["state"], json!({"v": 2}));
    assert_eq!(staged(&app).await, 0);
}

/// Messages are appended to agent `a` and then to `b`, one by one, while
/// exports are taken: any one snapshot holds as many of `b`'s as of `a`'s,
/// or one fewer. Read at two moments, `b` could hold more.
async fn an_export_reads_one_snapshot(backend: Backend) {
    let app = app!(backend);
    app.session("s").await;
    app.agent_in("s", "a").await;
    app.agent_in("s", "b").await;
    let written = std::sync::atomic::AtomicBool::new(false);
    let writer = async {
        for n in 0..120 {
            for agent in ["a", "b"] {
                let message = json!({"message_id": n, "message": {"role": "user", "content": [{"text": "x".repeat(300)}]}});
                app.post(&TestApp::messages_path("s", agent), &message).await.expect(201);
            }
        }
        written.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    // Exports one after another for as long as the writer writes (and at
    // most 2,000).
    let exports = async {
        let mut seen = Vec::new();
        while !written.load(std::sync::atomic::Ordering::Relaxed) && seen.len() < 2_000 {
            let document: Value = serde_json::from_slice(&export(&app, "s").await).expect("JSON");
            let count = |i: usize| document["agents"][i]["messages"].as_array().map_or(0, Vec::len);
            seen.push((count(0), count(1)));
        }
        seen
    };
    let ((), seen) = tokio::join!(writer, exports);
    for (a, b) in &seen {
        assert!(a == b || *a == b + 1, "a snapshot holds {a} of a's messages and {b} of b's: {seen:?}");
    }
    assert!(
        seen.iter().any(|(a, _)| *a > 0 && *a < 120),
        "exports ran while messages were written: {seen:?}"
    );
}

async fn malformed_documents_are_refused_naming_the_path(backend: Backend) {
    let app = app!(backend);
    seeded(&app, "src").await;
    let original: Value = serde_json::from_slice(&export(&app, "src").await).expect("JSON");
    let renamed = |mut document: Value| {
        document["session_id"] = json!("copy");
        document["session"]["session_id"] = json!("copy");
        document
    };
    let good = renamed(original.clone());
    let changed = |path: &[&str], value: Value| {
        let mut document = good.clone();
        let mut at = &mut document;
        for step in path {
            at = match step.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*step],
            };
        }
        *at = value;
        document
    };
    let dropped = |member: &str| {
        let mut document = good.clone();
        document.as_object_mut().expect("object").shift_remove(member);
        document
    };
    let mut without_internal_state = good.clone();
    without_internal_state["agents"][1].as_object_mut().expect("agent").shift_remove("internal_state");
    let cases: Vec<(Value, &str)> = vec![
        (changed(&["format"], json!("session-backend/2")), "`format` is `session-backend/2`"),
        (changed(&["complete"], json!(false)), "`complete` must be `true`"),
        (dropped("complete"), "no `\"complete\": true`"),
        (dropped("session"), "no `session`"),
        (changed(&["session", "session_id"], json!("a/b")), "session.session_id"),
        (changed(&["session", "ttl_seconds"], json!(-1)), "session.ttl_seconds"),
        (changed(&["agents", "1", "agent_id"], json!("")), "agents[1].agent_id"),
        (
            changed(&["agents", "0", "messages", "2", "message"], json!({"content": []})),
            "agents[0].messages[2].message",
        ),
        (
            changed(&["agents", "0", "messages", "1", "message_id"], json!(-1)),
            "agents[0].messages[1].message_id",
        ),
        (
            changed(&["agents", "0", "messages", "1", "created_at"], json!("yesterday")),
            "agents[0].messages[1].created_at",
        ),
        (changed(&["agents", "0", "state"], json!([1])), "agents[0].state"),
        (changed(&["multi_agents", "0"], json!(["g", {}])), "multi_agents[0]"),
        (without_internal_state, "agents[1]: the agent has no `internal_state`"),
        (changed(&["agents", "0", "messages"], json!({})), "agents[0].messages"),
        (json!([good.clone()]), "a JSON object"),
    ];
    for (document, names) in cases {
        let text = serde_json::to_string(&document).expect("JSON");
        let problem = import(&app, text).await.expect_error(422, "ValidationError");
        assert!(problem.contains(names), "`{problem}` should name `{names}`");
    }
    // Past 2^63 in a message id, and a document cut anywhere.
    let text = serde_json::to_string(&good).expect("JSON");
    let huge = text.replacen(r#""message_id":4"#, r#""message_id":9223372036854775808"#, 1);
    let problem = import(&app, huge).await.expect_error(422, "ValidationError");
    assert!(problem.contains("agents[0].messages[4].message_id"), "{problem}");
    for cut in [0, 1, text.len() / 3, text.len() / 2, text.len() - 1] {
        import(&app, text[..cut].to_owned()).await.expect_error(422, "ValidationError");
    }
    import(&app, format!("{text} {{}}")).await.expect_error(422, "ValidationError");
    // Not JSON; the session taken.
    let plain = app.client.post(app.url(IMPORT)).header("content-type", "text/plain").body(text.clone());
    TestApp::reply(plain.send().await.expect("request")).await.expect_error(415, "UnsupportedMediaTypeError");
    let taken = serde_json::to_string(&original).expect("JSON");
    import(&app, taken).await.expect_error(409, "ConflictError");
    // None of it made anything, or left anything staged.
    app.get("/api/v1/sessions/copy").await.expect_error(404, "NotFoundError");
    assert_eq!(app.get("/api/v1/sessions").await.expect(200)["total"], 1);
    assert_eq!(staged(&app).await, 0);
    // And the good one goes in.
    import(&app, text).await.expect(201);
}

/// A document of 10,000 messages, past the body limit: it streams in.
/// One member past the body limit is refused, as is a document past the
/// import limit.
async fn documents_past_the_body_limit_stream_in(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.server.body_limit_bytes = 256 * 1024;
        config.server.import_limit_bytes = 4 * 1024 * 1024;
    })
    .await
    else {
        return;
    };
    let at = "2026-12-05T10:00:00.000000+00:00";
    let document = |id: &str, messages: usize, text: &str| {
        let messages: Vec<Value> = (0..messages)
            .map(|n| json!({"message_id": n, "message": {"role": "user", "content": [{"text": format!("{n} {text}")}]},
                            "redact_message": null, "created_at": at, "updated_at": at}))
            .collect();
        json!({"format": "session-backend/1", "session_id": id,
               "session": {"session_id": id, "session_type": "AGENT", "metadata": {}, "ttl_seconds": 0, "created_at": at, "updated_at": at},
               "agents": [{"agent_id": "long", "state": {}, "conversation_manager_state": {}, "internal_state": {},
                           "created_at": at, "updated_at": at, "messages": messages}],
               "multi_agents": [], "blobs": [], "complete": true})
    };
    let long =
        serde_json::to_vec(&document("long", 10_000, "some words of a long conversation")).expect("JSON");
    assert!(long.len() > 256 * 1024 * 4, "well past the body limit: {} bytes", long.len());
    import(&app, long.clone()).await.expect(201);
    assert_eq!(export(&app, "long").await, long, "all 10,000 messages, as sent");
    let page = app.get(&format!("{}?offset=9998", TestApp::messages_path("long", "long"))).await.expect(200);
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(2));

    let one_large = serde_json::to_vec(&document("large", 2, &"x".repeat(400 * 1024))).expect("JSON");
    let problem = import(&app, one_large).await.expect_error(422, "ValidationError");
    assert!(
        problem.contains("agents[0].messages[0].message") && problem.contains("body_limit_bytes"),
        "{problem}"
    );
    let too_long = serde_json::to_vec(&document("too-long", 40_000, "some words")).expect("JSON");
    assert!(too_long.len() > 4 * 1024 * 1024);
    import(&app, too_long).await.expect_error(413, "PayloadTooLargeError");
    for id in ["large", "too-long"] {
        app.get(&format!("/api/v1/sessions/{id}")).await.expect_error(404, "NotFoundError");
    }
    assert_eq!(staged(&app).await, 0);
}

/// A client that sends half a document and goes away leaves no session
/// and nothing staged.
async fn an_upload_cut_short_leaves_nothing(backend: Backend) {
    let app = app!(backend);
    seeded(&app, "src").await;
    let text =
        String::from_utf8(export(&app, "src").await).expect("UTF-8").replacen("\"src\"", "\"half\"", 2);
    let stream = import_part(&app, text.as_bytes(), text.len() / 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while staged(&app).await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(staged(&app).await, 0, "the staging is given up");
    app.get("/api/v1/sessions/half").await.expect_error(404, "NotFoundError");
}

/// An import of `document` over raw TCP that has sent its first `sent`
/// bytes and waits to send the rest (drop the stream to go away).
pub async fn import_part(app: &TestApp, document: &[u8], sent: usize) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST {IMPORT} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        document.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&document[..sent]).await.expect("part of the body");
    stream
}

/// `POST /api/v1/sessions/import` is the import; the path's other methods
/// still reach the session called `import` (a name the earlier service
/// allowed).
async fn a_session_called_import_is_still_a_session(backend: Backend) {
    let app = app!(backend);
    app.post("/api/v1/sessions", &json!({"session_id": "import"})).await.expect(201);
    assert_eq!(app.get(IMPORT).await.expect(200)["session_id"], "import");
    app.put(IMPORT, &json!({"metadata": {"a": 1}})).await.expect(200);
    let allowed = app.client.request(Method::OPTIONS, app.url(IMPORT)).send().await.expect("options");
    // As the document has it: its literal path wins over the template.
    assert_eq!(allowed.headers()["allow"], "POST, OPTIONS");
    let document = export(&app, "import").await;
    import(&app, document.clone()).await.expect_error(409, "ConflictError");
    app.delete(IMPORT).await.expect(204);
    import(&app, document).await.expect(201);
}
