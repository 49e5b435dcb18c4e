//! Optimistic concurrency: `ETag` on sessions, agents and multi-agent
//! states; `If-Match` on `PUT` applies only at that version.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp},
};

both_backends!(
    sessions_are_versioned,
    agents_are_versioned,
    multi_agent_states_are_versioned,
    racing_conditional_updates_have_one_winner
);

/// One kind of versioned resource: where it lives and how to change it.
struct Resource {
    collection: &'static str,
    item: &'static str,
    create: Value,
    change: fn(u32) -> Value,
    /// The field `change` sets, to check what is stored.
    field: &'static str,
}

async fn versioned(app: &TestApp, r: Resource) {
    let created = app.post(r.collection, &r.create).await;
    let first = created.etag();
    created.expect(201);
    let read = app.get(r.item).await;
    assert_eq!(read.etag(), first, "a read names the version a write returned");
    let before = read.expect(200);

    // Without If-Match the last writer wins and the version moves on.
    let updated = app.put(r.item, &(r.change)(1)).await;
    let second = updated.etag();
    assert_ne!(second, first);
    let updated = updated.expect(200);

    // A stale tag changes nothing.
    let stale = app.put_if_match(r.item, &(r.change)(2), &first).await;
    assert!(stale.headers.get("etag").is_none(), "a 412 names no version");
    stale.expect_error(412, "PreconditionFailedError");
    let now = app.get(r.item).await;
    assert_eq!(now.etag(), second);
    let now = now.expect(200);
    assert_eq!(now[r.field], (r.change)(1)[r.field]);
    assert_eq!(now, updated, "a refused update changes nothing, not even updated_at");
    assert_ne!(now, before);

    // Weak tags and tags this server never issued never match, nor does an
    // empty list (RFC 9110: no tag is listed, so none matches).
    for tag in
        [format!("W/{second}"), "\"1\"".into(), "\"x\"".into(), "abc".into(), String::new(), " , ".into()]
    {
        app.put_if_match(r.item, &(r.change)(3), &tag).await.expect_error(412, "PreconditionFailedError");
    }
    assert_eq!(app.get(r.item).await.etag(), second);

    // The current tag, alone or in a list, and `*` apply.
    let third = app.put_if_match(r.item, &(r.change)(4), &second).await;
    let third_tag = third.etag();
    assert_eq!(third.expect(200)[r.field], (r.change)(4)[r.field]);
    let listed = app.put_if_match(r.item, &(r.change)(5), &format!("{first}, {third_tag}")).await;
    let fourth = listed.etag();
    listed.expect(200);
    app.put_if_match(r.item, &(r.change)(6), "*").await.expect(200);

    // A deleted and recreated resource does not take old versions.
    app.delete(r.item).await.expect(204);
    app.put_if_match(r.item, &(r.change)(7), &fourth).await.expect_error(404, "NotFoundError");
    app.put_if_match(r.item, &(r.change)(7), "*").await.expect_error(404, "NotFoundError");
    let again = app.post(r.collection, &r.create).await;
    assert!(![first.clone(), second.clone(), third_tag, fourth.clone()].contains(&again.etag()));
    again.expect(201);
    for old in [first, second, fourth] {
        app.put_if_match(r.item, &(r.change)(8), &old).await.expect_error(412, "PreconditionFailedError");
    }
}

async fn sessions_are_versioned(backend: Backend) {
    let app = app!(backend);
    let r = Resource {
        collection: "/api/v1/sessions",
        item: "/api/v1/sessions/s1",
        create: json!({"session_id": "s1"}),
        change: |n| json!({"metadata": {"n": n}}),
        field: "metadata",
    };
    versioned(&app, r).await;
}

async fn agents_are_versioned(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    let r = Resource {
        collection: "/api/v1/sessions/s1/agents",
        item: "/api/v1/sessions/s1/agents/a1",
        create: json!({"agent_id": "a1", "state": {}, "conversation_manager_state": {}}),
        change: |n| json!({"state": {"n": n}}),
        field: "state",
    };
    versioned(&app, r).await;
}

async fn multi_agent_states_are_versioned(backend: Backend) {
    let app = app!(backend);
    app.session("s1").await;
    let r = Resource {
        collection: "/api/v1/sessions/s1/multi-agents",
        item: "/api/v1/sessions/s1/multi-agents/g1",
        create: json!({"multi_agent_id": "g1", "state": {}}),
        change: |n| json!({"state": {"n": n}}),
        field: "state",
    };
    versioned(&app, r).await;
}

async fn racing_conditional_updates_have_one_winner(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = "/api/v1/sessions/s1/agents/a1";
    for round in 0..5 {
        let tag = app.get(path).await.etag();
        let replies = join_all((0..8).map(|i| {
            let body = json!({"state": {"round": round, "writer": i}});
            let (app, tag) = (&app, &tag);
            async move { app.put_if_match(path, &body, tag).await }
        }))
        .await;
        let won: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(won.len(), 1, "exactly one writer wins: {replies:?}");
        assert!(replies.iter().all(|r| r.status == 200 || r.status == 412), "{replies:?}");
        let stored = app.get(path).await.expect(200);
        assert_eq!(stored["state"], won[0].body["state"]);
    }
}
