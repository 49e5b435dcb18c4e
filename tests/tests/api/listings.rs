//! Pages larger than one read chunk (a few MiB) come back whole and in
//! order, whatever the style of listing, with rows that tie on their
//! timestamps.

use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp, message_ids},
};

both_backends!(large_pages_come_back_whole_and_in_order);

const STAMP: &str = "2026-11-21T10:00:00.123456+00:00";

fn ids(listing: &Value, field: &str, key: &str) -> Vec<String> {
    listing[field]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[key].to_string().trim_matches('"').to_owned())
        .collect()
}

async fn large_pages_come_back_whole_and_in_order(backend: Backend) {
    let app = app!(backend);
    let blob = "x".repeat(700 * 1024);
    // Sessions and agents with one shared timestamp: only the id orders them.
    for i in 0..14 {
        let body = json!({"session_id": format!("s{i:02}"), "metadata": {"blob": blob}, "created_at": STAMP});
        app.post("/api/v1/sessions", &body).await.expect(201);
    }
    let listed = app.get("/api/v1/sessions?page_size=1000").await.expect(200);
    let expected: Vec<String> = (0..14).rev().map(|i| format!("s{i:02}")).collect();
    assert_eq!(ids(&listed, "sessions", "session_id"), expected);
    assert_eq!(listed["total"], 14);
    assert_eq!(listed["sessions"][13]["metadata"]["blob"].as_str().map(str::len), Some(blob.len()));
    let second = app.get("/api/v1/sessions?page=2&page_size=5").await.expect(200);
    assert_eq!(ids(&second, "sessions", "session_id"), expected[5..10].to_vec());

    for i in 0..14 {
        let agent = json!({"agent_id": format!("a{i:02}"), "state": {"blob": blob}, "conversation_manager_state": {}, "created_at": STAMP});
        app.post("/api/v1/sessions/s00/agents", &agent).await.expect(201);
    }
    let agents = app.get("/api/v1/sessions/s00/agents?page_size=1000").await.expect(200);
    assert_eq!(ids(&agents, "agents", "agent_id"), (0..14).map(|i| format!("a{i:02}")).collect::<Vec<_>>());

    let path = TestApp::messages_path("s00", "a00");
    let batch: Vec<Value> = (0..30)
        .map(|i| json!({"message_id": i, "message": {"role": "user", "content": [{"text": blob}]}}))
        .collect();
    app.post(&format!("{path}/batch"), &json!({"messages": batch[..15]})).await.expect(201);
    app.post(&format!("{path}/batch"), &json!({"messages": batch[15..]})).await.expect(201);
    let all = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(message_ids(&all), (0..30).collect::<Vec<_>>());
    assert_eq!(all["next_offset"], Value::Null);
    let window = app.get(&format!("{path}?offset=7&limit=15")).await.expect(200);
    assert_eq!(message_ids(&window), (7..22).collect::<Vec<_>>());
    assert_eq!(window["next_offset"], 22);
    let desc = app.get(&format!("{path}?order=desc&after_message_id=25&limit=20")).await.expect(200);
    assert_eq!(message_ids(&desc), (5..25).rev().collect::<Vec<_>>());
    assert_eq!(desc["next_offset"], 25);
    let keyset = app.get(&format!("{path}?after_message_id=3&offset=2")).await.expect(200);
    assert_eq!(message_ids(&keyset), (6..30).collect::<Vec<_>>());
}
