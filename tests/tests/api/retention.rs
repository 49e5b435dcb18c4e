//! Retention: `ttl_seconds` per session or a configured default; a lapsed
//! session and everything under it answer 404 at once; the sweeper
//! deletes them in batches, also with two replicas sweeping at once.
//! TTLs are seconds, so these tests wait about a second (bounded).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, spawn_app_with, start},
};

both_backends!(
    a_lapsed_session_and_everything_under_it_answer_404,
    ttl_comes_from_the_request_or_the_default_and_counts_from_updates,
    bad_ttls_are_refused_and_write_nothing,
    the_sweeper_deletes_lapsed_sessions_in_batches,
);

/// The server with its sweeper off, so lapsed rows stay for the reads.
async fn app(backend: Backend, default_ttl: u64) -> Option<TestApp> {
    spawn_app_with(backend, |c| {
        c.retention.sweep_interval_ms = 0;
        c.retention.default_ttl_seconds = default_ttl;
    })
    .await
}

/// A session `id` with an agent `a`, one message and a multi-agent state `m`.
async fn populated(app: &TestApp, id: &str, ttl: Option<u64>) -> Value {
    let mut body = json!({"session_id": id});
    if let Some(ttl) = ttl {
        body["ttl_seconds"] = json!(ttl);
    }
    let session = app.post("/api/v1/sessions", &body).await.expect(201);
    let base = format!("/api/v1/sessions/{id}");
    app.post(
        &format!("{base}/agents"),
        &json!({"agent_id": "a", "state": {}, "conversation_manager_state": {}}),
    )
    .await
    .expect(201);
    let message = json!({"message_id": 0, "message": {"role": "user", "content": []}});
    app.post(&format!("{base}/agents/a/messages"), &message).await.expect(201);
    app.post(&format!("{base}/multi-agents"), &json!({"multi_agent_id": "m", "state": {}})).await.expect(201);
    session
}

async fn rows(url: &str, sql: &str) -> i64 {
    crate::helpers::scalar(url, sql).await
}

async fn a_lapsed_session_and_everything_under_it_answer_404(backend: Backend) {
    let Some(app) = app(backend, 0).await else { return };
    let session = populated(&app, "brief", Some(1)).await;
    populated(&app, "kept", None).await;
    assert_eq!(session["ttl_seconds"], 1);
    let (updated, expires) =
        (session["updated_at"].as_str().expect("at"), session["expires_at"].as_str().expect("at"));
    let lapse = chrono::DateTime::parse_from_rfc3339(expires).expect("rfc3339")
        - chrono::DateTime::parse_from_rfc3339(updated).expect("rfc3339");
    assert_eq!(lapse, chrono::Duration::seconds(1), "expires_at = updated_at + ttl");
    app.get("/api/v1/sessions/brief/agents/a/messages/0").await.expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let message = json!({"message_id": 1, "message": {"role": "user", "content": []}});
    for (method, path, body) in [
        (Method::GET, "/api/v1/sessions/brief", None),
        (Method::PUT, "/api/v1/sessions/brief", Some(json!({"metadata": {"x": 1}}))),
        (Method::GET, "/api/v1/sessions/brief/agents", None),
        (Method::GET, "/api/v1/sessions/brief/agents/a", None),
        (Method::PUT, "/api/v1/sessions/brief/agents/a", Some(json!({"state": {"x": 1}}))),
        (
            Method::POST,
            "/api/v1/sessions/brief/agents",
            Some(json!({"agent_id": "b", "state": {}, "conversation_manager_state": {}})),
        ),
        (Method::GET, "/api/v1/sessions/brief/agents/a/messages", None),
        (Method::GET, "/api/v1/sessions/brief/agents/a/messages?offset=0", None),
        (Method::GET, "/api/v1/sessions/brief/agents/a/messages/0", None),
        (
            Method::PUT,
            "/api/v1/sessions/brief/agents/a/messages/0",
            Some(json!({"message": {"role": "user", "content": [{"text": "x"}]}})),
        ),
        (Method::POST, "/api/v1/sessions/brief/agents/a/messages", Some(message.clone())),
        (
            Method::POST,
            "/api/v1/sessions/brief/agents/a/messages",
            Some(json!({"message_id": 0, "message": {"role": "user", "content": []}})),
        ),
        (
            Method::POST,
            "/api/v1/sessions/brief/agents/a/messages/batch",
            Some(json!({"messages": [message]})),
        ),
        (Method::GET, "/api/v1/sessions/brief/multi-agents", None),
        (Method::GET, "/api/v1/sessions/brief/multi-agents/m", None),
        (Method::PUT, "/api/v1/sessions/brief/multi-agents/m", Some(json!({"state": {"x": 1}}))),
        (
            Method::POST,
            "/api/v1/sessions/brief/multi-agents",
            Some(json!({"multi_agent_id": "n", "state": {}})),
        ),
        (Method::DELETE, "/api/v1/sessions/brief/multi-agents/m", None),
        (Method::DELETE, "/api/v1/sessions/brief/agents/a/messages/0", None),
        (Method::DELETE, "/api/v1/sessions/brief/agents/a", None),
        (Method::DELETE, "/api/v1/sessions/brief", None),
    ] {
        let reply = app.call(method.clone(), path, body.as_ref()).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        reply.expect_error(404, "NotFoundError");
    }
    let listed = app.get("/api/v1/sessions").await.expect(200);
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["sessions"][0]["session_id"], "kept");
    assert_eq!(listed["sessions"][0]["expires_at"], Value::Null);
    assert_eq!(app.get("/api/v1/sessions/kept/agents/a/messages").await.expect(200)["total"], 1);
    // Nothing was written into the lapsed session; the sweeper is off, so
    // its rows are still there until it runs.
    assert_eq!(rows(&app.database_url, "SELECT COUNT(*) FROM messages WHERE session_id = 'brief'").await, 1);
    assert_eq!(rows(&app.database_url, "SELECT COUNT(*) FROM agents WHERE session_id = 'brief'").await, 1);
    // Its id is free again at once: a new, empty session.
    let again = app.post("/api/v1/sessions", &json!({"session_id": "brief"})).await.expect(201);
    assert_eq!(again["ttl_seconds"], 0);
    assert_eq!(app.get("/api/v1/sessions/brief/agents").await.expect(200)["total"], 0);
    assert_eq!(rows(&app.database_url, "SELECT COUNT(*) FROM messages WHERE session_id = 'brief'").await, 0);
    // A live session's id stays taken.
    app.post("/api/v1/sessions", &json!({"session_id": "kept"})).await.expect_error(409, "ConflictError");
}

async fn ttl_comes_from_the_request_or_the_default_and_counts_from_updates(backend: Backend) {
    let Some(app) = app(backend, 1).await else { return };
    let defaulted = app.post("/api/v1/sessions", &json!({"session_id": "d"})).await.expect(201);
    assert_eq!(defaulted["ttl_seconds"], 1, "the configured default");
    let forever =
        app.post("/api/v1/sessions", &json!({"session_id": "f", "ttl_seconds": 0})).await.expect(201);
    assert_eq!((forever["ttl_seconds"].clone(), forever["expires_at"].clone()), (json!(0), Value::Null));
    let long =
        app.post("/api/v1/sessions", &json!({"session_id": "l", "ttl_seconds": 3600})).await.expect(201);
    assert_eq!(long["ttl_seconds"], 3600);
    app.post("/api/v1/sessions", &json!({"session_id": "u"})).await.expect(201);
    app.post("/api/v1/sessions", &json!({"session_id": "x"})).await.expect(201);

    tokio::time::sleep(Duration::from_millis(600)).await;
    // An update restarts the clock with the stored TTL…
    let touched = app.put("/api/v1/sessions/u", &json!({"metadata": {"n": 1}})).await.expect(200);
    assert_eq!(touched["ttl_seconds"], 1);
    assert_ne!(touched["expires_at"], Value::Null);
    // …or sets a new one: 0 keeps the session forever.
    let kept = app.put("/api/v1/sessions/x", &json!({"ttl_seconds": 0})).await.expect(200);
    assert_eq!((kept["ttl_seconds"].clone(), kept["expires_at"].clone()), (json!(0), Value::Null));
    let shortened = app.put("/api/v1/sessions/l", &json!({"ttl_seconds": 1})).await.expect(200);
    assert_eq!(shortened["ttl_seconds"], 1);

    tokio::time::sleep(Duration::from_millis(600)).await;
    app.get("/api/v1/sessions/d").await.expect_error(404, "NotFoundError");
    for alive in ["f", "u", "x", "l"] {
        app.get(&format!("/api/v1/sessions/{alive}")).await.expect(200);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    for gone in ["u", "l"] {
        app.get(&format!("/api/v1/sessions/{gone}")).await.expect_error(404, "NotFoundError");
    }
    for alive in ["f", "x"] {
        app.get(&format!("/api/v1/sessions/{alive}")).await.expect(200);
    }
}

async fn bad_ttls_are_refused_and_write_nothing(backend: Backend) {
    let Some(app) = app(backend, 0).await else { return };
    app.post("/api/v1/sessions", &json!({"session_id": "s"})).await.expect(201);
    for bad in [
        json!(-1),
        json!(1.5),
        json!("60"),
        json!(3_153_600_001u64),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(true),
    ] {
        let created = app.post("/api/v1/sessions", &json!({"session_id": "t", "ttl_seconds": bad})).await;
        let message = created.expect_error(422, "ValidationError");
        assert!(message.contains("ttl_seconds"), "{bad}: {message}");
        app.put("/api/v1/sessions/s", &json!({"ttl_seconds": bad}))
            .await
            .expect_error(422, "ValidationError");
    }
    // 2^64 and beyond, as raw JSON numbers.
    let huge = app
        .call_raw(
            Method::POST,
            "/api/v1/sessions",
            r#"{"session_id": "t", "ttl_seconds": 18446744073709551616}"#,
        )
        .await;
    huge.expect_error(422, "ValidationError");
    app.get("/api/v1/sessions/t").await.expect_error(404, "NotFoundError");
    let s = app.get("/api/v1/sessions/s").await.expect(200);
    assert_eq!((s["ttl_seconds"].clone(), s["expires_at"].clone()), (json!(0), Value::Null));
    // An old client-supplied updated_at does not make a session born lapsed.
    let old = json!({"session_id": "old", "ttl_seconds": 60, "updated_at": "0031-04-24T20:07:19.16959Z"});
    let old = app.post("/api/v1/sessions", &old).await.expect(201);
    assert_eq!(old["updated_at"], "0031-04-24T20:07:19.169590+00:00");
    app.get("/api/v1/sessions/old").await.expect(200);
    let max = app
        .post("/api/v1/sessions", &json!({"session_id": "m", "ttl_seconds": 3_153_600_000u64}))
        .await
        .expect(201);
    assert!(max["expires_at"].as_str().is_some_and(|at| at.starts_with("21")), "{max}");
}

async fn the_sweeper_deletes_lapsed_sessions_in_batches(backend: Backend) {
    let Some(app) = app(backend, 0).await else { return };
    for i in 0..7 {
        populated(&app, &format!("brief-{i}"), Some(1)).await;
    }
    populated(&app, "kept", None).await;
    populated(&app, "later", Some(3600)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Two replicas sweep the same database, two sessions per statement.
    let sweeping = |config: &mut session_backend::config::Config| {
        config.retention.sweep_interval_ms = 50;
        config.retention.sweep_batch = 2;
    };
    let mut first = crate::helpers::test_config(&app.database_url);
    sweeping(&mut first);
    let mut second = first.clone();
    second.server.port = 0;
    let (a, b) = (start(first, None).await, start(second, None).await);
    let mut swept = false;
    for _ in 0..100 {
        if rows(&app.database_url, "SELECT COUNT(*) FROM sessions").await == 2 {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swept, "the lapsed sessions were not swept within 5 s");
    for table in ["agents", "messages", "multi_agents"] {
        assert_eq!(rows(&app.database_url, &format!("SELECT COUNT(*) FROM {table}")).await, 2, "{table}");
    }
    let counted = |m: &Value| m["sessions_swept_total"].as_u64().expect("count");
    // Both replicas sweep every 50 ms; one may have done it all before the
    // other's first sweep, so wait (bounded) until each has swept once.
    let (mut ma, mut mb) = (Value::Null, Value::Null);
    for _ in 0..100 {
        (ma, mb) = (a.get("/health/metrics").await.expect(200), b.get("/health/metrics").await.expect(200));
        if ma["sweeps_total"].as_u64() > Some(0) && mb["sweeps_total"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted(&ma) + counted(&mb), 7, "{ma}\n{mb}");
    assert!(ma["sweeps_total"].as_u64() > Some(0) && mb["sweeps_total"].as_u64() > Some(0), "{ma}\n{mb}");
    assert_eq!((ma["sweeps_failed_total"].clone(), mb["sweeps_failed_total"].clone()), (json!(0), json!(0)));
    app.get("/api/v1/sessions/kept/agents/a/messages/0").await.expect(200);
    app.get("/api/v1/sessions/later/agents/a/messages/0").await.expect(200);
}
