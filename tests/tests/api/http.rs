//! Cross-cutting HTTP behaviour: health probes, docs, the OpenAPI
//! document, request ids, unknown routes, wrong methods, body limits and
//! graceful shutdown.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, spawn_app_with},
};

both_backends!(
    health_probes_report_their_checks,
    metrics_count_requests,
    docs_and_openapi_are_served,
    request_ids_are_echoed_or_made_up,
    unknown_routes_and_wrong_methods,
    oversized_bodies_are_413_and_write_nothing,
    shutdown_drains_in_flight_requests,
);

async fn health_probes_report_their_checks(backend: Backend) {
    let app = app!(backend);
    for (path, status) in [("/health", "healthy"), ("/health/live", "alive")] {
        let body = app.get(path).await.expect(200);
        assert_eq!(body["status"], status);
        assert_eq!(body["checks"]["service"]["status"], status);
        assert_eq!(body["version"], session_backend::VERSION);
        assert!(body["timestamp"].as_str().is_some_and(|t| t.starts_with("20")), "{body}");
        assert!(body["checks"].get("database").is_none());
    }
    let db = app.get("/health/db").await.expect(200);
    assert_eq!(db["status"], "healthy");
    assert_eq!(db["checks"]["database"]["status"], "healthy");
    assert!(db["checks"]["database"]["response_time_ms"].as_f64().is_some(), "{db}");
    assert!(db["checks"]["database"]["connection_pool"]["size"].as_u64().is_some(), "{db}");
    assert!(db["checks"]["database"]["connection_pool"]["idle"].as_u64().is_some(), "{db}");
    let ready = app.get("/health/ready").await.expect(200);
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["service"]["status"], "ready");
    assert_eq!(ready["checks"]["database"]["status"], "ready");
    assert!(ready["checks"]["database"]["response_time_ms"].as_f64().is_some(), "{ready}");
}

async fn metrics_count_requests(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    app.get("/api/v1/sessions/nope").await.expect(404);
    let metrics = app.get("/health/metrics").await.expect(200);
    assert!(metrics["requests_total"].as_u64() >= Some(2), "{metrics}");
    assert_eq!(metrics["requests_by_status"]["201"], 1);
    assert_eq!(metrics["requests_by_status"]["404"], 1);
    assert_eq!(metrics["client_errors_total"], 1);
    assert_eq!(metrics["errors_total"], 0);
    assert!(metrics["uptime_seconds"].as_f64().is_some_and(|s| s > 0.0));
    assert!(metrics["mean_latency_ms"].as_f64().is_some_and(|s| s > 0.0));
    let expected = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    assert_eq!(metrics["database_backend"], expected);
    assert!(metrics["connection_pool"]["max_size"].as_u64().is_some());
}

async fn docs_and_openapi_are_served(backend: Backend) {
    let app = app!(backend);
    // The page is built on the first visit and kept: both visits show
    // Swagger UI with the served document inlined, which on this server
    // without keys declares the schemes but requires none.
    for _ in 0..2 {
        let docs = app.client.get(app.url("/docs")).send().await.expect("docs");
        assert_eq!(docs.status(), 200);
        assert_eq!(docs.headers()["content-type"], "text/html; charset=utf-8");
        let html = docs.text().await.expect("html");
        assert!(html.contains("SwaggerUIBundle"), "{}", &html[..html.len().min(300)]);
        assert!(html.contains("\"apiKeyAuth\""), "the schemes are declared");
        assert!(!html.contains("\"security\": ["), "the page shows the served document, not the keyed one");
    }
    let spec = app.get("/openapi.json").await.expect(200);
    assert_eq!(spec["info"]["title"], "Session Backend");
    // Tags in the order a user needs them, and the clients named.
    let tags: Vec<&str> =
        spec["tags"].as_array().expect("tags").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(tags, ["Sessions", "Agents", "Messages", "Multi-agents", "Leases", "Storage", "Health"]);
    let description = spec["info"]["description"].as_str().expect("description");
    assert!(description.contains("https://pypi.org/project/strands-session-backend/"), "{description}");
    let paths = spec["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            operations += 1;
            let what = format!("{method} {path}");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{what} has no summary");
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{what} has no tag");
            assert!(op["operationId"].as_str().is_some(), "{what} has no operation id");
            assert!(op.get("security").is_none(), "{what} requires a key on a server without keys");
            let responses = op["responses"].as_object().expect("responses");
            if path.starts_with("/api/") {
                for status in ["422", "503", "500"] {
                    assert!(responses.contains_key(status), "{what} lacks {status}");
                }
            }
            if method != "get" && path.starts_with("/api/") && (method == "post" || method == "put") {
                assert!(responses.contains_key("413"), "{what} lacks 413");
            }
        }
    }
    // 26 core rows, 6 blob operations (write, read, head, delete,
    // list/search, prefix delete), 3 of a session's lease, the fork, the
    // export and the import.
    assert_eq!(operations, 38, "every contract row has an operation");
    for path in [
        "/api/v1/sessions/{session_id}/agents/{agent_id}/messages/batch",
        "/api/v1/sessions/{session_id}/multi-agents/{multi_agent_id}",
        "/api/v1/sessions/{session_id}/fork",
        "/api/v1/sessions/{session_id}/export",
        "/api/v1/sessions/import",
        "/health/ready",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    let create = &paths["/api/v1/sessions/{session_id}/agents/{agent_id}/messages"]["post"]["responses"];
    for status in ["200", "201", "404", "409"] {
        assert!(create.get(status).is_some(), "create_message lacks {status}");
    }
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Session",
        "SessionList",
        "CreateSessionRequest",
        "Agent",
        "AgentList",
        "CreateAgentRequest",
        "UpdateAgentRequest",
        "Message",
        "MessageList",
        "MessageBatch",
        "BatchMessagesRequest",
        "UpdateMessageRequest",
        "MultiAgent",
        "MultiAgentList",
        "ErrorEnvelope",
        "HealthReport",
        "HealthFailure",
        "MetricsReport",
        "SessionDocument",
    ] {
        assert!(schemas[name].get("example").is_some(), "{name} has no example");
    }
    assert!(schemas["Agent"]["properties"]["_internal_state"].is_object());
}

async fn request_ids_are_echoed_or_made_up(backend: Backend) {
    let app = app!(backend);
    let resp =
        app.client.get(app.url("/api/v1/sessions/nope")).header("x-request-id", "trace-123").send().await;
    let reply = crate::helpers::TestApp::reply(resp.expect("request")).await;
    assert_eq!(reply.headers["x-request-id"], "trace-123");
    assert_eq!(reply.body["detail"]["request_id"], "trace-123");
    let resp = app.client.get(app.url("/health")).header("x-request-id", "bad id with spaces").send().await;
    let made_up = resp.expect("request").headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert_eq!(made_up.len(), 36, "{made_up}");
    let a = app.get("/health").await.headers["x-request-id"].clone();
    let b = app.get("/health").await.headers["x-request-id"].clone();
    assert_ne!(a, b);
}

async fn unknown_routes_and_wrong_methods(backend: Backend) {
    let app = app!(backend);
    app.get("/api/v1/nothing-here").await.expect_error(404, "NotFoundError");
    app.get("/nope").await.expect_error(404, "NotFoundError");
    for (method, path, allow) in [
        (Method::PATCH, "/api/v1/sessions", "GET, HEAD, POST, OPTIONS"),
        (Method::DELETE, "/api/v1/sessions", "GET, HEAD, POST, OPTIONS"),
        (Method::POST, "/api/v1/sessions/s1", "GET, HEAD, PUT, DELETE, OPTIONS"),
        (Method::TRACE, "/health/ready", "GET, HEAD, OPTIONS"),
        (Method::PUT, "/api/v1/sessions/s1/agents/a1/messages/batch", "POST, OPTIONS"),
    ] {
        let reply = app.call(method.clone(), path, None).await;
        assert_eq!(reply.headers.get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
        reply.expect_error(405, "MethodNotAllowedError");
    }
    let options = app.call(Method::OPTIONS, "/api/v1/sessions/s1/agents", None).await;
    assert_eq!(options.status, 204);
    assert_eq!(options.headers["allow"], "GET, HEAD, POST, OPTIONS");
    app.call(Method::HEAD, "/api/v1/sessions", None).await.expect(200);
}

async fn oversized_bodies_are_413_and_write_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.server.body_limit_bytes = 64 * 1024).await else { return };
    let big = json!({"session_id": "big", "metadata": {"blob": "x".repeat(100 * 1024)}});
    app.post("/api/v1/sessions", &big).await.expect_error(413, "PayloadTooLargeError");
    // Also when the client does not announce the length (chunked).
    let chunks = futures::stream::iter(
        (0..200).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024]))),
    );
    let resp = app
        .client
        .post(app.url("/api/v1/sessions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("request");
    crate::helpers::TestApp::reply(resp).await.expect_error(413, "PayloadTooLargeError");
    app.post("/api/v1/sessions", &json!({"session_id": "small"})).await.expect(201);
    assert_eq!(app.get("/api/v1/sessions").await.expect(200)["total"], 1);
}

async fn shutdown_drains_in_flight_requests(backend: Backend) {
    let Some(mut app) = spawn_app_with(backend, |_| {}).await else { return };
    app.session("s1").await;
    // A request whose body is still arriving when shutdown begins.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx));
    let request = app
        .client
        .post(app.url("/api/v1/sessions/s1/agents"))
        .header("content-type", "application/json")
        .body(body)
        .send();
    let in_flight = tokio::spawn(request);
    tx.send(Ok(bytes::Bytes::from_static(br#"{"agent_id": "a1", "#))).await.expect("first half");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(Ok(bytes::Bytes::from_static(br#""state": {}, "conversation_manager_state": {}}"#)))
        .await
        .expect("rest");
    drop(tx);
    let resp = in_flight.await.expect("task").expect("in-flight request completes");
    assert_eq!(resp.status(), 201);
    let served: Value = resp.json().await.expect("json");
    assert_eq!(served["agent_id"], "a1");
    server.await.expect("server task").expect("server stops cleanly");
    assert!(app.client.get(app.url("/health")).send().await.is_err(), "still accepting after shutdown");
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
