//! Input at the edges: numbers past what the database driver takes, free
//! strings it cannot store, bodies that are not JSON, and an OpenAPI
//! document that must say exactly what the server accepts. None of it may
//! reach a 500, and nothing refused may be written.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(
    every_numeric_parameter_is_bounded_before_sql,
    session_type_rules_are_the_same_on_both_backends,
    bodies_must_be_json,
    optional_fields_may_be_null,
    body_errors_name_the_field,
);

/// The values every numeric query and path parameter is tried with.
const SWEEP: [&str; 11] = [
    "0",
    "-1",
    "2147483648",
    "9007199254740992",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e17",
    "NaN",
    "abc",
];

async fn every_numeric_parameter_is_bounded_before_sql(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    app.post("/api/v1/sessions/s1/multi-agents", &json!({"multi_agent_id": "g", "state": {}}))
        .await
        .expect(201);
    let messages = TestApp::messages_path("s1", "a1");
    app.post(
        &format!("{messages}/batch"),
        &json!({"messages": [
            {"message_id": 0, "message": {"role": "user", "content": []}},
            {"message_id": 1, "message": {"role": "user", "content": []}},
        ]}),
    )
    .await
    .expect(201);
    let listings = [
        ("/api/v1/sessions", &["page", "page_size"][..]),
        ("/api/v1/sessions/s1/agents", &["page", "page_size"]),
        ("/api/v1/sessions/s1/multi-agents", &["page", "page_size"]),
        (messages.as_str(), &["offset", "limit", "after_message_id", "page", "page_size"]),
    ];
    let mut tried = 0;
    for (path, params) in listings {
        for param in params {
            for value in SWEEP {
                let reply = app.get(&format!("{path}?{param}={value}")).await;
                tried += 1;
                let status = reply.status.as_u16();
                let in_range = in_range(param, value);
                if in_range {
                    assert_eq!(status, 200, "{path}?{param}={value}: {}", reply.body);
                } else {
                    assert_eq!(status, 422, "{path}?{param}={value}: {}", reply.body);
                    reply.expect_error(422, "ValidationError");
                }
            }
        }
        // Products of the largest accepted values stay within the driver's range.
        for query in ["page=2147483647&page_size=1000", "offset=2147483647&limit=10000", "page=2147483647"] {
            app.get(&format!("{path}?{query}")).await.expect(200);
        }
    }
    // Body numbers: the in-range ids are stored (id 0 is a replay).
    for value in SWEEP {
        let raw = format!(r#"{{"message_id": {value}, "message": {{"role": "user", "content": []}}}}"#);
        let reply = app.call_raw(Method::POST, &messages, raw).await;
        tried += 1;
        let expected = match value {
            "0" => 200, // a replay of the message stored above (its content matches)
            "2147483648" | "9007199254740992" | "9223372036854775807" => 201,
            _ => 422,
        };
        assert_eq!(reply.status.as_u16(), expected, "message_id {value}: {}", reply.body);
    }
    // Path numbers: the ids stored above answer, the others are refused.
    for value in SWEEP {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let body = (method == Method::PUT).then(|| json!({"redact_message": null}));
            let reply = app.call(method.clone(), &format!("{messages}/{value}"), body.as_ref()).await;
            tried += 1;
            let expected = match (value, &method) {
                ("0" | "2147483648" | "9007199254740992" | "9223372036854775807", &Method::DELETE) => 204,
                ("0" | "2147483648" | "9007199254740992" | "9223372036854775807", _) => 200,
                _ => 422,
            };
            assert_eq!(reply.status.as_u16(), expected, "{method} {messages}/{value}: {}", reply.body);
        }
    }
    eprintln!("{tried} numeric edge cases, no 500");
}

/// Whether `value` is inside the documented range of `param`.
fn in_range(param: &str, value: &str) -> bool {
    let Ok(n) = value.parse::<i128>() else { return false };
    match param {
        "page" => (1..=2_147_483_647).contains(&n),
        "page_size" => (1..=1000).contains(&n),
        "offset" => (0..=2_147_483_647).contains(&n),
        "limit" => (1..=10_000).contains(&n),
        "after_message_id" => (-1..=i128::from(i64::MAX)).contains(&n),
        _ => false,
    }
}

async fn session_type_rules_are_the_same_on_both_backends(backend: Backend) {
    let app = app!(backend);
    for bad in ["A\u{0}B", "", "line\nbreak", "tab\there", "\u{7f}", &"x".repeat(65)] {
        let body = json!({"session_id": "s1", "session_type": bad});
        let message = app.post("/api/v1/sessions", &body).await.expect_error(422, "ValidationError");
        assert!(message.contains("session_type"), "{message}");
    }
    app.get("/api/v1/sessions/s1").await.expect(404);
    app.session("s1").await;
    let put = app.put("/api/v1/sessions/s1", &json!({"session_type": "A\u{0}B"})).await;
    put.expect_error(422, "ValidationError");
    assert_eq!(app.get("/api/v1/sessions/s1").await.expect(200)["session_type"], "AGENT");
    for good in ["MULTI_AGENT", "ünïcödé ✓", &"é".repeat(64)] {
        let body = app.put("/api/v1/sessions/s1", &json!({"session_type": good})).await.expect(200);
        assert_eq!(body["session_type"], good);
    }
    // Ids with a NUL are refused in paths and bodies alike.
    app.post("/api/v1/sessions", &json!({"session_id": "a\u{0}b"}))
        .await
        .expect_error(422, "ValidationError");
    app.get("/api/v1/sessions/a%00b").await.expect_error(422, "ValidationError");
    // NULs inside opaque JSON are data, stored exactly.
    let stored = app.put("/api/v1/sessions/s1", &json!({"metadata": {"k\u{0}": "v\u{0}"}})).await.expect(200);
    assert_eq!(stored["metadata"], json!({"k\u{0}": "v\u{0}"}));
}

async fn bodies_must_be_json(backend: Backend) {
    let app = app!(backend);
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        let resp = app
            .client
            .post(app.url("/api/v1/sessions"))
            .header("content-type", content_type)
            .body(r#"{"session_id": "typed"}"#)
            .send()
            .await
            .expect("request");
        TestApp::reply(resp).await.expect_error(415, "UnsupportedMediaTypeError");
    }
    app.get("/api/v1/sessions/typed").await.expect(404);
    // Without a Content-Type, a JSON body is read as JSON; so is any JSON type.
    let bare = app.client.post(app.url("/api/v1/sessions")).body(r#"{"session_id": "bare"}"#).send().await;
    assert_eq!(bare.expect("request").status(), 201);
    for (i, content_type) in
        ["application/json", "application/json; charset=utf-8", "application/vnd.api+json"].iter().enumerate()
    {
        let resp = app
            .client
            .post(app.url("/api/v1/sessions"))
            .header("content-type", *content_type)
            .body(format!(r#"{{"session_id": "json-{i}"}}"#))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 201, "{content_type}");
    }
    // Malformed and non-standard JSON is 422, never 500.
    for raw in [
        "",
        "{",
        "[]",
        "null",
        r#"{"session_id": "x", "metadata": {"n": NaN}}"#,
        r#"{"session_id": "x"} trailing"#,
    ] {
        app.call_raw(Method::POST, "/api/v1/sessions", raw).await.expect_error(422, "ValidationError");
    }
    assert_eq!(app.get("/api/v1/sessions").await.expect(200)["total"], 4);
}

async fn optional_fields_may_be_null(backend: Backend) {
    let app = app!(backend);
    let body = json!({"session_id": "s1", "session_type": null, "metadata": null, "created_at": null, "updated_at": null});
    let created = app.post("/api/v1/sessions", &body).await.expect(201);
    assert_eq!(created["session_type"], "AGENT");
    assert_eq!(created["metadata"], json!({}));
    let agent = json!({"agent_id": "a1", "state": {}, "conversation_manager_state": {}, "_internal_state": null, "internal_state": null});
    let created = app.post("/api/v1/sessions/s1/agents", &agent).await.expect(201);
    assert_eq!(created["_internal_state"], json!({}));
    let updated = app
        .put("/api/v1/sessions/s1/agents/a1", &json!({"state": null, "_internal_state": {"x": 1}}))
        .await
        .expect(200);
    assert_eq!(updated["state"], json!({}));
    assert_eq!(updated["internal_state"], json!({"x": 1}));
}

async fn body_errors_name_the_field(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    for (body, field) in [
        (json!({"session_id": 5}), "session_id"),
        (json!({"session_id": "s2", "metadata": []}), "metadata"),
        (json!({"session_id": "s2", "created_at": "yesterday"}), "created_at"),
        (json!({"session_id": "a/b"}), "session_id"),
    ] {
        let message = app.post("/api/v1/sessions", &body).await.expect_error(422, "ValidationError");
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let batch = json!({"messages": [
        {"message_id": 0, "message": {"role": "user", "content": []}},
        {"message_id": 1, "message": {"role": 7, "content": []}},
    ]});
    let message = app.post(&format!("{path}/batch"), &batch).await.expect_error(422, "ValidationError");
    assert!(message.starts_with("messages[1].message"), "{message}");
    assert_eq!(app.get(&format!("{path}?offset=0")).await.expect(200)["total"], 0);
}

/// The document describes exactly what the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_tells_the_truth() {
    let app = app!(Backend::Sqlite);
    let spec = app.get("/openapi.json").await.expect(200);
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["MessageList"]["properties"]["next_offset"]["nullable"], true);
    assert_eq!(schemas["Message"]["properties"]["redact_message"]["nullable"], true);
    assert!(schemas["MessageList"]["required"].as_array().expect("required").contains(&json!("next_offset")));
    let id = &schemas["CreateSessionRequest"]["properties"]["session_id"];
    assert_eq!(id["maxLength"], 255);
    assert_eq!(id["minLength"], 1);
    assert!(id["pattern"].as_str().is_some_and(|p| p.contains(r"\x00-\x1F")), "{id}");
    let session_type = &schemas["CreateSessionRequest"]["properties"]["session_type"];
    assert_eq!(session_type["maxLength"], 64);
    assert_eq!(session_type["minLength"], 1);
    assert_eq!(session_type["nullable"], true);
    assert_eq!(schemas["CreateMessageRequest"]["properties"]["message_id"]["minimum"].as_f64(), Some(0.0));
    for (schema, field) in
        [("Session", "created_at"), ("Message", "updated_at"), ("CreateAgentRequest", "created_at")]
    {
        assert_eq!(schemas[schema]["properties"][field]["format"], "date-time", "{schema}.{field}");
    }
    let paths = spec["paths"].as_object().expect("paths");
    let mut bounded = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("operation") {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let schema = &param["schema"];
                if schema["type"] == "integer" {
                    assert!(
                        schema["maximum"].is_number() || schema["format"] == "int64",
                        "{method} {path} {param}"
                    );
                    bounded += 1;
                }
                if param["in"] == "path" && schema["type"] == "string" {
                    // Ids are up to 255 bytes, blob keys up to 1024.
                    let longest = if param["name"] == "key" { 1024 } else { 255 };
                    assert_eq!(schema["maxLength"], longest, "{method} {path} {param}");
                }
            }
            // Every promised route answers something other than "no such route".
            let concrete = path
                .replace("{session_id}", "s")
                .replace("{agent_id}", "a")
                .replace("{multi_agent_id}", "m")
                .replace("{message_id}", "0")
                .replace("{key}", "k");
            let reply =
                app.call(method.to_uppercase().parse().expect("method"), &concrete, Some(&json!({}))).await;
            let routed = !(reply.status == 404 && reply.body["detail"]["message"] == "no such route");
            assert!(routed, "{method} {path} is documented but not routed");
        }
    }
    assert!(bounded >= 10, "{bounded} integer parameters");
    let list = &paths["/api/v1/sessions/{session_id}/agents/{agent_id}/messages"]["get"]["parameters"];
    let offset = list.as_array().expect("params").iter().find(|p| p["name"] == "offset").expect("offset");
    assert_eq!(offset["schema"]["maximum"].as_f64(), Some(2_147_483_647.0));
    let params = paths["/api/v1/sessions"]["get"]["parameters"].as_array().expect("params");
    let page_size: &Value = &params.iter().find(|p| p["name"] == "page_size").expect("page_size")["schema"];
    assert_eq!(page_size["maximum"].as_f64(), Some(1000.0));
}
