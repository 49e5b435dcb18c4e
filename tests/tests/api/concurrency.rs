//! Parallel writers: nothing lost, no 500s.

use futures::future::join_all;
use serde_json::json;

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(fifty_parallel_appends_are_all_stored, twenty_parallel_creates_give_one_winner);

async fn fifty_parallel_appends_are_all_stored(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let replies = join_all((0..50).map(|i| {
        let body =
            json!({"message_id": i, "message": {"role": "user", "content": [{"text": format!("m{i}")}]}});
        let app = &app;
        let path = &path;
        async move { app.post(path, &body).await.status.as_u16() }
    }))
    .await;
    assert!(replies.iter().all(|&s| s == 201), "{replies:?}");
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(listed["total"], 50);
    let ids: Vec<_> =
        listed["messages"].as_array().expect("messages").iter().map(|m| m["message_id"].as_i64()).collect();
    assert_eq!(ids, (0..50).map(Some).collect::<Vec<_>>());
}

async fn twenty_parallel_creates_give_one_winner(backend: Backend) {
    let app = app!(backend);
    let replies = join_all((0..20).map(|_| {
        let app = &app;
        async move { app.post("/api/v1/sessions", &json!({"session_id": "race"})).await.status.as_u16() }
    }))
    .await;
    assert_eq!(replies.iter().filter(|&&s| s == 201).count(), 1, "{replies:?}");
    assert_eq!(replies.iter().filter(|&&s| s == 409).count(), 19, "{replies:?}");
    assert_eq!(app.get("/api/v1/sessions").await.expect(200)["total"], 1);
}
