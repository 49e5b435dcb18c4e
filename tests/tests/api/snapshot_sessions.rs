//! Sessions the SDK's `SnapshotSessionManager` keeps as blobs under
//! `session/<id>/`: deleting the session deletes them, a session kept
//! only as such blobs is deleted the same way, and retention expires idle
//! snapshot sessions, old history and a lapsed session's snapshots.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp, spawn_app_with},
};

both_backends!(
    deleting_a_session_deletes_its_snapshots,
    a_session_kept_only_as_snapshots_is_deleted_like_one,
    retention_expires_idle_snapshot_sessions_and_old_history
);

async fn put(app: &TestApp, key: &str, bytes: &'static str) {
    let put = app.client.put(app.url(&format!("/api/v1/storage/{key}"))).body(bytes);
    TestApp::reply(put.send().await.expect("write")).await.expect(204);
}

async fn keys(app: &TestApp) -> Vec<String> {
    let listed = app.get("/api/v1/storage?limit=1000").await.expect(200);
    listed["keys"].as_array().expect("keys").iter().map(|k| k.as_str().expect("key").to_owned()).collect()
}

/// The SDK's layout for a session `id`: its agent's latest snapshot and
/// two of its history, and an orchestrator's.
async fn snapshots_of(app: &TestApp, id: &str) {
    for key in [
        format!("session/{id}/scopes/agent/a/snapshots/snapshot_latest.json"),
        format!("session/{id}/scopes/agent/a/immutable_history/snapshot_01.json"),
        format!("session/{id}/scopes/agent/a/immutable_history/snapshot_02.json"),
        format!("session/{id}/scopes/multiAgent/g/snapshots/snapshot_latest.json"),
    ] {
        put(app, &key, r#"{"schema_version": "1.0"}"#).await;
    }
}

async fn deleting_a_session_deletes_its_snapshots(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a").await;
    snapshots_of(&app, "s1").await;
    // Neighbours that must stay: another session's (whose id starts the
    // same) and a key that only mentions the id.
    snapshots_of(&app, "s10").await;
    put(&app, "notes/session/s1/x.txt", "kept").await;
    let before = keys(&app).await;
    assert_eq!(before.len(), 9);
    // A lease refuses the delete: nothing goes.
    app.put("/api/v1/sessions/s1/lease", &json!({"holder": "w", "ttl_seconds": 60})).await.expect(200);
    app.delete("/api/v1/sessions/s1").await.expect_error(423, "LeaseHeldError");
    assert_eq!(keys(&app).await, before);
    app.call(Method::DELETE, "/api/v1/sessions/s1/lease?force=true", None).await.expect(204);
    app.delete("/api/v1/sessions/s1").await.expect(204);
    let left = keys(&app).await;
    assert!(left.iter().all(|k| !k.starts_with("session/s1/")), "{left:?}");
    assert_eq!(left.iter().filter(|k| k.starts_with("session/s10/")).count(), 4, "{left:?}");
    assert!(left.contains(&"notes/session/s1/x.txt".to_owned()));
    app.get("/api/v1/sessions/s1").await.expect_error(404, "NotFoundError");
}

async fn a_session_kept_only_as_snapshots_is_deleted_like_one(backend: Backend) {
    let app = app!(backend);
    snapshots_of(&app, "snap").await;
    app.get("/api/v1/sessions/snap").await.expect_error(404, "NotFoundError");
    app.delete("/api/v1/sessions/snap").await.expect(204);
    assert_eq!(keys(&app).await, Vec::<String>::new());
    let again = app.delete("/api/v1/sessions/snap").await;
    let problem: Value = again.body.clone();
    again.expect_error(404, "NotFoundError");
    assert!(problem["detail"]["message"].as_str().is_some_and(|m| m.contains("snap")));
}

async fn retention_expires_idle_snapshot_sessions_and_old_history(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.retention.sweep_interval_ms = 100;
        config.retention.snapshot_ttl_seconds = 1;
        config.retention.snapshot_history_ttl_seconds = 1;
    })
    .await
    else {
        return;
    };
    // `idle` is never written again; `active` keeps writing its latest
    // snapshot; `kept` has a row (its own TTL governs it); `lapsed` has a
    // row that lapses after a second.
    for id in ["idle", "active", "kept", "lapsed"] {
        snapshots_of(&app, id).await;
    }
    app.agent("kept", "a").await;
    app.post("/api/v1/sessions", &json!({"session_id": "lapsed", "ttl_seconds": 1})).await.expect(201);
    let latest = "session/active/scopes/agent/a/snapshots/snapshot_latest.json";
    let want = |keys: &[String]| {
        let under = |id: &str| keys.iter().filter(|k| k.starts_with(&format!("session/{id}/"))).count();
        let history = keys.iter().any(|k| k.contains("/immutable_history/"));
        (under("idle"), under("lapsed"), history, under("active"), under("kept"))
    };
    let started = std::time::Instant::now();
    loop {
        put(&app, latest, r#"{"schema_version": "1.0", "fresh": true}"#).await;
        let now = keys(&app).await;
        if want(&now) == (0, 0, false, 2, 2) {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "not expired as configured: {now:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // What stays: the active session's latest snapshots, the row session's.
    let left = keys(&app).await;
    assert!(left.contains(&latest.to_owned()), "{left:?}");
    assert!(
        left.contains(&"session/kept/scopes/multiAgent/g/snapshots/snapshot_latest.json".to_owned()),
        "{left:?}"
    );
    app.get("/api/v1/sessions/kept").await.expect(200);
}
