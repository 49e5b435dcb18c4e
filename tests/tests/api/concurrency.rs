//! Parallel writers: nothing lost, no 500s.

use futures::future::join_all;
use serde_json::json;

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(
    fifty_parallel_appends_are_all_stored,
    twenty_parallel_creates_give_one_winner,
    parallel_writes_that_are_refused_fail_alone,
    overlapping_batches_in_opposite_orders_both_succeed,
    parallel_appends_to_many_agents_each_land_where_sent,
    appends_racing_the_deletion_of_their_agent_are_201_or_404
);

async fn fifty_parallel_appends_are_all_stored(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let replies = join_all((0..50).map(|i| {
        let body =
            json!({"message_id": i, "message": {"role": "user", "content": [{"text": format!("m{i}")}]}});
        let app = &app;
        let path = &path;
        async move { app.post(path, &body).await.status.as_u16() }
    }))
    .await;
    assert!(replies.iter().all(|&s| s == 201), "{replies:?}");
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(listed["total"], 50);
    let ids: Vec<_> =
        listed["messages"].as_array().expect("messages").iter().map(|m| m["message_id"].as_i64()).collect();
    assert_eq!(ids, (0..50).map(Some).collect::<Vec<_>>());
}

async fn twenty_parallel_creates_give_one_winner(backend: Backend) {
    let app = app!(backend);
    let replies = join_all((0..20).map(|_| {
        let app = &app;
        async move { app.post("/api/v1/sessions", &json!({"session_id": "race"})).await.status.as_u16() }
    }))
    .await;
    assert_eq!(replies.iter().filter(|&&s| s == 201).count(), 1, "{replies:?}");
    assert_eq!(replies.iter().filter(|&&s| s == 409).count(), 19, "{replies:?}");
    assert_eq!(app.get("/api/v1/sessions").await.expect(200)["total"], 1);
}

/// Writes that arrive together (on SQLite, committed as one group) are
/// answered one by one: replays, conflicts and missing parents fail alone,
/// and every 201 is stored as sent.
async fn parallel_writes_that_are_refused_fail_alone(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let missing = TestApp::messages_path("s1", "nobody");
    let message = |id: u64, text: &str| json!({"message_id": id, "message": {"role": "user", "content": [{"text": text}]}});
    let mut requests = Vec::new();
    for id in 0..12 {
        for variant in ["a", "a", "b", "c"] {
            requests.push((path.clone(), message(id, &format!("{id}{variant}"))));
        }
        requests.push((missing.clone(), message(id, "lost")));
    }
    let replies = join_all(requests.iter().map(|(path, body)| {
        let app = &app;
        async move { (app.post(path, body).await.status.as_u16(), body.clone(), path.clone()) }
    }))
    .await;
    let mut created = std::collections::HashMap::new();
    for (status, body, to) in &replies {
        let id = body["message_id"].as_u64().expect("id");
        let text = body["message"]["content"][0]["text"].as_str().expect("text").to_owned();
        match status {
            201 => assert!(created.insert(id, text).is_none(), "two 201s for message {id}"),
            200 | 409 => assert_eq!(to, &path, "{status} for {body}"),
            404 => assert_eq!(to, &missing, "404 for {body}"),
            other => panic!("{other} for {body} to {to}"),
        }
    }
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(listed["total"], 12, "{listed}");
    for stored in listed["messages"].as_array().expect("messages") {
        let id = stored["message_id"].as_u64().expect("id");
        assert_eq!(stored["message"]["content"][0]["text"].as_str(), created.get(&id).map(String::as_str));
    }
    // A replay of the winner is a 200, and the other contents 409.
    for (status, body, to) in &replies {
        let id = body["message_id"].as_u64().expect("id");
        let text = body["message"]["content"][0]["text"].as_str().expect("text");
        if to == &path && *status != 201 {
            let same = created.get(&id).map(String::as_str) == Some(text);
            assert_eq!(*status, if same { 200 } else { 409 }, "{body}");
        }
    }
    app.get(&format!("{missing}?offset=0")).await.expect(404);
}

/// Two batches over the same ids, one in reverse order, sent at once: both
/// succeed (rows are written in id order, so they cannot deadlock).
async fn overlapping_batches_in_opposite_orders_both_succeed(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    for round in 0..8 {
        let agent = format!("a{round}");
        app.post(
            "/api/v1/sessions/s1/agents",
            &json!({"agent_id": agent, "state": {}, "conversation_manager_state": {}}),
        )
        .await
        .expect(201);
        let path = format!("{}/batch", TestApp::messages_path("s1", &agent));
        let message = |id: u64| json!({"message_id": id, "message": {"role": "user", "content": [{"text": format!("m{id}")}]}});
        let forward = json!({"messages": (0..40).map(message).collect::<Vec<_>>()});
        let backward = json!({"messages": (0..40).rev().map(message).collect::<Vec<_>>()});
        let (a, b) = futures::join!(app.post(&path, &forward), app.post(&path, &backward));
        for reply in [a, b] {
            assert!(matches!(reply.status.as_u16(), 200 | 201), "round {round}: {}", reply.status);
        }
        let listed = app.get(&format!("{}?offset=0", TestApp::messages_path("s1", &agent))).await.expect(200);
        assert_eq!(listed["total"], 40);
    }
}

/// Appends to many agents at once (which the server writes together) each
/// land on their own agent, large ones included, and nothing else does.
async fn parallel_appends_to_many_agents_each_land_where_sent(backend: Backend) {
    let app = app!(backend);
    let mut paths = Vec::new();
    for s in 0..4 {
        app.session(&format!("s{s}")).await;
        for a in 0..4 {
            app.agent_in(&format!("s{s}"), &format!("a{a}")).await;
            paths.push(TestApp::messages_path(&format!("s{s}"), &format!("a{a}")));
        }
    }
    let text = |path: &str, id: u64| {
        // Every seventh message is larger than the server writes in groups.
        let filler = if id % 7 == 3 { "x".repeat(100 * 1024) } else { String::new() };
        format!("{path}#{id}{filler}")
    };
    let requests: Vec<(String, serde_json::Value)> = (0..10)
        .flat_map(|id| paths.iter().map(move |path| (path.clone(), id)))
        .map(|(path, id)| {
            let body = json!({"message_id": id, "message": {"role": "user", "content": [{"text": text(&path, id)}]}});
            (path, body)
        })
        .collect();
    let replies = join_all(requests.iter().map(|(path, body)| {
        let app = &app;
        async move { app.post(path, body).await.status.as_u16() }
    }))
    .await;
    assert!(replies.iter().all(|&s| s == 201), "{replies:?}");
    for path in &paths {
        let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
        assert_eq!(listed["total"], 10, "{path}");
        for (id, stored) in listed["messages"].as_array().expect("messages").iter().enumerate() {
            assert_eq!(stored["message_id"], id);
            assert_eq!(
                stored["message"]["content"][0]["text"].as_str(),
                Some(text(path, id as u64).as_str())
            );
        }
    }
}

/// An agent deleted while appends to it and to others are in flight: each
/// of its appends is stored (and then deleted with it) or a 404, never a
/// server error, and the other agents' appends are unaffected.
async fn appends_racing_the_deletion_of_their_agent_are_201_or_404(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    for round in 0..4 {
        let (doomed, kept) = (format!("doomed{round}"), format!("kept{round}"));
        app.agent_in("s1", &doomed).await;
        app.agent_in("s1", &kept).await;
        let appends = join_all((0..40).map(|i| {
            let agent = if i % 2 == 0 { &doomed } else { &kept };
            let path = TestApp::messages_path("s1", agent);
            let body = json!({"message_id": i, "message": {"role": "user", "content": []}});
            let app = &app;
            async move { (i, app.post(&path, &body).await.status.as_u16()) }
        }));
        let deletion = async {
            tokio::time::sleep(std::time::Duration::from_millis(round * 3)).await;
            app.delete(&format!("/api/v1/sessions/s1/agents/{doomed}")).await.status.as_u16()
        };
        let (appends, deleted) = tokio::join!(appends, deletion);
        assert_eq!(deleted, 204, "round {round}");
        for (i, status) in appends {
            let allowed: &[u16] = if i % 2 == 0 { &[201, 404] } else { &[201] };
            assert!(allowed.contains(&status), "round {round}: append {i} answered {status}");
        }
        let kept_path = TestApp::messages_path("s1", &kept);
        assert_eq!(app.get(&format!("{kept_path}?offset=0")).await.expect(200)["total"], 20);
        app.get(&format!("/api/v1/sessions/s1/agents/{doomed}")).await.expect(404);
    }
}
