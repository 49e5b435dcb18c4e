//! Export and import carry a session's snapshot blobs (`session/<id>/…`):
//! a session kept only as blobs (the SDK's `SnapshotSessionManager`) goes
//! out with `"session": null` and comes back whole, values of several
//! chunks in pieces no larger than one member, indexed for search; a
//! refused document leaves no blob behind. A fork copies them too.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, scalar, spawn_app_with},
    transfer::import_part,
};

both_backends!(
    a_snapshot_session_exports_and_imports_its_blobs,
    a_session_with_rows_and_blobs_carries_both,
    a_fork_copies_snapshot_blobs,
    forks_race_deletes_and_imports_cleanly,
    forks_are_not_held_to_the_request_deadline,
    malformed_blobs_are_refused_naming_the_path,
    a_blob_upload_cut_short_leaves_nothing,
    writes_racing_an_import_of_their_keys_go_before_or_after_it
);

const IMPORT: &str = "/api/v1/sessions/import";

/// An app whose members may be 64 KiB and values 3 MiB.
async fn small_members(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |config| {
        config.server.body_limit_bytes = 64 * 1024;
        config.storage.max_value_bytes = 3 * 1024 * 1024;
    })
    .await
}

async fn put(app: &TestApp, key: &str, bytes: Vec<u8>) {
    let put = app.client.put(app.url(&format!("/api/v1/storage/{key}"))).body(bytes);
    TestApp::reply(put.send().await.expect("write")).await.expect(204);
}

async fn read(app: &TestApp, key: &str) -> (u16, Vec<u8>) {
    let resp = app.client.get(app.url(&format!("/api/v1/storage/{key}"))).send().await.expect("read");
    (resp.status().as_u16(), resp.bytes().await.expect("body").to_vec())
}

async fn export(app: &TestApp, id: &str) -> Vec<u8> {
    let resp =
        app.client.get(app.url(&format!("/api/v1/sessions/{id}/export"))).send().await.expect("export");
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.expect("body").to_vec();
    assert!(bytes.ends_with(br#","complete":true}"#), "ends with the mark");
    bytes
}

async fn import(app: &TestApp, document: impl Into<reqwest::Body>) -> crate::helpers::Reply {
    app.call_raw(Method::POST, IMPORT, document).await
}

/// Staged values not yet given up: listed to come due after the longest
/// import (`storage.transfer_timeout_ms`, 10 min here) and an upload's
/// grace (as long again), which no replaced value's listing (the grace
/// alone) reaches.
async fn staged_values(app: &TestApp) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let later = now.as_micros() + 900_000_000;
    scalar(&app.database_url, &format!("SELECT COUNT(*) FROM blob_garbage WHERE reclaim_after > {later}"))
        .await
}

/// Bytes of every value, 2.5 MiB of them (three chunks), not UTF-8.
fn binary() -> Vec<u8> {
    (0..5 * 512 * 1024u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// The values of a snapshot session `id`, by key below its prefix.
fn values() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "scopes/agent/a/immutable_history/snapshot_01.json",
            br#"{"schema_version": "1.0", "n": 1}"#.to_vec(),
        ),
        (
            "scopes/agent/a/snapshots/snapshot_latest.json",
            br#"{"schema_version": "1.0", "text": "a glacier"}"#.to_vec(),
        ),
        ("scopes/agent/a/tool_output/big.bin", binary()),
        ("scopes/agent/a/tool_output/empty", Vec::new()),
        ("scopes/multiAgent/g/snapshots/snapshot_latest.json", "ünïcödé".as_bytes().to_vec()),
    ]
}

async fn a_snapshot_session_exports_and_imports_its_blobs(backend: Backend) {
    let Some(app) = small_members(backend).await else { return };
    for (key, value) in values() {
        put(&app, &format!("session/snap/{key}"), value).await;
    }
    // Neighbours: a session whose id starts the same, and another key.
    put(&app, "session/snapx/scopes/agent/a/snapshots/snapshot_latest.json", b"other".to_vec()).await;
    put(&app, "notes/snap", b"other".to_vec()).await;
    app.get("/api/v1/sessions/missing/export").await.expect_error(404, "NotFoundError");

    let first = export(&app, "snap").await;
    let document: Value = serde_json::from_slice(&first).expect("JSON");
    let members: Vec<&String> = document.as_object().expect("object").keys().collect();
    assert_eq!(members, ["format", "session_id", "session", "agents", "multi_agents", "blobs", "complete"]);
    assert_eq!(document["session_id"], "snap");
    assert_eq!(document["session"], Value::Null);
    assert_eq!((document["agents"].clone(), document["multi_agents"].clone()), (json!([]), json!([])));
    let blobs = document["blobs"].as_array().expect("blobs");
    let expected = values();
    assert_eq!(
        blobs.iter().map(|b| b["key"].as_str().expect("key")).collect::<Vec<_>>(),
        expected.iter().map(|(key, _)| *key).collect::<Vec<_>>(),
        "every key under the prefix, by key, below it"
    );
    for (blob, (key, value)) in blobs.iter().zip(&expected) {
        let pieces = blob["data"].as_array().expect("pieces");
        let mut decoded = Vec::new();
        for piece in pieces {
            let piece = piece.as_str().expect("base64");
            assert!(
                piece.len() <= 64 * 1024,
                "{key}: a piece of {} bytes is past the member limit",
                piece.len()
            );
            decoded.extend(base64::engine::general_purpose::STANDARD.decode(piece).expect("base64"));
        }
        assert_eq!(&decoded, value, "{key}");
    }

    // While it exists the import is refused; deleted, it comes back whole.
    import(&app, first.clone()).await.expect_error(409, "ConflictError");
    app.delete("/api/v1/sessions/snap").await.expect(204);
    assert_eq!(read(&app, "session/snap/scopes/agent/a/snapshots/snapshot_latest.json").await.0, 404);
    // Four at once: one makes it.
    let (a, b, c, d) = tokio::join!(
        import(&app, first.clone()),
        import(&app, first.clone()),
        import(&app, first.clone()),
        import(&app, first.clone())
    );
    let made: Vec<Value> = [a, b, c, d].into_iter().filter(|r| r.status == 201).map(|r| r.body).collect();
    assert_eq!(made, [json!({"session_id": "snap", "blobs": 5})], "one import of four");
    for (key, value) in &expected {
        assert_eq!(read(&app, &format!("session/snap/{key}")).await, (200, value.clone()), "{key}");
    }
    app.get("/api/v1/sessions/snap").await.expect_error(404, "NotFoundError");
    let found = app.get("/api/v1/storage?q=glacier&prefix=session/snap/").await.expect(200);
    assert_eq!(
        found["results"][0]["key"], "session/snap/scopes/agent/a/snapshots/snapshot_latest.json",
        "{found}"
    );
    assert_eq!(export(&app, "snap").await, first, "export → import → export is the same document");
    assert_eq!(staged_values(&app).await, 0, "nothing left staged");
    // The SDK goes on writing it.
    put(&app, "session/snap/scopes/agent/a/snapshots/snapshot_latest.json", b"{}".to_vec()).await;

    // An id whose row has lapsed, not yet swept: the row goes with the
    // import (else sweeping it would take the imported blobs along).
    app.post("/api/v1/sessions", &json!({"session_id": "lapsed", "ttl_seconds": 1})).await.expect(201);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let lapsed = String::from_utf8(first).expect("UTF-8").replacen("\"snap\"", "\"lapsed\"", 1);
    import(&app, lapsed).await.expect(201);
    let rows = scalar(&app.database_url, "SELECT COUNT(*) FROM sessions WHERE session_id = 'lapsed'").await;
    assert_eq!(rows, 0, "the lapsed row is purged");
    assert_eq!(read(&app, "session/lapsed/scopes/agent/a/tool_output/empty").await, (200, Vec::new()));
}

async fn a_session_with_rows_and_blobs_carries_both(backend: Backend) {
    let Some(app) = small_members(backend).await else { return };
    app.agent("both", "a").await;
    let message = json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]}});
    app.post(&TestApp::messages_path("both", "a"), &message).await.expect(201);
    put(&app, "session/both/scopes/agent/a/snapshots/snapshot_latest.json", br#"{"v": 1}"#.to_vec()).await;
    let first = export(&app, "both").await;
    let document: Value = serde_json::from_slice(&first).expect("JSON");
    assert_eq!(document["session"]["session_id"], "both");
    assert_eq!(document["agents"][0]["messages"][0]["message"]["content"][0]["text"], "hi");
    assert_eq!(document["blobs"][0]["key"], "scopes/agent/a/snapshots/snapshot_latest.json");

    app.delete("/api/v1/sessions/both").await.expect(204);
    let made = import(&app, first.clone()).await;
    let etag = made.etag();
    let made = made.expect(201);
    assert_eq!(made["session_id"], "both");
    assert!(made["session_type"].is_string() && etag.starts_with('"'), "the session and its version");
    assert_eq!(export(&app, "both").await, first);
    // A row document whose id is a snapshot session's is refused: it exists.
    app.delete("/api/v1/sessions/both").await.expect(204);
    put(&app, "session/both/scopes/agent/a/snapshots/snapshot_latest.json", b"{}".to_vec()).await;
    let mut rows_only = document.clone();
    rows_only["blobs"] = json!([]);
    import(&app, rows_only.to_string()).await.expect_error(409, "ConflictError");
    app.get("/api/v1/sessions/both").await.expect_error(404, "NotFoundError");
    // A document of an earlier release (no `session_id`, no `blobs`) still reads.
    app.delete("/api/v1/sessions/both").await.expect(204);
    let mut earlier = document;
    let object = earlier.as_object_mut().expect("object");
    object.shift_remove("session_id");
    object.shift_remove("blobs");
    import(&app, earlier.to_string()).await.expect(201);
    assert_eq!(staged_values(&app).await, 0);
}

async fn fork(app: &TestApp, source: &str, body: Value) -> crate::helpers::Reply {
    app.call_raw(Method::POST, &format!("/api/v1/sessions/{source}/fork"), body.to_string()).await
}

async fn a_fork_copies_snapshot_blobs(backend: Backend) {
    let Some(app) = small_members(backend).await else { return };
    for (key, value) in values() {
        put(&app, &format!("session/snap/{key}"), value).await;
    }
    put(&app, "session/snapx/scopes/agent/a/snapshots/snapshot_latest.json", b"other".to_vec()).await;

    // A session kept only as blobs forks into one kept only as blobs.
    let made = fork(&app, "snap", json!({"session_id": "copy"})).await;
    assert!(made.headers.get("etag").is_none(), "no row, no version");
    assert_eq!(made.expect(201), json!({"session_id": "copy", "blobs": 5}));
    for (key, value) in values() {
        assert_eq!(read(&app, &format!("session/copy/{key}")).await, (200, value.clone()), "{key}");
        assert_eq!(read(&app, &format!("session/snap/{key}")).await, (200, value), "{key} stays");
    }
    app.get("/api/v1/sessions/copy").await.expect_error(404, "NotFoundError");
    let found = app.get("/api/v1/storage?q=glacier&prefix=session/copy/").await.expect(200);
    assert_eq!(found["results"][0]["key"], "session/copy/scopes/agent/a/snapshots/snapshot_latest.json");
    let exported = |id: &'static str| {
        let app = &app;
        async move {
            let document: Value = serde_json::from_slice(&export(app, id).await).expect("JSON");
            document["blobs"].clone()
        }
    };
    assert_eq!(exported("copy").await, exported("snap").await, "the same values under the same keys");
    // The copy stands alone.
    app.delete("/api/v1/sessions/copy").await.expect(204);
    assert_eq!(read(&app, "session/snap/scopes/agent/a/tool_output/empty").await, (200, Vec::new()));

    // Refusals leave nothing: a taken id (a row, or blobs), a cut of a
    // session with no agents, a missing source.
    app.post("/api/v1/sessions", &json!({"session_id": "row"})).await.expect(201);
    fork(&app, "snap", json!({"session_id": "row"})).await.expect_error(409, "ConflictError");
    fork(&app, "snap", json!({"session_id": "snapx"})).await.expect_error(409, "ConflictError");
    fork(&app, "row", json!({"session_id": "snapx"})).await.expect_error(409, "ConflictError");
    let cut = json!({"session_id": "cut", "agent_id": "a", "up_to_message_id": 0});
    fork(&app, "snap", cut).await.expect_error(404, "NotFoundError");
    fork(&app, "missing", json!({"session_id": "cut"})).await.expect_error(404, "NotFoundError");
    assert_eq!(read(&app, "session/cut/scopes/agent/a/tool_output/empty").await.0, 404);
    assert_eq!(read(&app, "session/row/scopes/agent/a/tool_output/empty").await.0, 404);
    assert_eq!(staged_values(&app).await, 0, "nothing left staged");
    // Forks into one id at once: one makes it.
    let (a, b, c) = tokio::join!(
        fork(&app, "snap", json!({"session_id": "race"})),
        fork(&app, "snap", json!({"session_id": "race"})),
        fork(&app, "snap", json!({"session_id": "race"}))
    );
    let statuses: Vec<u16> = [&a, &b, &c].iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [201, 409].contains(s)), "{statuses:?}");
    assert_eq!(exported("race").await, exported("snap").await);
    // A write racing a fork into its key goes before it (the fork is
    // refused) or after it (and wins), never beside it.
    let latest = "scopes/agent/a/snapshots/snapshot_latest.json";
    for round in 0..8 {
        let id = format!("raced-{round}");
        let write = async {
            tokio::time::sleep(Duration::from_millis(round * 5)).await;
            put(&app, &format!("session/{id}/{latest}"), b"written".to_vec()).await;
        };
        let (forked, ()) = tokio::join!(fork(&app, "snap", json!({"session_id": id})), write);
        let status = forked.status.as_u16();
        assert!([201, 409].contains(&status), "round {round}: {status} {}", forked.body);
        assert_eq!(read(&app, &format!("session/{id}/{latest}")).await, (200, b"written".to_vec()));
        let empty = read(&app, &format!("session/{id}/scopes/agent/a/tool_output/empty")).await.0;
        assert_eq!(empty, if status == 201 { 200 } else { 404 }, "round {round}");
    }

    // A session with rows and blobs forks both, cut or whole.
    app.agent("both", "a").await;
    for id in 0..3 {
        let message = json!({"message_id": id, "message": {"role": "user", "content": [{"text": "hi"}]}});
        app.post(&TestApp::messages_path("both", "a"), &message).await.expect(201);
    }
    put(&app, "session/both/scopes/agent/a/snapshots/snapshot_latest.json", br#"{"v": 1}"#.to_vec()).await;
    let cut = json!({"session_id": "both-cut", "agent_id": "a", "up_to_message_id": 1});
    let made = fork(&app, "both", cut).await;
    assert!(made.etag().starts_with('"'), "a row has a version");
    assert_eq!(made.expect(201)["session_id"], "both-cut");
    let messages = app.get(&TestApp::messages_path("both-cut", "a")).await.expect(200);
    assert_eq!(messages["messages"].as_array().map(Vec::len), Some(2), "{messages}");
    let copied = read(&app, "session/both-cut/scopes/agent/a/snapshots/snapshot_latest.json").await;
    assert_eq!(copied, (200, br#"{"v": 1}"#.to_vec()));
    assert_eq!(staged_values(&app).await, 0);
}

async fn forks_race_deletes_and_imports_cleanly(backend: Backend) {
    let Some(app) = small_members(backend).await else { return };
    let latest = "scopes/agent/a/snapshots/snapshot_latest.json";
    for round in 0..6u64 {
        // A session with a row and blobs, deleted while it is forked: the
        // fork is whole (the row's answer, with an ETag), or 404, or (read
        // between the delete's row and its blobs) the blobs left then;
        // never a row without its blobs.
        let source = format!("both-{round}");
        app.agent(&source, "a").await;
        put(&app, &format!("session/{source}/{latest}"), binary()).await;
        let delete = async {
            tokio::time::sleep(Duration::from_millis(round * 4)).await;
            app.delete(&format!("/api/v1/sessions/{source}")).await.expect(204);
        };
        let copy = format!("copy-{round}");
        let (forked, ()) = tokio::join!(fork(&app, &source, json!({"session_id": copy})), delete);
        match forked.status.as_u16() {
            201 => {
                let with_row = forked.headers.get("etag").is_some();
                assert_eq!(
                    forked.body["session_type"] == "AGENT",
                    with_row,
                    "round {round}: {}",
                    forked.body
                );
                let row = app.get(&format!("/api/v1/sessions/{copy}")).await.status.as_u16();
                assert_eq!(row, if with_row { 200 } else { 404 }, "round {round}");
                assert_eq!(read(&app, &format!("session/{copy}/{latest}")).await, (200, binary()));
            }
            404 => assert_eq!(read(&app, &format!("session/{copy}/{latest}")).await.0, 404),
            other => panic!("round {round}: {other} {}", forked.body),
        }

        // A fork of rows only and an import of blobs only into one id: one
        // of them makes it, and the id is not half of each.
        let rows = format!("rows-{round}");
        app.agent(&rows, "a").await;
        let id = format!("merged-{round}");
        let document = json!({"format": "session-backend/1", "session_id": id, "session": null,
            "agents": [], "multi_agents": [], "complete": true,
            "blobs": [{"key": latest, "data": [base64::engine::general_purpose::STANDARD.encode("{}")]}]});
        let (forked, imported) =
            tokio::join!(fork(&app, &rows, json!({"session_id": id})), import(&app, document.to_string()));
        let statuses = (forked.status.as_u16(), imported.status.as_u16());
        assert!(statuses == (201, 409) || statuses == (409, 201), "round {round}: {statuses:?}");
        let row = app.get(&format!("/api/v1/sessions/{id}")).await.status.as_u16();
        let blob = read(&app, &format!("session/{id}/{latest}")).await.0;
        assert_eq!((row, blob), if statuses.0 == 201 { (200, 404) } else { (404, 200) }, "round {round}");
    }
    assert_eq!(staged_values(&app).await, 0, "nothing left staged");
}

async fn forks_are_not_held_to_the_request_deadline(backend: Backend) {
    // A request deadline no fork meets: a fork copying blobs is bounded by
    // `storage.transfer_timeout_ms` instead.
    let Some(app) = spawn_app_with(backend, |config| config.server.request_timeout_ms = 1).await else {
        return;
    };
    for (key, value) in values() {
        put(&app, &format!("session/snap/{key}"), value).await;
    }
    assert_eq!(fork(&app, "snap", json!({"session_id": "copy"})).await.expect(201)["blobs"], 5);
}

async fn malformed_blobs_are_refused_naming_the_path(backend: Backend) {
    let Some(app) = small_members(backend).await else { return };
    let value = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let good = json!({"format": "session-backend/1", "session_id": "copy", "session": null, "agents": [],
                      "multi_agents": [], "complete": true,
                      "blobs": [{"key": "scopes/agent/a/snapshots/snapshot_latest.json", "data": [value("{}")]},
                                {"key": "x", "data": [value("one"), value("two")]}]});
    let with = |path: &str, change: Value| {
        let mut document = good.clone();
        document[path] = change;
        document
    };
    let blob = |key: Value, data: Value| with("blobs", json!([good["blobs"][0], {"key": key, "data": data}]));
    let at = "2026-12-05T10:00:00.000000+00:00";
    let row = json!({"session_id": "other", "session_type": "AGENT", "metadata": {}, "created_at": at, "updated_at": at});
    let agent = json!({"agent_id": "a", "state": {}, "conversation_manager_state": {}, "internal_state": {},
                       "created_at": at, "updated_at": at, "messages": []});
    let too_big = vec![value(&"x".repeat(40_000)); 80];
    let cases: Vec<(Value, &str)> = vec![
        (blob(json!("a/../b"), json!([])), "blobs[1].key: `..`"),
        (blob(json!("a//b"), json!([])), "blobs[1].key: `a//b` is not a normalised key"),
        (blob(json!("/a"), json!([])), "blobs[1].key"),
        (blob(json!(""), json!([])), "blobs[1].key"),
        (blob(json!("k"), json!(["not base64!"])), "blobs[1].data[0]: not base64"),
        (blob(json!("k"), json!([value("ok"), "YQ"])), "blobs[1].data[1]"),
        (blob(json!("k"), json!("YQ==")), "blobs[1].data"),
        (blob(json!("k"), json!(too_big)), "storage.max_value_bytes"),
        (with("blobs", json!([{"data": [], "key": "k"}])), "blobs[0]: a blob's `key` must come before"),
        (with("blobs", json!([{"key": "k"}])), "blobs[0]: the blob has no `data`"),
        (with("blobs", json!({})), "blobs"),
        (with("blobs", json!([])), "nothing to import"),
        (with("agents", json!([agent])), "no agents or multi-agent states"),
        (with("session", row), "`session_id` and `session.session_id` differ"),
        (with("session_id", Value::Null), "session_id"),
        (with("session_id", json!("a/b")), "session_id"),
    ];
    for (document, names) in cases {
        let problem = import(&app, document.to_string()).await.expect_error(422, "ValidationError");
        assert!(problem.contains(names), "`{problem}` should name `{names}`");
    }
    let mut nameless = good.clone();
    nameless.as_object_mut().expect("object").shift_remove("session_id");
    let problem = import(&app, nameless.to_string()).await.expect_error(422, "ValidationError");
    assert!(problem.contains("`blobs` must come after `session_id`"), "{problem}");
    nameless.as_object_mut().expect("object").shift_remove("blobs");
    let problem = import(&app, nameless.to_string()).await.expect_error(422, "ValidationError");
    assert!(problem.contains("`session` is `null` and there is no `session_id`"), "{problem}");
    // Values are staged under their session's keys: its id comes first.
    let late = json!({"format": "session-backend/1", "blobs": good["blobs"], "session_id": "copy",
                      "agents": [], "complete": true});
    let problem = import(&app, late.to_string()).await.expect_error(422, "ValidationError");
    assert!(problem.contains("`blobs` must come after `session_id`"), "{problem}");
    // What a refusal quotes of a key is short.
    let problem = import(&app, blob(json!(format!("{}k", "/".repeat(10_000))), json!([])).to_string())
        .await
        .expect_error(422, "ValidationError");
    assert!(problem.len() < 300 && problem.contains("…"), "{problem}");
    // A key too long under the session's prefix.
    let long = with("blobs", json!([{"key": "k".repeat(1020), "data": []}]));
    let problem = import(&app, long.to_string()).await.expect_error(422, "ValidationError");
    assert!(problem.contains("longer than 1024 bytes"), "{problem}");
    // None of it made a blob, or left one staged.
    assert_eq!(app.get("/api/v1/storage?prefix=session/").await.expect(200)["keys"], json!([]));
    assert_eq!(staged_values(&app).await, 0);
    // The good one goes in; `x` is one value of both pieces.
    assert_eq!(import(&app, good.to_string()).await.expect(201), json!({"session_id": "copy", "blobs": 2}));
    assert_eq!(read(&app, "session/copy/x").await, (200, b"onetwo".to_vec()));
    // A repeated key: the later value.
    let repeated = json!({"format": "session-backend/1", "session_id": "again", "agents": [], "complete": true,
                          "blobs": [{"key": "k", "data": [value(&"a".repeat(30_000)), value(&"a".repeat(30_000))]}, {"key": "k", "data": [value("b")]}]});
    assert_eq!(import(&app, repeated.to_string()).await.expect(201)["blobs"], 1);
    assert_eq!(read(&app, "session/again/k").await, (200, b"b".to_vec()));
}

/// A client that sends half of a blob and goes away leaves nothing, and
/// its staged value is given up at once.
async fn a_blob_upload_cut_short_leaves_nothing(backend: Backend) {
    let Some(app) = small_members(backend).await else { return };
    put(&app, "session/src/big", binary()).await;
    let text =
        String::from_utf8(export(&app, "src").await).expect("UTF-8").replacen("\"src\"", "\"half\"", 1);
    let stream = import_part(&app, text.as_bytes(), text.len() * 3 / 4).await;
    // Its first chunks are staged (listed until it switches or gives up).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while staged_values(&app).await == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(staged_values(&app).await, 1, "the value is staged as it arrives");
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while staged_values(&app).await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(staged_values(&app).await, 0, "the staged value is given up");
    assert_eq!(read(&app, "session/half/big").await.0, 404);
    assert_eq!(app.get("/api/v1/storage?prefix=session/half/").await.expect(200)["keys"], json!([]));
}

/// A conditional write (`If-None-Match: *`) of a key an import brings,
/// sent while the import is switched in: it goes before the import (which
/// is then refused, 409) or after it (and is refused, 412), never beside
/// it, and no value is left that nothing points at or lists.
async fn writes_racing_an_import_of_their_keys_go_before_or_after_it(backend: Backend) {
    let Some(app) = small_members(backend).await else { return };
    let value = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let (mut before, mut after) = (0, 0);
    for n in 0..24u64 {
        let id = format!("race-{n}");
        let document = json!({"format": "session-backend/1", "session_id": id, "session": null, "agents": [],
                              "blobs": [{"key": "j", "data": [value("imported j")]}, {"key": "k", "data": [value("imported k")]}],
                              "complete": true});
        let key = format!("session/{id}/k");
        let write = async {
            tokio::time::sleep(Duration::from_millis(n % 6)).await;
            let put = app.client.put(app.url(&format!("/api/v1/storage/{key}"))).header("if-none-match", "*");
            put.body("written").send().await.expect("write").status().as_u16()
        };
        let (imported, written) = tokio::join!(import(&app, document.to_string()), write);
        match (imported.status.as_u16(), written) {
            (201, 412) => {
                after += 1;
                assert_eq!(read(&app, &key).await, (200, b"imported k".to_vec()));
            }
            (409, 204) => {
                before += 1;
                assert_eq!(read(&app, &key).await, (200, b"written".to_vec()));
                assert_eq!(read(&app, &format!("session/{id}/j")).await.0, 404, "nothing of the import");
            }
            other => panic!("import and write answered {other:?}"),
        }
    }
    eprintln!("writes before the import: {before}, after it: {after}");
    let orphans = scalar(
        &app.database_url,
        "SELECT COUNT(*) FROM blob_chunks c WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.tenant_id = c.tenant_id \
         AND b.key = c.key AND b.version = c.version) AND NOT EXISTS (SELECT 1 FROM blob_garbage g \
         WHERE g.tenant_id = c.tenant_id AND g.key = c.key AND g.version = c.version)",
    )
    .await;
    assert_eq!(orphans, 0, "chunks nothing points at or lists");
}
