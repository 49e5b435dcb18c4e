//! The calls the Strands SDK makes, in the order it makes them.

use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(agent_lifecycle_as_the_sdk_drives_it, restores_a_2500_message_history);

fn session_message(id: i64) -> Value {
    let role = if id % 2 == 0 { "user" } else { "assistant" };
    json!({
        "message": {"role": role, "content": [{"text": format!("turn {id}")}]},
        "message_id": id,
        "redact_message": null,
        "created_at": "2026-11-21T10:00:00.123456+00:00",
        "updated_at": "2026-11-21T10:00:00.123456+00:00",
    })
}

async fn agent_lifecycle_as_the_sdk_drives_it(backend: Backend) {
    let app = app!(backend);
    // RepositorySessionManager: read_session → missing → create_session.
    app.get("/api/v1/sessions/user%40example.com").await.expect(404);
    app.post("/api/v1/sessions", &json!({"session_id": "user@example.com", "session_type": "AGENT"}))
        .await
        .expect(201);
    // create_agent with SessionAgent.to_dict().
    let agent = json!({
        "agent_id": "default",
        "state": {},
        "conversation_manager_state": {"__name__": "SlidingWindowConversationManager", "removed_message_count": 0},
        "_internal_state": {"interrupt_state": {"interrupts": {}, "context": {}, "activated": false}},
        "created_at": "2026-11-21T10:00:00.123456+00:00",
        "updated_at": "2026-11-21T10:00:00.123456+00:00",
    });
    let base = "/api/v1/sessions/user%40example.com/agents";
    app.post(base, &agent).await.expect(201);
    let path = TestApp::messages_path("user@example.com", "default");
    for id in 0..4 {
        app.post(&path, &session_message(id)).await.expect(201);
        // update_agent with the whole dict after each message.
        let mut update = agent.clone();
        update["state"] = json!({"turns": id + 1});
        update["_internal_state"]["interrupt_state"]["activated"] = json!(id == 3);
        app.put(&format!("{base}/default"), &update).await.expect(200);
    }
    // Guardrail redaction of the latest user message.
    let mut redact = session_message(2);
    redact["redact_message"] = json!({"role": "user", "content": [{"text": "[User input redacted.]"}]});
    app.put(&format!("{path}/2"), &redact).await.expect(200);
    // Restart: read_agent, then list_messages(offset=removed_message_count).
    let restored = app.get(&format!("{base}/default")).await.expect(200);
    assert_eq!(restored["state"], json!({"turns": 4}));
    assert_eq!(restored["_internal_state"]["interrupt_state"]["activated"], true);
    assert_eq!(restored["conversation_manager_state"]["__name__"], "SlidingWindowConversationManager");
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    let messages = listed["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["redact_message"]["content"][0]["text"], "[User input redacted.]");
    assert_eq!(messages[3], session_message(3));
    // A retried create_message after a timeout is harmless.
    app.post(&path, &session_message(3)).await.expect(200);
}

async fn restores_a_2500_message_history(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    for chunk in (0..2500).collect::<Vec<i64>>().chunks(1000) {
        let batch: Vec<_> = chunk.iter().map(|&i| session_message(i)).collect();
        app.post(&format!("{path}/batch"), &json!({"messages": batch})).await.expect(201);
    }
    // The SDK: offset = removed_message_count, no limit; follow next_offset.
    for removed in [0_i64, 100] {
        let mut offset = Some(removed);
        let mut seen = Vec::new();
        while let Some(at) = offset {
            let page = app.get(&format!("{path}?offset={at}")).await.expect(200);
            assert_eq!(page["total"], 2500);
            seen.extend(
                page["messages"].as_array().expect("messages").iter().map(|m| m["message_id"].as_i64()),
            );
            offset = page["next_offset"].as_i64();
        }
        let expected: Vec<_> = (removed..2500).map(Some).collect();
        assert_eq!(seen, expected, "restore from offset {removed}");
    }
    // And in pages of 1000 by next_offset.
    let mut offset = Some(0);
    let mut count = 0;
    while let Some(at) = offset {
        let page = app.get(&format!("{path}?offset={at}&limit=1000")).await.expect(200);
        count += page["messages"].as_array().map_or(0, Vec::len);
        offset = page["next_offset"].as_i64();
    }
    assert_eq!(count, 2500);
}
