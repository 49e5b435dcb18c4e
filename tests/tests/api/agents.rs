//! `/api/v1/sessions/{sid}/agents`.

use serde_json::json;

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(
    create_returns_both_internal_state_names,
    internal_state_aliases,
    create_errors,
    get_and_missing,
    update_keeps_unsent_fields_and_ignores_unknown_ones,
    update_errors,
    delete_takes_the_messages_along,
    list_is_oldest_first,
);

const AGENTS: &str = "/api/v1/sessions/s1/agents";

async fn create_returns_both_internal_state_names(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    let internal = json!({"interrupt_state": {"activated": false, "context": {}}, "model_state": {"x": 1}});
    let body = app
        .post(
            AGENTS,
            &json!({
                "agent_id": "a1",
                "state": {"k": "v"},
                "conversation_manager_state": {"__name__": "SlidingWindowConversationManager", "removed_message_count": 0},
                "_internal_state": internal,
                "created_at": "2026-03-04T05:06:07.000001+00:00",
                "updated_at": "2026-03-04T05:06:07.000001+00:00",
            }),
        )
        .await
        .expect(201);
    assert_eq!(body["session_id"], "s1");
    assert_eq!(body["agent_id"], "a1");
    assert_eq!(body["state"], json!({"k": "v"}));
    assert_eq!(body["_internal_state"], internal);
    assert_eq!(body["internal_state"], internal);
    assert_eq!(body["created_at"], "2026-03-04T05:06:07.000001+00:00");
    assert_eq!(app.get(&format!("{AGENTS}/a1")).await.expect(200), body);
}

async fn internal_state_aliases(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    let base = json!({"state": {}, "conversation_manager_state": {}});
    let mut old_name = base.clone();
    old_name["agent_id"] = json!("old");
    old_name["internal_state"] = json!({"from": "internal_state"});
    let body = app.post(AGENTS, &old_name).await.expect(201);
    assert_eq!(body["_internal_state"], json!({"from": "internal_state"}));
    let mut both = base.clone();
    both["agent_id"] = json!("both");
    both["internal_state"] = json!({"from": "internal_state"});
    both["_internal_state"] = json!({"from": "_internal_state"});
    let body = app.post(AGENTS, &both).await.expect(201);
    assert_eq!(body["internal_state"], json!({"from": "_internal_state"}));
    let mut neither = base;
    neither["agent_id"] = json!("neither");
    let body = app.post(AGENTS, &neither).await.expect(201);
    assert_eq!(body["_internal_state"], json!({}));
    let body = app.put(&format!("{AGENTS}/old"), &json!({"internal_state": {"v": 2}})).await.expect(200);
    assert_eq!(body["_internal_state"], json!({"v": 2}));
}

async fn create_errors(backend: Backend) {
    let app = app!(backend);
    let agent = json!({"agent_id": "a1", "state": {}, "conversation_manager_state": {}});
    app.post(AGENTS, &agent).await.expect_error(404, "NotFoundError");
    app.session("s1").await;
    app.post(AGENTS, &agent).await.expect(201);
    app.post(AGENTS, &agent).await.expect_error(409, "ConflictError");
    for bad in [
        json!({"agent_id": "a2", "conversation_manager_state": {}}),
        json!({"agent_id": "a2", "state": {}}),
        json!({"agent_id": "a2", "state": 1, "conversation_manager_state": {}}),
        json!({"agent_id": "a/2", "state": {}, "conversation_manager_state": {}}),
        json!({"agent_id": "", "state": {}, "conversation_manager_state": {}}),
        json!({"agent_id": "a2", "state": {}, "conversation_manager_state": {}, "_internal_state": []}),
        json!({"agent_id": "a2", "state": {}, "conversation_manager_state": {}, "created_at": "x"}),
    ] {
        app.post(AGENTS, &bad).await.expect_error(422, "ValidationError");
    }
    app.post("/api/v1/sessions/a%2Fb/agents", &agent).await.expect_error(422, "ValidationError");
    assert_eq!(app.get(AGENTS).await.expect(200)["total"], 1);
}

async fn get_and_missing(backend: Backend) {
    let app = app!(backend);
    app.get(&format!("{AGENTS}/a1")).await.expect_error(404, "NotFoundError");
    app.agent("s1", "a1").await;
    app.get(&format!("{AGENTS}/a1")).await.expect(200);
    app.get(&format!("{AGENTS}/a2")).await.expect_error(404, "NotFoundError");
    app.get("/api/v1/sessions/s2/agents/a1").await.expect_error(404, "NotFoundError");
}

async fn update_keeps_unsent_fields_and_ignores_unknown_ones(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    let created = app
        .post(
            AGENTS,
            &json!({"agent_id": "a1", "state": {"a": 1}, "conversation_manager_state": {"c": 1}, "_internal_state": {"i": 1}}),
        )
        .await
        .expect(201);
    let body = app.put(&format!("{AGENTS}/a1"), &json!({"state": {"a": 2}})).await.expect(200);
    assert_eq!(body["state"], json!({"a": 2}));
    assert_eq!(body["conversation_manager_state"], json!({"c": 1}));
    assert_eq!(body["_internal_state"], json!({"i": 1}));
    assert_eq!(body["created_at"], created["created_at"]);
    assert_ne!(body["updated_at"], created["updated_at"]);
    // The SDK sends its whole SessionAgent.to_dict().
    let sdk = json!({
        "agent_id": "ignored-here",
        "state": {"a": 3},
        "conversation_manager_state": {"c": 3},
        "_internal_state": {"i": 3},
        "created_at": "2000-01-01T00:00:00+00:00",
        "updated_at": "2000-01-01T00:00:00+00:00",
        "something_new": true,
    });
    let body = app.put(&format!("{AGENTS}/a1"), &sdk).await.expect(200);
    assert_eq!(body["agent_id"], "a1");
    assert_eq!(body["state"], json!({"a": 3}));
    assert_eq!(body["conversation_manager_state"], json!({"c": 3}));
    assert_eq!(body["internal_state"], json!({"i": 3}));
    assert_eq!(body["created_at"], created["created_at"]);
    assert_eq!(app.get(&format!("{AGENTS}/a1")).await.expect(200), body);
}

async fn update_errors(backend: Backend) {
    let app = app!(backend);
    app.put(&format!("{AGENTS}/a1"), &json!({"state": {}})).await.expect_error(404, "NotFoundError");
    app.agent("s1", "a1").await;
    for bad in
        [json!({"state": 5}), json!({"conversation_manager_state": "x"}), json!({"_internal_state": [1]})]
    {
        app.put(&format!("{AGENTS}/a1"), &bad).await.expect_error(422, "ValidationError");
    }
    assert_eq!(app.get(&format!("{AGENTS}/a1")).await.expect(200)["state"], json!({}));
}

async fn delete_takes_the_messages_along(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let messages = TestApp::messages_path("s1", "a1");
    app.post(&messages, &json!({"message_id": 0, "message": {"role": "user", "content": []}}))
        .await
        .expect(201);
    app.delete(&format!("{AGENTS}/a1")).await.expect(204);
    app.delete(&format!("{AGENTS}/a1")).await.expect_error(404, "NotFoundError");
    app.get(&format!("{messages}/0")).await.expect_error(404, "NotFoundError");
    app.post(AGENTS, &json!({"agent_id": "a1", "state": {}, "conversation_manager_state": {}}))
        .await
        .expect(201);
    assert_eq!(app.get(&format!("{messages}?offset=0")).await.expect(200)["total"], 0);
    app.get("/api/v1/sessions/s1").await.expect(200);
}

async fn list_is_oldest_first(backend: Backend) {
    let app = app!(backend);
    app.get(AGENTS).await.expect_error(404, "NotFoundError");
    app.session("s1").await;
    assert_eq!(app.get(AGENTS).await.expect(200)["agents"], json!([]));
    for (i, id) in ["c", "a", "b"].iter().enumerate() {
        app.post(
            AGENTS,
            &json!({"agent_id": id, "state": {}, "conversation_manager_state": {},
                    "created_at": format!("2026-01-0{}T00:00:00+00:00", i + 1)}),
        )
        .await
        .expect(201);
    }
    let all = app.get(AGENTS).await.expect(200);
    let ids: Vec<_> =
        all["agents"].as_array().expect("agents").iter().map(|a| a["agent_id"].clone()).collect();
    assert_eq!(ids, [json!("c"), json!("a"), json!("b")]);
    assert_eq!(all["total"], 3);
    let second = app.get(&format!("{AGENTS}?page=2&page_size=2")).await.expect(200);
    assert_eq!(second["agents"][0]["agent_id"], "b");
    assert_eq!(second["page"], 2);
    app.get(&format!("{AGENTS}?page_size=1001")).await.expect_error(422, "ValidationError");
    app.get(&format!("{AGENTS}?page=0")).await.expect_error(422, "ValidationError");
}
