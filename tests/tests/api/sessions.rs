//! `/api/v1/sessions`.

use serde_json::json;

use crate::{
    app, both_backends,
    helpers::{Backend, enc},
};

both_backends!(
    create_returns_the_session_with_defaults,
    create_keeps_client_fields,
    create_twice_is_conflict,
    create_rejects_bad_input_and_writes_nothing,
    get_and_missing,
    update_changes_only_what_is_sent,
    update_errors,
    delete_cascades_to_everything_under_it,
    list_is_newest_first_and_paged,
    list_rejects_bad_paging,
    list_filters_combine_and_count,
    list_filters_refuse_bad_values,
    awkward_ids_round_trip_through_paths,
);

async fn create_returns_the_session_with_defaults(backend: Backend) {
    let app = app!(backend);
    let reply = app.post("/api/v1/sessions", &json!({"session_id": "s1"})).await;
    assert!(reply.headers.contains_key("x-request-id"));
    let body = reply.expect(201);
    assert_eq!(body["session_id"], "s1");
    assert_eq!(body["session_type"], "AGENT");
    assert_eq!(body["metadata"], json!({}));
    let created = body["created_at"].as_str().expect("created_at");
    assert!(created.ends_with("+00:00") && created.contains('T'), "{created}");
    assert_eq!(body["created_at"], body["updated_at"]);
}

async fn create_keeps_client_fields(backend: Backend) {
    let app = app!(backend);
    let body = app
        .post(
            "/api/v1/sessions",
            &json!({
                "session_id": "s1",
                "session_type": "MULTI_AGENT",
                "metadata": {"user": "u@example.com", "n": [1, 2]},
                "created_at": "2026-01-02T03:04:05.123456+00:00",
                "updated_at": "2026-01-02T05:04:05.5+02:00",
            }),
        )
        .await
        .expect(201);
    assert_eq!(body["session_type"], "MULTI_AGENT");
    assert_eq!(body["metadata"], json!({"user": "u@example.com", "n": [1, 2]}));
    assert_eq!(body["created_at"], "2026-01-02T03:04:05.123456+00:00");
    assert_eq!(body["updated_at"], "2026-01-02T03:04:05.500000+00:00");
    assert_eq!(app.get("/api/v1/sessions/s1").await.expect(200), body);
}

async fn create_twice_is_conflict(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    let message =
        app.post("/api/v1/sessions", &json!({"session_id": "s1"})).await.expect_error(409, "ConflictError");
    assert!(message.contains("s1"), "{message}");
}

async fn create_rejects_bad_input_and_writes_nothing(backend: Backend) {
    let app = app!(backend);
    let long = "x".repeat(256);
    for body in [
        json!({}),
        json!({"session_id": ""}),
        json!({"session_id": "a/b"}),
        json!({"session_id": "a\\b"}),
        json!({"session_id": ".."}),
        json!({"session_id": "."}),
        json!({"session_id": "tab\there"}),
        json!({"session_id": long}),
        json!({"session_id": 5}),
        json!({"session_id": "s", "session_type": ""}),
        json!({"session_id": "s", "session_type": "x".repeat(65)}),
        json!({"session_id": "s", "metadata": [1]}),
        json!({"session_id": "s", "metadata": "text"}),
        json!({"session_id": "s", "created_at": "yesterday"}),
        json!({"session_id": "s", "created_at": "2026-01-02T03:04:05"}),
        json!({"session_id": "s", "updated_at": 17}),
        json!([1, 2]),
    ] {
        app.post("/api/v1/sessions", &body).await.expect_error(422, "ValidationError");
    }
    for raw in
        ["{", "{\"session_id\": \"s\", \"metadata\": {\"x\": NaN}}", "{\"session_id\": Infinity}", "", "null"]
    {
        app.call_raw(reqwest::Method::POST, "/api/v1/sessions", raw)
            .await
            .expect_error(422, "ValidationError");
    }
    let list = app.get("/api/v1/sessions").await.expect(200);
    assert_eq!(list["total"], 0, "{list}");
}

async fn get_and_missing(backend: Backend) {
    let app = app!(backend);
    let created = app.session("s1").await;
    assert_eq!(app.get("/api/v1/sessions/s1").await.expect(200), created);
    let message = app.get("/api/v1/sessions/nope").await.expect_error(404, "NotFoundError");
    assert!(message.contains("nope"), "{message}");
}

async fn update_changes_only_what_is_sent(backend: Backend) {
    let app = app!(backend);
    app.post("/api/v1/sessions", &json!({"session_id": "s1", "metadata": {"a": 1}})).await.expect(201);
    let before = app.get("/api/v1/sessions/s1").await.expect(200);
    let after = app.put("/api/v1/sessions/s1", &json!({"session_type": "CUSTOM"})).await.expect(200);
    assert_eq!(after["session_type"], "CUSTOM");
    assert_eq!(after["metadata"], json!({"a": 1}));
    assert_eq!(after["created_at"], before["created_at"]);
    assert!(after["updated_at"].as_str() > before["updated_at"].as_str(), "{before} {after}");
    let after = app.put("/api/v1/sessions/s1", &json!({"metadata": {"b": 2}})).await.expect(200);
    assert_eq!(after["session_type"], "CUSTOM");
    assert_eq!(after["metadata"], json!({"b": 2}));
    assert_eq!(app.get("/api/v1/sessions/s1").await.expect(200), after);
}

async fn update_errors(backend: Backend) {
    let app = app!(backend);
    app.put("/api/v1/sessions/nope", &json!({"session_type": "X"})).await.expect_error(404, "NotFoundError");
    app.session("s1").await;
    for body in [json!({"session_type": ""}), json!({"metadata": 3}), json!({"session_type": 1})] {
        app.put("/api/v1/sessions/s1", &body).await.expect_error(422, "ValidationError");
    }
    assert_eq!(app.get("/api/v1/sessions/s1").await.expect(200)["session_type"], "AGENT");
}

async fn delete_cascades_to_everything_under_it(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let messages = crate::helpers::TestApp::messages_path("s1", "a1");
    app.post(&messages, &json!({"message_id": 0, "message": {"role": "user", "content": []}}))
        .await
        .expect(201);
    app.post("/api/v1/sessions/s1/multi-agents", &json!({"multi_agent_id": "g", "state": {}}))
        .await
        .expect(201);
    app.delete("/api/v1/sessions/s1").await.expect(204);
    app.get("/api/v1/sessions/s1").await.expect_error(404, "NotFoundError");
    app.delete("/api/v1/sessions/s1").await.expect_error(404, "NotFoundError");
    // Re-created, the session is empty: nothing survived the cascade.
    app.agent("s1", "a1").await;
    let listed = app.get(&format!("{messages}?offset=0")).await.expect(200);
    assert_eq!(listed["total"], 0, "{listed}");
    app.get("/api/v1/sessions/s1/multi-agents/g").await.expect_error(404, "NotFoundError");
}

async fn list_is_newest_first_and_paged(backend: Backend) {
    let app = app!(backend);
    for i in 0..5 {
        app.post(
            "/api/v1/sessions",
            &json!({"session_id": format!("s{i}"), "created_at": format!("2026-01-0{}T00:00:00+00:00", i + 1)}),
        )
        .await
        .expect(201);
    }
    let page = app.get("/api/v1/sessions?page=1&page_size=2").await.expect(200);
    assert_eq!(page["total"], 5);
    assert_eq!(page["page"], 1);
    assert_eq!(page["page_size"], 2);
    let ids: Vec<_> =
        page["sessions"].as_array().expect("sessions").iter().map(|s| s["session_id"].clone()).collect();
    assert_eq!(ids, [json!("s4"), json!("s3")]);
    let last = app.get("/api/v1/sessions?page=3&page_size=2").await.expect(200);
    assert_eq!(last["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["sessions"][0]["session_id"], "s0");
    let beyond = app.get("/api/v1/sessions?page=9&page_size=2").await.expect(200);
    assert_eq!(beyond["sessions"], json!([]));
    assert_eq!(beyond["total"], 5);
    let default = app.get("/api/v1/sessions").await.expect(200);
    assert_eq!(default["page_size"], 10);
    assert_eq!(default["sessions"].as_array().map(Vec::len), Some(5));
}

async fn list_rejects_bad_paging(backend: Backend) {
    let app = app!(backend);
    for query in
        ["page=0", "page=-1", "page=abc", "page_size=0", "page_size=1001", "page_size=NaN", "page=1.5"]
    {
        app.get(&format!("/api/v1/sessions?{query}")).await.expect_error(422, "ValidationError");
    }
    app.get("/api/v1/sessions?page_size=1000").await.expect(200);
}

/// The ids of a listing, in order, and its total.
async fn listed(app: &crate::helpers::TestApp, query: &str) -> (Vec<String>, u64) {
    let page = app.get(&format!("/api/v1/sessions?{query}")).await.expect(200);
    let ids = page["sessions"].as_array().expect("sessions").iter();
    (
        ids.map(|s| s["session_id"].as_str().expect("id").to_owned()).collect(),
        page["total"].as_u64().expect("total"),
    )
}

async fn list_filters_combine_and_count(backend: Backend) {
    let app = app!(backend);
    // Whole seconds beside fractions (SQLite compares their text), a `_`
    // that a LIKE would read as a wildcard, and a prefix of several bytes.
    for (id, session_type, created_at) in [
        ("team_a-1", "AGENT", "2026-01-01T00:00:00+00:00"),
        ("team_a-2", "CUSTOM", "2026-02-01T00:00:00.5+00:00"),
        ("teamxa-3", "AGENT", "2026-02-01T00:00:00+00:00"),
        ("équipe-4", "AGENT", "2026-03-01T12:00:00+02:00"),
    ] {
        let body = json!({"session_id": id, "session_type": session_type, "created_at": created_at});
        app.post("/api/v1/sessions", &body).await.expect(201);
    }
    let all = ["équipe-4", "team_a-2", "teamxa-3", "team_a-1"].map(String::from).to_vec();
    assert_eq!(listed(&app, "").await, (all.clone(), 4));
    assert_eq!(listed(&app, "session_type=AGENT").await.1, 3);
    assert_eq!(listed(&app, "session_type=CUSTOM").await.0, ["team_a-2"]);
    assert_eq!(listed(&app, "id_prefix=team_a").await.0, ["team_a-2", "team_a-1"]);
    assert_eq!(listed(&app, "id_prefix=%C3%A9q").await.0, ["équipe-4"]);
    assert_eq!(listed(&app, "id_prefix=team_a-1x").await.1, 0);
    // Strict bounds: the whole second is neither after nor before itself,
    // and half a second later is after it.
    let at = "2026-02-01T00%3A00%3A00%2B00%3A00";
    assert_eq!(listed(&app, &format!("created_after={at}")).await.0, ["équipe-4", "team_a-2"]);
    assert_eq!(listed(&app, &format!("created_before={at}")).await.0, ["team_a-1"]);
    let window = "created_after=2026-01-15T00:00:00Z&created_before=2026-03-01T10:00:01%2B00:00";
    assert_eq!(listed(&app, window).await.0, ["équipe-4", "team_a-2", "teamxa-3"]);
    let combined = format!("{window}&session_type=AGENT&id_prefix=team");
    assert_eq!(listed(&app, &combined).await, (vec!["teamxa-3".to_owned()], 1));
    // Paging runs over what the filters let through.
    let (second, total) = listed(&app, "session_type=AGENT&page=2&page_size=2").await;
    assert_eq!((second, total), (vec!["team_a-1".to_owned()], 3));
    // `updated_*` follow writes.
    let mark = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.put("/api/v1/sessions/teamxa-3", &json!({"metadata": {"touched": true}})).await.expect(200);
    assert_eq!(listed(&app, &format!("updated_after={mark}")).await.0, ["teamxa-3"]);
    assert_eq!(listed(&app, &format!("updated_before={mark}")).await.1, 3);
}

async fn list_filters_refuse_bad_values(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    for query in [
        "created_after=yesterday",
        "created_before=2026-01-01",
        "updated_after=2026-01-01T00:00:00",
        "updated_before=",
        "created_after=9999-12-31T23:00:00-02:00",
        "created_before=-0001-01-01T00:00:00Z",
        "id_prefix=",
        "id_prefix=a%2Fb",
        "id_prefix=a%00",
        "session_type=",
        &format!("session_type={}", "x".repeat(65)),
        &format!("id_prefix={}", "x".repeat(256)),
    ] {
        app.get(&format!("/api/v1/sessions?{query}")).await.expect_error(422, "ValidationError");
    }
    assert_eq!(listed(&app, "id_prefix=.").await.1, 0);
}

async fn awkward_ids_round_trip_through_paths(backend: Backend) {
    let app = app!(backend);
    for id in
        ["tenant:1", "a.b@c.d", "with space", "ünï cödé ✓", "550e8400-e29b-41d4-a716-446655440000", "..."]
    {
        app.session(id).await;
        let got = app.get(&format!("/api/v1/sessions/{}", enc(id))).await.expect(200);
        assert_eq!(got["session_id"], id);
        app.agent(&format!("{id}-x"), id).await;
        let agent =
            app.get(&format!("/api/v1/sessions/{}/agents/{}", enc(&format!("{id}-x")), enc(id))).await;
        assert_eq!(agent.expect(200)["agent_id"], id);
    }
    app.get("/api/v1/sessions/a%2Fb").await.expect_error(422, "ValidationError");
    app.get("/api/v1/sessions/a%5Cb").await.expect_error(422, "ValidationError");
    app.get("/api/v1/sessions/a%00b").await.expect_error(422, "ValidationError");
}
