//! API keys and tenants: keys from a keys file, both headers, 401s with a
//! challenge, rotation without a restart, per-tenant isolation on every
//! route of the document, the rate limit.
//!
//! Over 400 lines: authentication crosses every route, and its tests share
//! one keys file fixture; split by route they would repeat it.

use std::{path::Path, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};
use session_backend::domain::keys::{self, Minted};

use crate::{
    both_backends,
    helpers::{Backend, Reply, TestApp, spawn_app_with},
};

both_backends!(
    api_calls_need_a_known_key,
    tenants_see_only_their_own_rows_on_every_route,
    appends_of_two_tenants_to_the_same_ids_at_once_stay_apart,
    search_answers_depend_on_the_tenants_own_values_only,
    keys_rotate_through_the_keys_file_without_a_restart,
    rate_limit_answers_429_per_tenant,
);

fn mint() -> Minted {
    keys::mint().expect("a key")
}

fn write_keys(path: &Path, lines: &[(&str, &Minted)]) {
    let text: String = lines.iter().map(|(tenant, key)| format!("{tenant} {}\n", key.hash)).collect();
    // Written beside and renamed, as a Secret volume swaps its files.
    let next = path.with_extension("next");
    std::fs::write(&next, format!("# tenants and key hashes\n{text}")).expect("write keys");
    std::fs::rename(next, path).expect("swap keys");
}

/// A server whose keys file lists `lines`; the file's directory comes along.
async fn keyed_app(
    backend: Backend,
    lines: &[(&str, &Minted)],
    adjust: impl FnOnce(&mut session_backend::config::Config),
) -> Option<(TestApp, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keys");
    write_keys(&file, lines);
    let app = spawn_app_with(backend, |config| {
        config.auth.keys_file = Some(file.display().to_string());
        config.auth.reload_interval_ms = 50;
        adjust(config);
    })
    .await?;
    Some((app, dir))
}

async fn send(app: &TestApp, method: Method, path: &str, key: Option<&str>, body: Option<&Value>) -> Reply {
    let mut req = app.client.request(method, app.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    TestApp::reply(req.send().await.expect("request")).await
}

#[track_caller]
fn expect_unauthorized(reply: Reply) {
    let challenge = reply.headers.get("www-authenticate").map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"session-backend\""));
    reply.expect_error(401, "UnauthorizedError");
}

async fn api_calls_need_a_known_key(backend: Backend) {
    let key = mint();
    let Some((app, _dir)) = keyed_app(backend, &[("team-a", &key)], |_| {}).await else { return };
    let create = json!({"session_id": "s1"});
    expect_unauthorized(send(&app, Method::POST, "/api/v1/sessions", None, Some(&create)).await);
    for wrong in
        [mint().key, key.hash.clone(), key.key.to_uppercase(), format!("{} ", key.key) + "x", String::new()]
    {
        expect_unauthorized(send(&app, Method::POST, "/api/v1/sessions", Some(&wrong), Some(&create)).await);
    }
    // A client still sending a large body gets the answer, not a reset,
    // and the body is never taken for the API.
    let big = vec![b' '; 16 * 1024 * 1024];
    for _ in 0..3 {
        let sent = app
            .client
            .post(app.url("/api/v1/sessions"))
            .header("content-type", "application/json")
            .body(big.clone());
        expect_unauthorized(TestApp::reply(sent.send().await.expect("a 16 MiB body is answered")).await);
    }
    // Other schemes and a wrong header name are no key either.
    let basic =
        app.client.get(app.url("/api/v1/sessions")).header("authorization", format!("Basic {}", key.key));
    expect_unauthorized(TestApp::reply(basic.send().await.expect("request")).await);
    let unknown_route = send(&app, Method::GET, "/api/v1/nothing-here", None, None).await;
    expect_unauthorized(unknown_route);
    // Nothing was written by any of them.
    let listed = send(&app, Method::GET, "/api/v1/sessions", Some(&key.key), None).await.expect(200);
    assert_eq!(listed["total"], 0);

    send(&app, Method::POST, "/api/v1/sessions", Some(&key.key), Some(&create)).await.expect(201);
    let by_header = app.client.get(app.url("/api/v1/sessions/s1")).header("x-api-key", &key.key);
    TestApp::reply(by_header.send().await.expect("request")).await.expect(200);
    let lower =
        app.client.get(app.url("/api/v1/sessions/s1")).header("authorization", format!("bearer {}", key.key));
    TestApp::reply(lower.send().await.expect("request")).await.expect(200);
    // Two credentials, even the same valid key twice, are refused: the
    // server never picks one.
    let bearer = format!("Bearer {}", key.key);
    let other = mint();
    for pair in [
        [("authorization", bearer.clone()), ("authorization", bearer.clone())],
        [("x-api-key", key.key.clone()), ("x-api-key", key.key.clone())],
        [("authorization", bearer.clone()), ("x-api-key", key.key.clone())],
        [("x-api-key", key.key.clone()), ("authorization", format!("Bearer {}", other.key))],
    ] {
        let mut req = app.client.get(app.url("/api/v1/sessions/s1"));
        for (name, value) in &pair {
            req = req.header(*name, value);
        }
        let reply = TestApp::reply(req.send().await.expect("request")).await;
        assert!(reply.body.to_string().contains("send one API key"), "{pair:?}: {}", reply.body);
        expect_unauthorized(reply);
    }

    // Probes and docs stay public; the document declares both schemes and
    // requires one of them on every API operation.
    for public in [
        "/health",
        "/health/live",
        "/health/ready",
        "/health/db",
        "/health/metrics",
        "/docs",
        "/openapi.json",
    ] {
        assert_eq!(app.get(public).await.status, 200, "{public}");
    }
    let doc = app.get("/openapi.json").await.body;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["apiKeyAuth"]["name"], "X-API-Key");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let secured = op["security"] == json!([{"bearerAuth": []}, {"apiKeyAuth": []}]);
            assert_eq!(secured, path.starts_with("/api/"), "{method} {path}");
            assert_eq!(op["responses"].get("401").is_some(), path.starts_with("/api/"), "{method} {path}");
        }
    }
}

/// Every API operation of the document, and what tenant B gets when it
/// names tenant A's rows: `(operation, method, path, body, status)`.
fn foreign_calls() -> Vec<(&'static str, Method, &'static str, Option<Value>, u16)> {
    let s = "/api/v1/sessions/s%3A1";
    let a = "/api/v1/sessions/s%3A1/agents/a1";
    let m = "/api/v1/sessions/s%3A1/multi-agents/m1";
    let message = json!({"message_id": 1, "message": {"role": "user", "content": []}});
    let leak = |p: &str| -> &'static str { Box::leak(p.to_owned().into_boxed_str()) };
    vec![
        ("list_sessions", Method::GET, "/api/v1/sessions", None, 200),
        ("get_session", Method::GET, leak(s), None, 404),
        ("update_session", Method::PUT, leak(s), Some(json!({"metadata": {"b": 1}})), 404),
        ("delete_session", Method::DELETE, leak(s), None, 404),
        (
            "fork_session",
            Method::POST,
            leak(&format!("{s}/fork")),
            Some(json!({"session_id": "stolen"})),
            404,
        ),
        ("export_session", Method::GET, leak(&format!("{s}/export")), None, 404),
        (
            "acquire_lease",
            Method::PUT,
            leak(&format!("{s}/lease")),
            Some(json!({"holder": "b", "ttl_seconds": 60})),
            404,
        ),
        ("get_lease", Method::GET, leak(&format!("{s}/lease")), None, 404),
        ("release_lease", Method::DELETE, leak(&format!("{s}/lease?force=true")), None, 404),
        (
            "create_agent",
            Method::POST,
            leak(&format!("{s}/agents")),
            Some(json!({"agent_id": "a2", "state": {}, "conversation_manager_state": {}})),
            404,
        ),
        ("list_agents", Method::GET, leak(&format!("{s}/agents")), None, 404),
        ("get_agent", Method::GET, leak(a), None, 404),
        ("update_agent", Method::PUT, leak(a), Some(json!({"state": {"b": 1}})), 404),
        ("delete_agent", Method::DELETE, leak(a), None, 404),
        ("create_message", Method::POST, leak(&format!("{a}/messages")), Some(message.clone()), 404),
        ("list_messages", Method::GET, leak(&format!("{a}/messages")), None, 404),
        (
            "create_messages_batch",
            Method::POST,
            leak(&format!("{a}/messages/batch")),
            Some(json!({"messages": [message]})),
            404,
        ),
        ("get_message", Method::GET, leak(&format!("{a}/messages/0")), None, 404),
        (
            "update_message",
            Method::PUT,
            leak(&format!("{a}/messages/0")),
            Some(json!({"message": {"role": "user", "content": [{"text": "b"}]}})),
            404,
        ),
        ("delete_message", Method::DELETE, leak(&format!("{a}/messages/0")), None, 404),
        (
            "create_multi_agent",
            Method::POST,
            leak(&format!("{s}/multi-agents")),
            Some(json!({"multi_agent_id": "m2", "state": {}})),
            404,
        ),
        ("list_multi_agents", Method::GET, leak(&format!("{s}/multi-agents")), None, 404),
        ("get_multi_agent", Method::GET, leak(m), None, 404),
        ("update_multi_agent", Method::PUT, leak(m), Some(json!({"state": {"b": 1}})), 404),
        ("delete_multi_agent", Method::DELETE, leak(m), None, 404),
        ("read_blob", Method::GET, "/api/v1/storage/snap/a.json", None, 404),
        ("head_blob", Method::HEAD, "/api/v1/storage/snap/a.json", None, 404),
        // Deleting a key that (for this tenant) does not exist is 204 too.
        ("delete_blob", Method::DELETE, "/api/v1/storage/snap/a.json", None, 204),
        ("list_blobs", Method::GET, "/api/v1/storage?prefix=snap/", None, 200),
        ("delete_blobs", Method::DELETE, "/api/v1/storage?prefix=snap/", None, 200),
        // Another tenant's import makes a session of its own.
        ("import_session", Method::POST, "/api/v1/sessions/import", Some(document("b-own")), 201),
    ]
}

/// A session document of one empty session.
fn document(session_id: &str) -> Value {
    let at = "2026-12-05T10:00:00.000000+00:00";
    json!({"format": "session-backend/1",
           "session": {"session_id": session_id, "session_type": "AGENT", "metadata": {}, "ttl_seconds": 0,
                       "created_at": at, "updated_at": at},
           "agents": [], "multi_agents": [], "complete": true})
}

/// Everything tenant A can see of its rows.
async fn everything(app: &TestApp, key: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions/s%3A1",
        "/api/v1/sessions/s%3A1/lease",
        "/api/v1/sessions/s%3A1/agents",
        "/api/v1/sessions/s%3A1/agents/a1/messages",
        "/api/v1/sessions/s%3A1/multi-agents",
        "/api/v1/storage?prefix=snap/",
        "/api/v1/storage/snap/a.json",
    ] {
        let reply = send(app, Method::GET, path, Some(key), None).await;
        seen.push(json!({"path": path, "status": reply.status.as_u16(), "body": reply.body}));
    }
    seen
}

async fn tenants_see_only_their_own_rows_on_every_route(backend: Backend) {
    let (key_a, key_b) = (mint(), mint());
    let Some((app, _dir)) = keyed_app(backend, &[("team-a", &key_a), ("team-b", &key_b)], |_| {}).await
    else {
        return;
    };
    let (a, b) = (key_a.key.as_str(), key_b.key.as_str());
    let message = json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "a's secret"}]}});
    send(&app, Method::POST, "/api/v1/sessions", Some(a), Some(&json!({"session_id": "s:1"})))
        .await
        .expect(201);
    let agent = json!({"agent_id": "a1", "state": {"a": 1}, "conversation_manager_state": {}});
    send(&app, Method::POST, "/api/v1/sessions/s%3A1/agents", Some(a), Some(&agent)).await.expect(201);
    send(&app, Method::POST, "/api/v1/sessions/s%3A1/agents/a1/messages", Some(a), Some(&message))
        .await
        .expect(201);
    let multi = json!({"multi_agent_id": "m1", "state": {"a": 1}});
    send(&app, Method::POST, "/api/v1/sessions/s%3A1/multi-agents", Some(a), Some(&multi)).await.expect(201);
    let put = app.client.put(app.url("/api/v1/storage/snap/a.json")).bearer_auth(a).body("a's snapshot");
    TestApp::reply(put.send().await.expect("request")).await.expect(204);
    let before = everything(&app, a).await;

    // The table covers every API operation the server documents.
    let doc = app.get("/openapi.json").await.body;
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.starts_with("/api/"))
        .flat_map(|(_, item)| item.as_object().expect("item").values())
        .map(|op| op["operationId"].as_str().expect("operationId").to_owned())
        .collect();
    documented.sort();
    documented.dedup();
    let calls = foreign_calls();
    let mut covered: Vec<String> =
        calls.iter().map(|c| c.0.to_owned()).chain(["create_session".into(), "write_blob".into()]).collect();
    covered.sort();
    assert_eq!(covered, documented, "every API operation is tried with another tenant's ids");

    for (operation, method, path, body, status) in calls {
        let reply = send(&app, method.clone(), path, Some(b), body.as_ref()).await;
        assert_eq!(reply.status.as_u16(), status, "{operation}: {method} {path}: {}", reply.body);
        match operation {
            "list_sessions" => assert_eq!(reply.body["sessions"], json!([]), "{operation}"),
            "list_blobs" => assert_eq!(reply.body["keys"], json!([]), "{operation}"),
            "delete_blobs" => assert_eq!(reply.body["deleted"], 0, "{operation}"),
            _ if status == 404 && method != Method::HEAD => {
                reply.expect_error(404, "NotFoundError");
            }
            _ => {}
        }
    }
    let search = send(&app, Method::GET, "/api/v1/storage?q=snapshot", Some(b), None).await.expect(200);
    assert_eq!(search["results"], json!([]));
    assert_eq!(everything(&app, a).await, before, "tenant B changed nothing of tenant A's");

    // Ids repeat across tenants: B's own session and blob of the same names.
    send(
        &app,
        Method::POST,
        "/api/v1/sessions",
        Some(b),
        Some(&json!({"session_id": "s:1", "metadata": {"b": 1}})),
    )
    .await
    .expect(201);
    let put = app.client.put(app.url("/api/v1/storage/snap/a.json")).bearer_auth(b).body("b's");
    TestApp::reply(put.send().await.expect("request")).await.expect(204);
    let read =
        app.client.get(app.url("/api/v1/storage/snap/a.json")).bearer_auth(b).send().await.expect("read");
    assert_eq!(read.bytes().await.expect("bytes").as_ref(), b"b's");
    let listed = send(&app, Method::GET, "/api/v1/sessions", Some(b), None).await.expect(200);
    assert_eq!(listed["total"], 2, "B's `s:1` and the session B imported");
    assert_eq!(listed["sessions"][0]["metadata"], json!({"b": 1}));
    assert_eq!(everything(&app, a).await, before, "B's rows of the same ids are B's alone");
    send(&app, Method::DELETE, "/api/v1/sessions/s%3A1", Some(b), None).await.expect(204);
    assert_eq!(everything(&app, a).await, before, "deleting B's session leaves A's");
}

/// Two tenants appending at once to sessions, agents and message ids of
/// the same names (which the server writes in shared statements): each
/// append lands in its own tenant's agent, and one tenant's agent never
/// stands in for another's missing one.
async fn appends_of_two_tenants_to_the_same_ids_at_once_stay_apart(backend: Backend) {
    let (key_a, key_b) = (mint(), mint());
    let Some((app, _dir)) = keyed_app(backend, &[("team-a", &key_a), ("team-b", &key_b)], |_| {}).await
    else {
        return;
    };
    let (a, b) = (key_a.key.as_str(), key_b.key.as_str());
    for key in [a, b] {
        send(&app, Method::POST, "/api/v1/sessions", Some(key), Some(&json!({"session_id": "s1"})))
            .await
            .expect(201);
        let agent = json!({"agent_id": "a1", "state": {}, "conversation_manager_state": {}});
        send(&app, Method::POST, "/api/v1/sessions/s1/agents", Some(key), Some(&agent)).await.expect(201);
    }
    // Only tenant A has an agent a2.
    let agent = json!({"agent_id": "a2", "state": {}, "conversation_manager_state": {}});
    send(&app, Method::POST, "/api/v1/sessions/s1/agents", Some(a), Some(&agent)).await.expect(201);
    let message = |tenant: &str, id: u64| json!({"message_id": id, "message": {"role": "user", "content": [{"text": format!("{tenant}#{id}")}]}});
    let mut requests = Vec::new();
    for id in 0..16 {
        for (tenant, key) in [("a", a), ("b", b)] {
            requests.push((tenant, key, "a1", message(tenant, id)));
            requests.push((tenant, key, "a2", message(tenant, id)));
        }
    }
    let replies = futures::future::join_all(requests.iter().map(|(_, key, agent, body)| {
        let (app, path) = (&app, format!("/api/v1/sessions/s1/agents/{agent}/messages"));
        async move { send(app, Method::POST, &path, Some(key), Some(body)).await.status.as_u16() }
    }))
    .await;
    for ((tenant, _, agent, body), status) in requests.iter().zip(replies) {
        let expected = if *tenant == "b" && *agent == "a2" { 404 } else { 201 };
        assert_eq!(status, expected, "tenant {tenant}, agent {agent}: {body}");
    }
    for (tenant, key, agent, total) in [("a", a, "a1", 16), ("a", a, "a2", 16), ("b", b, "a1", 16)] {
        let path = format!("/api/v1/sessions/s1/agents/{agent}/messages?offset=0");
        let listed = send(&app, Method::GET, &path, Some(key), None).await.expect(200);
        assert_eq!(listed["total"], total, "tenant {tenant}, agent {agent}");
        for stored in listed["messages"].as_array().expect("messages") {
            let id = stored["message_id"].as_u64().expect("id");
            assert_eq!(stored["message"], message(tenant, id)["message"], "tenant {tenant}, agent {agent}");
        }
    }
    send(&app, Method::GET, "/api/v1/sessions/s1/agents/a2/messages", Some(b), None).await.expect(404);
}

/// Polls `check` every 20 ms for up to 5 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..250 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 5 s: {what}");
}

async fn keys_rotate_through_the_keys_file_without_a_restart(backend: Backend) {
    let (old, new, operator) = (mint(), mint(), mint());
    let metrics_key = format!("prometheus {}", operator.hash);
    let Some((app, dir)) = keyed_app(backend, &[("team-a", &old)], |config| {
        config.metrics.keys = [metrics_key].into_iter().collect();
    })
    .await
    else {
        return;
    };
    let file = dir.path().join("keys");
    let status =
        async |key: &str| send(&app, Method::GET, "/api/v1/sessions", Some(key), None).await.status.as_u16();
    assert_eq!(status(&old.key).await, 200);
    assert_eq!(status(&new.key).await, 401);
    // Both keys while clients move over, then only the new one.
    write_keys(&file, &[("team-a", &old), ("team-a", &new)]);
    eventually("the new key is accepted", async || status(&new.key).await == 200).await;
    assert_eq!(status(&old.key).await, 200);
    write_keys(&file, &[("team-a", &new)]);
    eventually("the old key is refused", async || status(&old.key).await == 401).await;
    // A bad line is skipped and counted, never a reason to keep a key the
    // file no longer lists.
    let other = mint();
    write_keys(&file, &[("team-a", &new), ("team-b", &other)]);
    eventually("the other tenant's key is accepted", async || status(&other.key).await == 200).await;
    std::fs::write(&file, format!("team-a {}\nteam-b not-a-hash\n", new.hash)).expect("write");
    eventually("a key removed beside a bad line is refused", async || status(&other.key).await == 401).await;
    assert_eq!(status(&new.key).await, 200);
    let metrics =
        app.client.get(app.url("/metrics")).bearer_auth(&operator.key).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    for line in ["auth_keys 1", "auth_keys_file_bad_lines 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert!(!metrics.contains("auth_keys_reload_failures_total 0"), "{metrics}");
    // Swapped as a Secret volume swaps it, a key in every version always works.
    for _ in 0..20 {
        write_keys(&file, &[("team-b", &mint()), ("team-a", &new)]);
        assert_eq!(status(&new.key).await, 200, "a key listed throughout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A file that stays gone for two reload intervals leaves no key working.
    std::fs::remove_file(&file).expect("remove");
    let gone = std::time::Instant::now();
    eventually("a key of a file gone for good is refused", async || status(&new.key).await == 401).await;
    eprintln!("{backend:?}: refused {:?} after the file went (reload interval 50 ms)", gone.elapsed());
    write_keys(&file, &[("team-a", &new)]);
    eventually("the key works again once its file is back", async || status(&new.key).await == 200).await;
}

async fn rate_limit_answers_429_per_tenant(backend: Backend) {
    let (key_a, key_b) = (mint(), mint());
    let Some((app, _dir)) = keyed_app(backend, &[("team-a", &key_a), ("team-b", &key_b)], |config| {
        config.rate_limit.requests_per_second = 1;
        config.rate_limit.burst = 3;
    })
    .await
    else {
        return;
    };
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let reply = send(&app, Method::GET, "/api/v1/sessions", Some(&key_a.key), None).await;
        statuses.push(reply.status.as_u16());
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    // A token may come back during the loop, so at least the burst passes.
    assert!(statuses[..3].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let limited = limited.expect("a 429");
    let retry: u64 = limited.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    limited.expect_error(429, "TooManyRequestsError");
    // Another tenant has its own bucket, and probes are never limited.
    assert_eq!(send(&app, Method::GET, "/api/v1/sessions", Some(&key_b.key), None).await.status, 200);
    // Nor are a session's lease calls: a worker renews whatever the traffic.
    let create = json!({"session_id": "leased"});
    let body = json!({"holder": "w", "ttl_seconds": 60});
    let mut created = false;
    for _ in 0..10 {
        created =
            send(&app, Method::POST, "/api/v1/sessions", Some(&key_a.key), Some(&create)).await.status == 201;
        if created {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(created, "the session for the lease");
    for _ in 0..6 {
        let lease =
            send(&app, Method::PUT, "/api/v1/sessions/leased/lease", Some(&key_a.key), Some(&body)).await;
        assert!(matches!(lease.status.as_u16(), 200 | 423), "{}", lease.body);
        let read = send(&app, Method::GET, "/api/v1/sessions/leased/lease", Some(&key_a.key), None).await;
        assert_eq!(read.status, 200, "{}", read.body);
    }
    for _ in 0..5 {
        assert_eq!(app.get("/health").await.status, 200);
    }
    // An unknown key is refused before it costs any tenant a token.
    expect_unauthorized(send(&app, Method::GET, "/api/v1/sessions", Some(&mint().key), None).await);
}

/// What a search answers `key`, as bytes.
async fn search_bytes(app: &TestApp, key: &str, query: &str) -> Vec<u8> {
    let url = app.url(&format!("/api/v1/storage?q={}", crate::helpers::enc(query)));
    let resp = app.client.get(url).bearer_auth(key).send().await.expect("search");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body").to_vec()
}

async fn search_answers_depend_on_the_tenants_own_values_only(backend: Backend) {
    let (key_a, key_b) = (mint(), mint());
    let Some((app, _dir)) = keyed_app(backend, &[("team-a", &key_a), ("team-b", &key_b)], |_| {}).await
    else {
        return;
    };
    let (a, b) = (key_a.key.as_str(), key_b.key.as_str());
    let write = |key: &str, path: String, text: String| {
        let req = app.client.put(app.url(&format!("/api/v1/storage/{path}"))).bearer_auth(key).body(text);
        async move { assert_eq!(req.send().await.expect("write").status(), 204) }
    };
    write(b, "notes/1".into(), "The weather in Paris is rainy; Paris weather changes.".into()).await;
    write(b, "notes/2".into(), "sunny weather by the sea".into()).await;
    write(b, "notes/3".into(), "Paris".into()).await;
    let queries = ["paris", "weather", "paris weather rainy", "sunny sea", "absent"];
    let mut before = Vec::new();
    for q in queries {
        before.push(search_bytes(&app, b, q).await);
    }
    // Another tenant stores the same words, often, under the same keys too.
    for i in 0..60 {
        let text = format!("{} weather {}", "paris ".repeat(i % 7 + 1), "sunny rainy absent ".repeat(i % 3));
        write(a, format!("notes/{i}"), text).await;
    }
    for (q, before) in queries.iter().zip(&before) {
        let after = search_bytes(&app, b, q).await;
        assert!(
            after == *before,
            "{q}: {} then {}",
            String::from_utf8_lossy(before),
            String::from_utf8_lossy(&after)
        );
    }
    let mine: Value = serde_json::from_slice(&search_bytes(&app, b, "paris").await).expect("json");
    let keys: Vec<&str> =
        mine["results"].as_array().expect("results").iter().filter_map(|r| r["key"].as_str()).collect();
    assert_eq!(keys, ["notes/1", "notes/3"], "{mine}");
    let theirs: Value = serde_json::from_slice(&search_bytes(&app, a, "absent").await).expect("json");
    assert_eq!(theirs["results"].as_array().map(Vec::len), Some(40), "{theirs}");
}
