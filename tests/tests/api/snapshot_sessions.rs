//! Sessions the SDK's `SnapshotSessionManager` keeps as blobs under
//! `session/<id>/`: deleting the session deletes them, and a session kept
//! only as such blobs is deleted the same way.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(
    deleting_a_session_deletes_its_snapshots,
    a_session_kept_only_as_snapshots_is_deleted_like_one
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
