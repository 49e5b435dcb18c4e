//! Opaque JSON comes back equal by value, whatever it holds.

use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(awkward_payloads_round_trip_everywhere, one_mebibyte_message_round_trips);

fn awkward() -> Value {
    let mut deep = json!("bottom");
    for i in 0..100 {
        deep = if i % 2 == 0 { json!({"level": deep}) } else { json!([deep]) };
    }
    let raw = r#"{
        "nul": "before\u0000after",
        "big": 9007199254740993,
        "bigger": 123456789012345678901234567890,
        "negative": -9223372036854775808,
        "float": 0.1,
        "tiny": 5e-324,
        "unicode": "héllo wörld ✓ 日本語 🦀 \ud83d\ude00",
        "escapes": "quote \" backslash \\ newline \n tab \t",
        "bytes": {"__bytes_encoded__": true, "data": "AAECAwQF/w=="},
        "empty": {},
        "list": [null, true, false, 0, -1, "", []],
        "keys": {"": 1, "with space": 2, "ünï": 3, "__name__": "x"}
    }"#;
    let mut value: Value = serde_json::from_str(raw).expect("fixture parses");
    value["deep"] = deep;
    value
}

async fn awkward_payloads_round_trip_everywhere(backend: Backend) {
    let app = app!(backend);
    let payload = awkward();
    let session =
        app.post("/api/v1/sessions", &json!({"session_id": "s1", "metadata": payload})).await.expect(201);
    assert_eq!(session["metadata"], payload);
    assert_eq!(app.get("/api/v1/sessions/s1").await.expect(200)["metadata"], payload);

    let agent = json!({"agent_id": "a1", "state": payload, "conversation_manager_state": payload, "_internal_state": payload});
    app.post("/api/v1/sessions/s1/agents", &agent).await.expect(201);
    let stored = app.get("/api/v1/sessions/s1/agents/a1").await.expect(200);
    for field in ["state", "conversation_manager_state", "_internal_state", "internal_state"] {
        assert_eq!(stored[field], payload, "{field}");
    }

    let mut message = payload.clone();
    message["role"] = json!("user");
    message["content"] =
        json!([{"text": "a\u{0}b"}, {"image": {"format": "png", "source": {"bytes": payload["bytes"]}}}]);
    let path = TestApp::messages_path("s1", "a1");
    let sent = json!({"message_id": 0, "message": message, "redact_message": message});
    app.post(&path, &sent).await.expect(201);
    let got = app.get(&format!("{path}/0")).await.expect(200);
    assert_eq!(got["message"], message);
    assert_eq!(got["redact_message"], message);
    // An identical replay is recognised even with numbers and NULs inside.
    app.post(&path, &sent).await.expect(200);
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(listed["messages"][0]["message"], message);

    app.post("/api/v1/sessions/s1/multi-agents", &json!({"multi_agent_id": "g", "state": payload}))
        .await
        .expect(201);
    assert_eq!(app.get("/api/v1/sessions/s1/multi-agents/g").await.expect(200)["state"], payload);

    // The exact digits survive, not just an approximation.
    let raw =
        app.client.get(app.url("/api/v1/sessions/s1")).send().await.expect("get").text().await.expect("text");
    assert!(raw.contains("9007199254740993"), "{raw}");
    assert!(raw.contains("123456789012345678901234567890"), "{raw}");
}

async fn one_mebibyte_message_round_trips(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let text: String = (0..1024 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let message = json!({"role": "user", "content": [{"text": text}]});
    app.post(&path, &json!({"message_id": 0, "message": message})).await.expect(201);
    assert_eq!(app.get(&format!("{path}/0")).await.expect(200)["message"], message);
}
