//! Session leases (api.md, "Session leases"): grants, renewals, releases,
//! expiry, forced breaks, fencing of every write of the session's tree,
//! the order of answers, and the race between a write and a new grant.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, Reply, TestApp, enc},
};

both_backends!(
    grants_renewals_and_releases_follow_the_contract,
    a_live_lease_fences_every_write_of_the_tree,
    answers_come_in_the_contracts_order,
    a_paused_holder_is_fenced_after_expiry,
    tokens_only_grow_across_deletion_and_breaks,
    deleting_a_leased_session_needs_its_token,
    bad_lease_calls_are_422_or_404_and_change_nothing,
    grouped_appends_are_fenced_row_by_row,
    a_write_racing_a_grant_lands_before_it_or_is_refused,
);

fn lease_path(session: &str) -> String {
    format!("/api/v1/sessions/{}/lease", enc(session))
}

/// Sends `body` with `method`, with `token` as `Lease-Token`.
async fn with_token(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    token: Option<i64>,
) -> Reply {
    let mut req = app.client.request(method, app.url(path));
    if let Some(token) = token {
        req = req.header("lease-token", token.to_string());
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    TestApp::reply(req.send().await.expect("request")).await
}

async fn acquire(app: &TestApp, session: &str, holder: &str, ttl: u32, token: Option<i64>) -> Reply {
    let body = json!({"holder": holder, "ttl_seconds": ttl});
    with_token(app, Method::PUT, &lease_path(session), Some(&body), token).await
}

async fn granted(app: &TestApp, session: &str, holder: &str, ttl: u32) -> i64 {
    let lease = acquire(app, session, holder, ttl, None).await.expect(200);
    assert_eq!(lease["holder"], holder);
    lease["token"].as_i64().expect("an integer token")
}

async fn grants_renewals_and_releases_follow_the_contract(backend: Backend) {
    let app = app!(backend);
    app.session("s").await;
    let session = app.get("/api/v1/sessions/s").await;
    let (etag, updated_at) = (session.etag(), session.body["updated_at"].clone());
    assert_eq!(app.get(&lease_path("s")).await.expect(200), Value::Null, "no lease yet");
    let lease = acquire(&app, "s", "worker-a", 30, None).await.expect(200);
    let token = lease["token"].as_i64().expect("token");
    assert!(token > 0);
    let ttl = lease["ttl_ms"].as_i64().expect("ttl_ms");
    assert!((29_000..=30_000).contains(&ttl), "{lease}");
    let live = app.get(&lease_path("s")).await.expect(200);
    assert_eq!((live["holder"].clone(), live["token"].as_i64()), (json!("worker-a"), Some(token)));

    // Releasing it needs its token; without one, a live lease refuses.
    app.delete(&lease_path("s")).await.expect_error(423, "LeaseHeldError");
    // Another worker is refused while it lives, told by whom and until when.
    let refused = acquire(&app, "s", "worker-b", 30, None).await;
    let retry: u64 = refused.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    let body = refused.body.clone();
    refused.expect_error(423, "LeaseHeldError");
    assert_eq!(body["detail"]["lease"]["holder"], "worker-a");
    assert_eq!(body["detail"]["lease"]["expires_at"], lease["expires_at"]);

    // Renewal keeps the token; a shorter TTL shortens the lease.
    let renewed = acquire(&app, "s", "worker-a", 5, Some(token)).await.expect(200);
    assert_eq!(renewed["token"].as_i64(), Some(token));
    assert!(renewed["ttl_ms"].as_i64().expect("ttl") <= 5_000, "{renewed}");

    // Released: nothing live, and the next grant has a larger token.
    with_token(&app, Method::DELETE, &lease_path("s"), None, Some(token)).await.expect(204);
    assert_eq!(app.get(&lease_path("s")).await.expect(200), Value::Null);
    with_token(&app, Method::DELETE, &lease_path("s"), None, Some(token)).await.expect(204);
    acquire(&app, "s", "worker-a", 30, Some(token)).await.expect_error(423, "LeaseLostError");
    let next = granted(&app, "s", "worker-b", 30).await;
    assert!(next > token, "{next} after {token}");
    // The released lease cannot come back.
    acquire(&app, "s", "worker-a", 30, Some(token)).await.expect_error(423, "LeaseLostError");
    let never = with_token(&app, Method::PUT, "/api/v1/sessions/s", Some(&json!({})), Some(next + 1)).await;
    assert_eq!(never.body["detail"]["lease"]["holder"], "worker-b", "{}", never.body);
    with_token(&app, Method::DELETE, &lease_path("s"), None, Some(token))
        .await
        .expect_error(423, "LeaseLostError");
    // The lease is not the session's version, nor its update time.
    let session = app.get("/api/v1/sessions/s").await;
    assert_eq!(session.etag(), etag, "{}", session.body);
    assert_eq!(session.body["updated_at"], updated_at);
}

/// Every mutating call under the session, without a token, with another
/// token and with the current one.
async fn a_live_lease_fences_every_write_of_the_tree(backend: Backend) {
    let app = app!(backend);
    app.agent("s", "a").await;
    app.post("/api/v1/sessions/s/multi-agents", &json!({"multi_agent_id": "g", "state": {}}))
        .await
        .expect(201);
    app.post(
        &TestApp::messages_path("s", "a"),
        &json!({"message_id": 0, "message": {"role": "user", "content": []}}),
    )
    .await
    .expect(201);
    let token = granted(&app, "s", "holder", 60).await;
    let agent = json!({"agent_id": "b", "state": {}, "conversation_manager_state": {}});
    let message = json!({"message_id": 1, "message": {"role": "user", "content": []}});
    let calls: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::PUT, "/api/v1/sessions/s".into(), Some(json!({"metadata": {"k": 1}})), 200),
        (Method::POST, "/api/v1/sessions/s/agents".into(), Some(agent), 201),
        (Method::PUT, "/api/v1/sessions/s/agents/a".into(), Some(json!({"state": {"n": 1}})), 200),
        (
            Method::POST,
            "/api/v1/sessions/s/multi-agents".into(),
            Some(json!({"multi_agent_id": "h", "state": {}})),
            201,
        ),
        (Method::PUT, "/api/v1/sessions/s/multi-agents/g".into(), Some(json!({"state": {"n": 1}})), 200),
        (Method::POST, TestApp::messages_path("s", "a"), Some(message), 201),
        (
            Method::POST,
            format!("{}/batch", TestApp::messages_path("s", "a")),
            Some(json!({"messages": [{"message_id": 2, "message": {"role": "user", "content": []}}]})),
            201,
        ),
        (
            Method::PUT,
            format!("{}/0", TestApp::messages_path("s", "a")),
            Some(json!({"redact_message": {"role": "user", "content": []}})),
            200,
        ),
        (Method::DELETE, format!("{}/0", TestApp::messages_path("s", "a")), None, 204),
        (Method::DELETE, "/api/v1/sessions/s/multi-agents/g".into(), None, 204),
        (Method::DELETE, "/api/v1/sessions/s/agents/b".into(), None, 204),
        (Method::DELETE, "/api/v1/sessions/s".into(), None, 204),
    ];
    for (method, path, body, ok) in calls {
        let before = snapshot(&app).await;
        let without = with_token(&app, method.clone(), &path, body.as_ref(), None).await;
        assert_eq!(without.status, 423, "{method} {path} without a token: {}", without.body);
        assert_eq!(without.body["detail"]["error"], "LeaseHeldError");
        assert!(without.headers.contains_key("retry-after"));
        let other = with_token(&app, method.clone(), &path, body.as_ref(), Some(token - 1)).await;
        assert_eq!(other.status, 423, "{method} {path} with another token: {}", other.body);
        assert_eq!(other.body["detail"]["error"], "LeaseLostError");
        assert_eq!(snapshot(&app).await, before, "{method} {path}: a refusal changed something");
        let with = with_token(&app, method.clone(), &path, body.as_ref(), Some(token)).await;
        assert_eq!(with.status, ok, "{method} {path} with the token: {}", with.body);
    }
    // The session went with its lease.
    app.get(&lease_path("s")).await.expect_error(404, "NotFoundError");
}

/// Everything under session `s`, as the API shows it.
async fn snapshot(app: &TestApp) -> Value {
    let session = app.get("/api/v1/sessions/s").await.body;
    let agents = app.get("/api/v1/sessions/s/agents").await.body;
    let multi = app.get("/api/v1/sessions/s/multi-agents").await.body;
    let messages = app.get(&TestApp::messages_path("s", "a")).await.body;
    json!([session, agents, multi, messages])
}

/// 404 → 423 → 412 → 409, and an identical replay answers 200 whatever
/// the token.
async fn answers_come_in_the_contracts_order(backend: Backend) {
    let app = app!(backend);
    app.agent("s", "a").await;
    let message = json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]}});
    app.post(&TestApp::messages_path("s", "a"), &message).await.expect(201);
    let token = granted(&app, "s", "holder", 60).await;
    // 404 before 423: a missing agent, a missing message.
    let missing = TestApp::messages_path("s", "nobody");
    with_token(&app, Method::POST, &missing, Some(&message), None).await.expect_error(404, "NotFoundError");
    let path = format!("{}/7", TestApp::messages_path("s", "a"));
    with_token(&app, Method::DELETE, &path, None, Some(token + 1)).await.expect_error(404, "NotFoundError");
    with_token(&app, Method::PUT, "/api/v1/sessions/s/agents/nobody", Some(&json!({"state": {}})), None)
        .await
        .expect_error(404, "NotFoundError");
    // 423 before 412.
    let stale = app.client.put(app.url("/api/v1/sessions/s/agents/a")).header("if-match", "\"9\"");
    let stale = TestApp::reply(stale.json(&json!({"state": {}})).send().await.expect("request")).await;
    stale.expect_error(423, "LeaseHeldError");
    let stale = app.client.put(app.url("/api/v1/sessions/s/agents/a")).header("if-match", "\"9\"");
    let stale = stale.header("lease-token", token.to_string()).json(&json!({"state": {}}));
    TestApp::reply(stale.send().await.expect("request")).await.expect_error(412, "PreconditionFailedError");
    // 423 before 409; a replay is 200 with any token or none.
    let other = json!({"message_id": 0, "message": {"role": "assistant", "content": []}});
    let path = TestApp::messages_path("s", "a");
    with_token(&app, Method::POST, &path, Some(&other), None).await.expect_error(423, "LeaseHeldError");
    with_token(&app, Method::POST, &path, Some(&other), Some(token)).await.expect_error(409, "ConflictError");
    for sent in [None, Some(token), Some(token + 5)] {
        with_token(&app, Method::POST, &path, Some(&message), sent).await.expect(200);
    }
    let batch = json!({"messages": [message]});
    with_token(&app, Method::POST, &format!("{path}/batch"), Some(&batch), None).await.expect(201);
}

/// A holder that stalls past its lease is refused once another worker took
/// it, however live its own process thinks it is.
async fn a_paused_holder_is_fenced_after_expiry(backend: Backend) {
    let app = app!(backend);
    app.agent("s", "a").await;
    let first = granted(&app, "s", "a-worker", 1).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(app.get(&lease_path("s")).await.expect(200), Value::Null, "lapsed");
    // Lapsed with no grant since: its token still writes, and so does no token.
    let path = TestApp::messages_path("s", "a");
    let message = |id: i64| json!({"message_id": id, "message": {"role": "user", "content": []}});
    with_token(&app, Method::POST, &path, Some(&message(0)), Some(first)).await.expect(201);
    with_token(&app, Method::POST, &path, Some(&message(1)), None).await.expect(201);
    // Renewable while nobody took it over.
    acquire(&app, "s", "a-worker", 1, Some(first)).await.expect(200);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let second = granted(&app, "s", "b-worker", 60).await;
    assert!(second > first);
    let refused = with_token(&app, Method::POST, &path, Some(&message(2)), Some(first)).await;
    refused.expect_error(423, "LeaseLostError");
    acquire(&app, "s", "a-worker", 60, Some(first)).await.expect_error(423, "LeaseLostError");
    with_token(&app, Method::POST, &path, Some(&message(2)), Some(second)).await.expect(201);
    let metrics = app.get("/metrics").await;
    let text = metrics.body.as_str().map(str::to_owned).unwrap_or_default();
    for line in [
        "session_lease_events_total{event=\"granted\"} 2",
        "session_lease_events_total{event=\"renewed\"} 1",
        "session_lease_events_total{event=\"expired\"} 1",
        "session_lease_events_total{event=\"refused\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}

async fn tokens_only_grow_across_deletion_and_breaks(backend: Backend) {
    let app = app!(backend);
    app.session("s").await;
    let first = granted(&app, "s", "w", 60).await;
    // An operator breaks it: nothing live, and the old holder is fenced at
    // once (writes and renewals), before anyone takes the lease again.
    app.delete(&format!("{}?force=true", lease_path("s"))).await.expect(204);
    assert_eq!(app.get(&lease_path("s")).await.expect(200), Value::Null);
    with_token(&app, Method::PUT, "/api/v1/sessions/s", Some(&json!({})), Some(first))
        .await
        .expect_error(423, "LeaseLostError");
    acquire(&app, "s", "w", 60, Some(first)).await.expect_error(423, "LeaseLostError");
    app.put("/api/v1/sessions/s", &json!({})).await.expect(200);
    app.delete(&format!("{}?force=true", lease_path("s"))).await.expect(204);
    let second = granted(&app, "s", "w2", 60).await;
    assert!(second > first);
    with_token(&app, Method::PUT, "/api/v1/sessions/s", Some(&json!({})), Some(first))
        .await
        .expect_error(423, "LeaseLostError");
    // Deleted and made again: no token comes back.
    with_token(&app, Method::DELETE, "/api/v1/sessions/s", None, Some(second)).await.expect(204);
    app.session("s").await;
    assert_eq!(app.get(&lease_path("s")).await.expect(200), Value::Null, "the lease went with the session");
    with_token(&app, Method::PUT, "/api/v1/sessions/s", Some(&json!({})), Some(second))
        .await
        .expect_error(423, "LeaseLostError");
    let third = granted(&app, "s", "w3", 60).await;
    assert!(third > second, "{third} after {second}");
    let metrics = app.get("/metrics").await.body.as_str().map(str::to_owned).unwrap_or_default();
    assert!(metrics.contains("session_lease_events_total{event=\"broken\"} 1"), "{metrics}");
}

async fn deleting_a_leased_session_needs_its_token(backend: Backend) {
    let app = app!(backend);
    app.agent("s", "a").await;
    let token = granted(&app, "s", "w", 60).await;
    app.delete("/api/v1/sessions/s").await.expect_error(423, "LeaseHeldError");
    app.get("/api/v1/sessions/s/agents/a").await.expect(200);
    with_token(&app, Method::DELETE, "/api/v1/sessions/s", None, Some(token)).await.expect(204);
    app.get("/api/v1/sessions/s").await.expect_error(404, "NotFoundError");
    acquire(&app, "s", "w", 60, None).await.expect_error(404, "NotFoundError");
}

async fn bad_lease_calls_are_422_or_404_and_change_nothing(backend: Backend) {
    let app = app!(backend);
    app.session("s").await;
    let etag = app.get("/api/v1/sessions/s").await.etag();
    for body in [
        json!({"holder": "", "ttl_seconds": 10}),
        json!({"holder": "x".repeat(257), "ttl_seconds": 10}),
        json!({"holder": "a\u{0}b", "ttl_seconds": 10}),
        json!({"holder": "w", "ttl_seconds": 0}),
        json!({"holder": "w", "ttl_seconds": 3601}),
        json!({"holder": "w", "ttl_seconds": 18446744073709551616u128}),
        json!({"holder": "w"}),
        json!({"ttl_seconds": 10}),
    ] {
        let reply = app.put(&lease_path("s"), &body).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
    }
    for token in ["abc", "0", "-3", "9223372036854775808", "1.5", ""] {
        let req = app.client.put(app.url(&lease_path("s"))).header("lease-token", token);
        let reply =
            TestApp::reply(req.json(&json!({"holder": "w", "ttl_seconds": 5})).send().await.expect("send"))
                .await;
        assert_eq!(reply.status, 422, "Lease-Token {token:?}: {}", reply.body);
        let req = app.client.put(app.url("/api/v1/sessions/s")).header("lease-token", token).json(&json!({}));
        let reply = TestApp::reply(req.send().await.expect("send")).await;
        assert_eq!(reply.status, 422, "Lease-Token {token:?} on a write: {}", reply.body);
    }
    // Releasing without a token releases nothing: fine while no lease lives.
    app.delete(&lease_path("s")).await.expect(204);
    let stranger = with_token(&app, Method::PUT, "/api/v1/sessions/s", Some(&json!({})), Some(42)).await;
    assert_eq!(stranger.status, 423);
    assert!(stranger.body["detail"].get("lease").is_none(), "no lease was ever granted: {}", stranger.body);
    assert_eq!(app.get(&lease_path("s")).await.expect(200), Value::Null, "nothing was granted");
    assert_eq!(app.get("/api/v1/sessions/s").await.etag(), etag);
    for method in [Method::PUT, Method::GET, Method::DELETE] {
        let body = json!({"holder": "w", "ttl_seconds": 5});
        let reply = with_token(&app, method.clone(), &lease_path("nope"), Some(&body), Some(5)).await;
        assert_eq!(reply.status, 404, "{method} on a missing session: {}", reply.body);
    }
}

/// Single appends from many requests are written in groups; each row is
/// checked against its own token.
async fn grouped_appends_are_fenced_row_by_row(backend: Backend) {
    let app = app!(backend);
    app.agent("s", "a").await;
    app.agent_in("s", "b").await;
    app.agent("t", "a").await;
    let token = granted(&app, "s", "w", 60).await;
    let sends = (0..40).map(|i| {
        let (session, agent) = match i % 4 {
            0 | 1 => ("s", if i % 8 < 4 { "a" } else { "b" }),
            _ => ("t", "a"),
        };
        let sent = match i % 4 {
            0 => Some(token),
            1 => None,
            2 => None,
            _ => Some(token + 1),
        };
        let path = TestApp::messages_path(session, agent);
        let app = &app;
        async move {
            let body = json!({"message_id": i, "message": {"role": "user", "content": []}});
            (i, with_token(app, Method::POST, &path, Some(&body), sent).await.status.as_u16())
        }
    });
    for (i, status) in futures::future::join_all(sends).await {
        let expected = match i % 4 {
            0 => 201, // the lease's token
            1 => 423, // no token, a live lease
            2 => 201, // an unleased session, no token
            _ => 423, // a token on an unleased session: not its lease
        };
        assert_eq!(status, expected, "append {i}");
    }
}

/// Writes with one worker's token race a forced break and a new grant to
/// another: every write the first worker was told succeeded committed
/// before the grant (the new holder's first read sees it), never after.
async fn a_write_racing_a_grant_lands_before_it_or_is_refused(backend: Backend) {
    let app = app!(backend);
    app.agent("s", "a").await;
    let path = TestApp::messages_path("s", "a");
    for round in 0..6i64 {
        let old = granted(&app, "s", "old", 60).await;
        let writes = (0..8i64).map(|w| {
            let (app, path) = (&app, &path);
            async move {
                let base = (round * 8 + w) * 100;
                let messages: Vec<Value> = (base..base + 100)
                    .map(|id| json!({"message_id": id, "message": {"role": "user", "content": []}}))
                    .collect();
                let reply = with_token(
                    app,
                    Method::POST,
                    &format!("{path}/batch"),
                    Some(&json!({"messages": messages})),
                    Some(old),
                )
                .await;
                (base, reply.status.as_u16())
            }
        });
        let takeover = async {
            tokio::time::sleep(Duration::from_millis(2 + round as u64 * 3)).await;
            app.delete(&format!("{}?force=true", lease_path("s"))).await.expect(204);
            let new = granted(&app, "s", "new", 60).await;
            let seen = app.get(&format!("{path}?limit=10000")).await.expect(200);
            (new, crate::helpers::message_ids(&seen))
        };
        let (results, (new, seen)) = futures::join!(futures::future::join_all(writes), takeover);
        for (base, status) in results {
            match status {
                201 => assert!(
                    seen.contains(&base),
                    "round {round}: batch {base} answered 201 but committed after the grant"
                ),
                423 => assert!(!seen.contains(&base), "round {round}: batch {base} refused yet stored"),
                other => panic!("round {round}: batch {base} answered {other}"),
            }
        }
        // The new holder's lease goes for the next round.
        with_token(&app, Method::DELETE, &lease_path("s"), None, Some(new)).await.expect(204);
    }
}

/// The race made certain on PostgreSQL: a write that passed its lease
/// check then waits (on another transaction's row with one of its ids)
/// while an operator breaks the lease and another worker is granted it.
/// The grant must wait for the write, so the new holder's first read sees
/// it; a grant that went ahead would let the write commit after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_blocked_write_is_not_outrun_by_a_grant() {
    use sea_orm::sqlx::{Connection, Executor, postgres::PgConnection};
    let Some(database) = crate::helpers::fresh_postgres_schema().await else { return };
    let mut config = crate::helpers::test_config(&database.url);
    config.database.lock_timeout_ms = 4_000;
    config.database.statement_timeout_ms = 6_000;
    config.server.request_timeout_ms = 12_000;
    let direct = database.direct_url();
    let app = crate::helpers::start(config, Some(database)).await;
    app.agent("s", "a").await;
    let old = granted(&app, "s", "old", 60).await;
    let mut blocker = PgConnection::connect(&direct).await.expect("a second connection");
    blocker.execute("BEGIN").await.expect("begin");
    blocker
        .execute(
            "INSERT INTO messages (tenant_id, session_id, agent_id, message_id, message, redact_message, created_at, updated_at) \
             VALUES ('default', 's', 'a', 5, '{}', NULL, now(), now())",
        )
        .await
        .expect("an uncommitted row with the write's id");
    let path = TestApp::messages_path("s", "a");
    let messages: Vec<Value> =
        (0..10).map(|id| json!({"message_id": id, "message": {"role": "user", "content": []}})).collect();
    let (batch, body) = (format!("{path}/batch"), json!({"messages": messages}));
    let write = with_token(&app, Method::POST, &batch, Some(&body), Some(old));
    let takeover = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.delete(&format!("{}?force=true", lease_path("s"))).await.expect(204);
        granted(&app, "s", "new", 60).await;
        crate::helpers::message_ids(&app.get(&format!("{path}?limit=100")).await.expect(200))
    };
    let release = async {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        blocker.execute("ROLLBACK").await.expect("rollback");
    };
    let (written, seen, ()) = futures::join!(write, takeover, release);
    assert_eq!(written.status, 201, "{}", written.body);
    assert_eq!(
        seen,
        (0..10).collect::<Vec<i64>>(),
        "the grant went ahead of a write checked against the old lease"
    );
}
