//! `POST /api/v1/sessions/{id}/fork`: a whole copy, a cut history, and the
//! refusals, which change nothing.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(
    a_fork_copies_everything_and_stands_alone,
    a_cut_keeps_one_agents_history_up_to_a_message,
    refusals_change_nothing,
    a_lapsed_session_is_no_source_and_its_id_is_free,
    forks_taken_while_agents_are_added_are_whole
);

const SOURCE: &str = "/api/v1/sessions/src";

/// A session with two agents (one with a sliding window's state and a
/// summary), their messages (one redacted) and a multi-agent state.
async fn seeded(app: &TestApp) {
    let created = json!({"session_id": "src", "session_type": "MULTI_AGENT", "metadata": {"team": "x"}, "ttl_seconds": 3600});
    app.post("/api/v1/sessions", &created).await.expect(201);
    let cms = json!({
        "__name__": "SummarizingConversationManager",
        "removed_message_count": 4,
        "summary_message": {"role": "user", "content": [{"text": "earlier: weather talk"}]},
    });
    let agent = json!({"agent_id": "a", "state": {"k": [1, 2]}, "conversation_manager_state": cms,
                       "_internal_state": {"interrupt_state": {"activated": false}}});
    app.post(&format!("{SOURCE}/agents"), &agent).await.expect(201);
    app.agent_in("src", "b").await;
    for (agent, count) in [("a", 6), ("b", 3)] {
        for n in 0..count {
            let role = if n % 2 == 0 { "user" } else { "assistant" };
            let message = json!({"message_id": n, "message": {"role": role, "content": [{"text": format!("{agent} {n}")}]}});
            app.post(&TestApp::messages_path("src", agent), &message).await.expect(201);
        }
    }
    let redacted = json!({"message": {"role": "user", "content": [{"text": "a 1"}]},
                          "redact_message": {"role": "user", "content": [{"text": "[removed]"}]}});
    app.put(&format!("{}/1", TestApp::messages_path("src", "a")), &redacted).await.expect(200);
    let graph = json!({"multi_agent_id": "g", "state": {"status": "executing", "node_history": ["a"]}});
    app.post(&format!("{SOURCE}/multi-agents"), &graph).await.expect(201);
}

/// Everything stored under a session, minus the fields a copy renames or
/// restamps (`session_id`, versions and times of the session itself).
async fn contents(app: &TestApp, session: &str) -> Value {
    let base = format!("/api/v1/sessions/{session}");
    let strip = |mut v: Value| {
        if let Some(fields) = v.as_object_mut() {
            fields.remove("session_id");
        }
        v
    };
    let agents = app.get(&format!("{base}/agents")).await.expect(200)["agents"].clone();
    let mut out = json!({});
    for agent in agents.as_array().expect("agents") {
        let id = agent["agent_id"].as_str().expect("id");
        let messages =
            app.get(&format!("{}?limit=1000", TestApp::messages_path(session, id))).await.expect(200);
        let messages: Vec<Value> =
            messages["messages"].as_array().expect("messages").iter().cloned().map(strip).collect();
        out[id] = json!({"agent": strip(agent.clone()), "messages": messages});
    }
    let graphs = app.get(&format!("{base}/multi-agents")).await.expect(200)["multi_agents"].clone();
    out["multi_agents"] =
        Value::Array(graphs.as_array().expect("graphs").iter().cloned().map(strip).collect());
    out
}

async fn a_fork_copies_everything_and_stands_alone(backend: Backend) {
    let app = app!(backend);
    seeded(&app).await;
    let reply = app.post(&format!("{SOURCE}/fork"), &json!({"session_id": "copy"})).await;
    let etag = reply.etag();
    let forked = reply.expect(201);
    assert!(!etag.is_empty());
    let source = app.get(SOURCE).await.expect(200);
    assert_eq!(forked["session_id"], "copy");
    for field in ["session_type", "metadata", "ttl_seconds"] {
        assert_eq!(forked[field], source[field], "{field}");
    }
    assert_eq!(app.get("/api/v1/sessions/copy").await.expect(200), forked);
    let (original, copy) = (contents(&app, "src").await, contents(&app, "copy").await);
    assert_eq!(copy, original, "every agent, message and multi-agent state, as stored");
    assert_eq!(copy["a"]["messages"].as_array().map(Vec::len), Some(6));
    // The fork stands alone: writing it leaves the source as it was, and back.
    let next =
        json!({"message_id": 6, "message": {"role": "user", "content": [{"text": "only in the copy"}]}});
    app.post(&TestApp::messages_path("copy", "a"), &next).await.expect(201);
    app.delete("/api/v1/sessions/src/agents/b").await.expect(204);
    assert_eq!(contents(&app, "copy").await["a"]["messages"].as_array().map(Vec::len), Some(7));
    assert_eq!(contents(&app, "src").await["a"]["messages"].as_array().map(Vec::len), Some(6));
    assert!(contents(&app, "copy").await.get("b").is_some());
}

async fn a_cut_keeps_one_agents_history_up_to_a_message(backend: Backend) {
    let app = app!(backend);
    seeded(&app).await;
    let cut = json!({"session_id": "retry", "agent_id": "a", "up_to_message_id": 2});
    app.post(&format!("{SOURCE}/fork"), &cut).await.expect(201);
    let (original, fork) = (contents(&app, "src").await, contents(&app, "retry").await);
    let kept: Vec<Value> = original["a"]["messages"].as_array().expect("a").iter().take(3).cloned().collect();
    assert_eq!(fork["a"]["messages"], Value::Array(kept), "messages 0 to 2, the redaction kept");
    assert_eq!(fork["b"], original["b"], "the other agent whole");
    assert_eq!(fork["multi_agents"], original["multi_agents"]);
    // Its conversation manager restores every kept message, and no summary
    // of messages it may no longer hold; the rest of its state as it was.
    let cms = &fork["a"]["agent"]["conversation_manager_state"];
    assert_eq!(cms, &json!({"__name__": "SummarizingConversationManager", "removed_message_count": 0}));
    assert_eq!(fork["a"]["agent"]["state"], original["a"]["agent"]["state"]);
    assert_eq!(fork["a"]["agent"]["_internal_state"], original["a"]["agent"]["_internal_state"]);
    // A cut past the end keeps everything; at 0, one message.
    app.post(
        &format!("{SOURCE}/fork"),
        &json!({"session_id": "all", "agent_id": "a", "up_to_message_id": 99}),
    )
    .await
    .expect(201);
    assert_eq!(contents(&app, "all").await["a"]["messages"], original["a"]["messages"]);
    app.post(
        &format!("{SOURCE}/fork"),
        &json!({"session_id": "one", "agent_id": "b", "up_to_message_id": 0}),
    )
    .await
    .expect(201);
    assert_eq!(contents(&app, "one").await["b"]["messages"].as_array().map(Vec::len), Some(1));
}

async fn refusals_change_nothing(backend: Backend) {
    let app = app!(backend);
    seeded(&app).await;
    app.session("taken").await;
    let fork = |source: &str, body: Value| {
        let app = &app;
        let path = format!("/api/v1/sessions/{source}/fork");
        async move { app.post(&path, &body).await }
    };
    fork("missing", json!({"session_id": "n1"})).await.expect_error(404, "NotFoundError");
    fork("src", json!({"session_id": "taken"})).await.expect_error(409, "ConflictError");
    fork("src", json!({"session_id": "n2", "agent_id": "zz", "up_to_message_id": 1}))
        .await
        .expect_error(404, "NotFoundError");
    for bad in [
        json!({}),
        json!({"session_id": "a/b"}),
        json!({"session_id": ""}),
        json!({"session_id": "n3", "agent_id": "a"}),
        json!({"session_id": "n3", "up_to_message_id": 1}),
        json!({"session_id": "n3", "agent_id": "a", "up_to_message_id": -1}),
        json!({"session_id": "n3", "agent_id": "a", "up_to_message_id": "2"}),
        json!({"session_id": "n3", "extra": 1, "agent_id": ["a"]}),
    ] {
        fork("src", bad.clone()).await.expect_error(422, "ValidationError");
    }
    // Past 2^64, as raw JSON.
    let huge = r#"{"session_id": "n3", "agent_id": "a", "up_to_message_id": 18446744073709551616}"#;
    app.call_raw(reqwest::Method::POST, &format!("{SOURCE}/fork"), huge)
        .await
        .expect_error(422, "ValidationError");
    for id in ["n1", "n2", "n3"] {
        app.get(&format!("/api/v1/sessions/{id}")).await.expect_error(404, "NotFoundError");
    }
    assert_eq!(app.get("/api/v1/sessions/taken/agents").await.expect(200)["agents"], json!([]));
    // A lease on the source does not stop a fork (it only reads the source),
    // and the fork has no lease of its own.
    let lease = json!({"holder": "w1", "ttl_seconds": 60});
    app.put(&format!("{SOURCE}/lease"), &lease).await.expect(200);
    fork("src", json!({"session_id": "while-leased"})).await.expect(201);
    let next = json!({"message_id": 3, "message": {"role": "user", "content": [{"text": "free"}]}});
    app.post(&TestApp::messages_path("while-leased", "b"), &next).await.expect(201);
}

async fn a_lapsed_session_is_no_source_and_its_id_is_free(backend: Backend) {
    let app = app!(backend);
    seeded(&app).await;
    app.post("/api/v1/sessions", &json!({"session_id": "old", "ttl_seconds": 1})).await.expect(201);
    app.agent_in("old", "x").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.post("/api/v1/sessions/old/fork", &json!({"session_id": "n"}))
        .await
        .expect_error(404, "NotFoundError");
    app.post(&format!("{SOURCE}/fork"), &json!({"session_id": "old"})).await.expect(201);
    let reborn = contents(&app, "old").await;
    assert!(
        reborn.get("x").is_none() && reborn.get("a").is_some(),
        "the fork, not the lapsed session: {reborn}"
    );
}

/// Agents and their first messages are added while forks are taken: each
/// fork is made whole (a message is copied with its agent or not at all).
async fn forks_taken_while_agents_are_added_are_whole(backend: Backend) {
    let app = app!(backend);
    seeded(&app).await;
    let adding = async {
        for n in 0..12 {
            let agent = format!("late{n}");
            app.agent_in("src", &agent).await;
            let message = json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]}});
            app.post(&TestApp::messages_path("src", &agent), &message).await.expect(201);
        }
    };
    let forking = join_all((0..12).map(|n| {
        let app = &app;
        async move { app.post(&format!("{SOURCE}/fork"), &json!({"session_id": format!("f{n}")})).await }
    }));
    let ((), forks) = futures::join!(adding, forking);
    for (n, reply) in forks.into_iter().enumerate() {
        reply.expect(201);
        let copy = contents(&app, &format!("f{n}")).await;
        for (agent, stored) in copy.as_object().expect("contents") {
            if agent.starts_with("late") {
                assert!(stored["messages"].as_array().map_or(0, Vec::len) <= 1, "{agent}: {stored}");
            }
        }
    }
}
