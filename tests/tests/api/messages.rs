//! `/api/v1/sessions/{sid}/agents/{aid}/messages`: append, replay, batch,
//! read, update, delete and every listing style.

use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp, message_ids},
};

both_backends!(
    append_then_read_back,
    identical_replay_is_200_and_different_content_is_409,
    append_errors_write_nothing,
    batch_stores_all,
    batch_is_all_or_nothing,
    batch_rejects_bad_batches,
    update_sets_and_clears_redaction,
    update_errors,
    delete_keeps_other_ids,
    listing_offset_and_limit,
    listing_keyset,
    listing_pages,
    listing_errors,
);

fn msg(id: i64, text: &str) -> Value {
    json!({"message_id": id, "message": {"role": "user", "content": [{"text": text}]}, "redact_message": null})
}

async fn with_messages(app: &TestApp, n: i64) -> String {
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let batch: Vec<_> = (0..n).map(|i| msg(i, &format!("m{i}"))).collect();
    if n > 0 {
        app.post(&format!("{path}/batch"), &json!({"messages": batch})).await.expect(201);
    }
    path
}

async fn append_then_read_back(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let sent = json!({
        "message_id": 0,
        "message": {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "calc", "input": {"x": 1}}}], "metadata": {"usage": 3}},
        "redact_message": null,
        "created_at": "2026-05-06T07:08:09.101112+00:00",
        "updated_at": "2026-05-06T07:08:09.101112+00:00",
    });
    let body = app.post(&path, &sent).await.expect(201);
    assert_eq!(body, sent);
    assert_eq!(app.get(&format!("{path}/0")).await.expect(200), sent);
    let second = app.post(&path, &msg(1, "next")).await.expect(201);
    assert_eq!(second["redact_message"], Value::Null);
    assert!(second["created_at"].as_str().is_some_and(|t| t.ends_with("+00:00")));
}

async fn identical_replay_is_200_and_different_content_is_409(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let first = app.post(&path, &msg(0, "hello")).await.expect(201);
    // A retry may re-serialise the object with other key order and new timestamps.
    let retry = json!({"redact_message": null, "message": {"content": [{"text": "hello"}], "role": "user"}, "message_id": 0,
                       "created_at": "2030-01-01T00:00:00+00:00"});
    assert_eq!(app.post(&path, &retry).await.expect(200), first);
    app.post(&path, &msg(0, "other")).await.expect_error(409, "ConflictError");
    let mut redacted = msg(0, "hello");
    redacted["redact_message"] = json!({"role": "user", "content": [{"text": "[redacted]"}]});
    app.post(&path, &redacted).await.expect_error(409, "ConflictError");
    assert_eq!(app.get(&format!("{path}/0")).await.expect(200), first);
}

async fn append_errors_write_nothing(backend: Backend) {
    let app = app!(backend);
    let path = TestApp::messages_path("s1", "a1");
    app.post(&path, &msg(0, "x")).await.expect_error(404, "NotFoundError");
    app.session("s1").await;
    app.post(&path, &msg(0, "x")).await.expect_error(404, "NotFoundError");
    app.agent("s2", "a1").await;
    let path = TestApp::messages_path("s2", "a1");
    for bad in [
        json!({"message_id": -1, "message": {"role": "user", "content": []}}),
        json!({"message_id": "0", "message": {"role": "user", "content": []}}),
        json!({"message_id": 1.5, "message": {"role": "user", "content": []}}),
        json!({"message": {"role": "user", "content": []}}),
        json!({"message_id": 0}),
        json!({"message_id": 0, "message": "hello"}),
        json!({"message_id": 0, "message": {"content": []}}),
        json!({"message_id": 0, "message": {"role": 7, "content": []}}),
        json!({"message_id": 0, "message": {"role": "user"}}),
        json!({"message_id": 0, "message": {"role": "user", "content": []}, "redact_message": "x"}),
        json!({"message_id": 0, "message": {"role": "user", "content": []}, "redact_message": {"role": "user"}}),
        json!({"message_id": 0, "message": {"role": "user", "content": []}, "created_at": "soon"}),
    ] {
        app.post(&path, &bad).await.expect_error(422, "ValidationError");
    }
    app.call_raw(
        reqwest::Method::POST,
        &path,
        r#"{"message_id": 0, "message": {"role": "user", "content": [NaN]}}"#,
    )
    .await
    .expect_error(422, "ValidationError");
    assert_eq!(app.get(&format!("{path}?offset=0")).await.expect(200)["total"], 0);
}

async fn batch_stores_all(backend: Backend) {
    let app = app!(backend);
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    let batch: Vec<_> = (0..1000).map(|i| msg(i, &format!("m{i}"))).collect();
    let body = app.post(&format!("{path}/batch"), &json!({"messages": batch})).await.expect(201);
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1000));
    assert_eq!(body["messages"][999]["message"]["content"][0]["text"], "m999");
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(listed["total"], 1000);
    assert_eq!(message_ids(&listed), (0..1000).collect::<Vec<_>>());
    // Replaying part of it with new ids after is fine (client retry).
    let retry = json!({"messages": [msg(999, "m999"), msg(1000, "m1000")]});
    let body = app.post(&format!("{path}/batch"), &retry).await.expect(201);
    assert_eq!(body["messages"][0]["created_at"], listed["messages"][999]["created_at"]);
    assert_eq!(app.get(&format!("{path}?offset=0")).await.expect(200)["total"], 1001);
}

async fn batch_is_all_or_nothing(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 3).await;
    let conflicting = json!({"messages": [msg(3, "new"), msg(4, "new"), msg(1, "DIFFERENT")]});
    app.post(&format!("{path}/batch"), &conflicting).await.expect_error(409, "ConflictError");
    let invalid = json!({"messages": [msg(3, "new"), {"message_id": 4, "message": {"content": []}}]});
    app.post(&format!("{path}/batch"), &invalid).await.expect_error(422, "ValidationError");
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(message_ids(&listed), [0, 1, 2]);
    let missing = TestApp::messages_path("s1", "ghost");
    app.post(&format!("{missing}/batch"), &json!({"messages": [msg(0, "x")]}))
        .await
        .expect_error(404, "NotFoundError");
}

async fn batch_rejects_bad_batches(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 0).await;
    let too_many: Vec<_> = (0..1001).map(|i| msg(i, "x")).collect();
    for bad in [
        json!({"messages": []}),
        json!({"messages": too_many}),
        json!({"messages": "nope"}),
        json!({"messages": [[5, {"role": "user", "content": []}]]}),
        json!([]),
        json!({}),
    ] {
        app.post(&format!("{path}/batch"), &bad).await.expect_error(422, "ValidationError");
    }
    // An id twice: with other content a conflict, with the same content stored once.
    let twice = json!({"messages": [msg(5, "a"), msg(6, "b"), msg(5, "other")]});
    app.post(&format!("{path}/batch"), &twice).await.expect_error(409, "ConflictError");
    assert_eq!(app.get(&format!("{path}?offset=0")).await.expect(200)["total"], 0);
    let repeated = json!({"messages": [msg(5, "a"), msg(6, "b"), msg(5, "a")]});
    let stored = app.post(&format!("{path}/batch"), &repeated).await.expect(201);
    assert_eq!(message_ids(&stored), [5, 6, 5]);
    assert_eq!(app.get(&format!("{path}?offset=0")).await.expect(200)["total"], 2);
}

async fn update_sets_and_clears_redaction(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 2).await;
    let before = app.get(&format!("{path}/1")).await.expect(200);
    let redaction = json!({"role": "user", "content": [{"text": "[User input redacted.]"}]});
    // The SDK sends its whole SessionMessage.to_dict().
    let mut sdk = before.clone();
    sdk["redact_message"] = redaction.clone();
    sdk["message_id"] = json!(77);
    let body = app.put(&format!("{path}/1"), &sdk).await.expect(200);
    assert_eq!(body["message_id"], 1);
    assert_eq!(body["redact_message"], redaction);
    assert_eq!(body["message"], before["message"]);
    assert_eq!(body["created_at"], before["created_at"]);
    let body = app
        .put(&format!("{path}/1"), &json!({"message": {"role": "user", "content": [{"text": "edited"}]}}))
        .await;
    let body = body.expect(200);
    assert_eq!(body["message"]["content"][0]["text"], "edited");
    assert_eq!(body["redact_message"], redaction);
    let body = app.put(&format!("{path}/1"), &json!({"redact_message": null})).await.expect(200);
    assert_eq!(body["redact_message"], Value::Null);
    assert_eq!(app.get(&format!("{path}/1")).await.expect(200), body);
}

async fn update_errors(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 1).await;
    app.put(&format!("{path}/5"), &json!({"redact_message": null})).await.expect_error(404, "NotFoundError");
    app.put(&format!("{}/0", TestApp::messages_path("s1", "zz")), &json!({}))
        .await
        .expect_error(404, "NotFoundError");
    for bad in [json!({"message": {"role": "user"}}), json!({"redact_message": "x"}), json!({"message": []})]
    {
        app.put(&format!("{path}/0"), &bad).await.expect_error(422, "ValidationError");
    }
    app.put(&format!("{path}/abc"), &json!({})).await.expect_error(422, "ValidationError");
    app.put(&format!("{path}/-1"), &json!({})).await.expect_error(422, "ValidationError");
    assert_eq!(app.get(&format!("{path}/0")).await.expect(200)["message"]["content"][0]["text"], "m0");
}

async fn delete_keeps_other_ids(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 3).await;
    app.delete(&format!("{path}/1")).await.expect(204);
    app.delete(&format!("{path}/1")).await.expect_error(404, "NotFoundError");
    app.get(&format!("{path}/1")).await.expect_error(404, "NotFoundError");
    app.get(&format!("{path}/x")).await.expect_error(422, "ValidationError");
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(message_ids(&listed), [0, 2]);
    assert_eq!(listed["total"], 2);
}

async fn listing_offset_and_limit(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 25).await;
    let all = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(message_ids(&all), (0..25).collect::<Vec<_>>());
    assert_eq!(all["next_offset"], Value::Null);
    assert_eq!(all["total"], 25);
    let rest = app.get(&format!("{path}?offset=20")).await.expect(200);
    assert_eq!(message_ids(&rest), [20, 21, 22, 23, 24]);
    let window = app.get(&format!("{path}?offset=5&limit=10")).await.expect(200);
    assert_eq!(message_ids(&window), (5..15).collect::<Vec<_>>());
    assert_eq!(window["next_offset"], 15);
    let first = app.get(&format!("{path}?limit=3")).await.expect(200);
    assert_eq!(message_ids(&first), [0, 1, 2]);
    let newest = app.get(&format!("{path}?limit=3&order=desc")).await.expect(200);
    assert_eq!(message_ids(&newest), [24, 23, 22]);
    assert_eq!(newest["next_offset"], 3);
    let older = app.get(&format!("{path}?limit=3&offset=3&order=desc")).await.expect(200);
    assert_eq!(message_ids(&older), [21, 20, 19]);
    let past = app.get(&format!("{path}?offset=40")).await.expect(200);
    assert_eq!(message_ids(&past), Vec::<i64>::new());
    assert_eq!(past["next_offset"], Value::Null);
    assert_eq!(past["total"], 25);
}

async fn listing_keyset(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 10).await;
    let after = app.get(&format!("{path}?after_message_id=6")).await.expect(200);
    assert_eq!(message_ids(&after), [7, 8, 9]);
    assert_eq!(after["next_offset"], Value::Null);
    let limited = app.get(&format!("{path}?after_message_id=2&limit=3")).await.expect(200);
    assert_eq!(message_ids(&limited), [3, 4, 5]);
    assert_eq!(limited["next_offset"], 6);
    let before = app.get(&format!("{path}?after_message_id=4&order=desc")).await.expect(200);
    assert_eq!(message_ids(&before), [3, 2, 1, 0]);
    let from_start = app.get(&format!("{path}?after_message_id=-1&limit=2")).await.expect(200);
    assert_eq!(message_ids(&from_start), [0, 1]);
    let none = app.get(&format!("{path}?after_message_id=9")).await.expect(200);
    assert_eq!(message_ids(&none), Vec::<i64>::new());
    assert_eq!(none["total"], 10);
}

async fn listing_pages(backend: Backend) {
    let app = app!(backend);
    let path = with_messages(&app, 25).await;
    let default = app.get(&path).await.expect(200);
    assert_eq!(message_ids(&default), (0..10).collect::<Vec<_>>());
    assert_eq!(default["page"], 1);
    assert_eq!(default["page_size"], 10);
    assert_eq!(default["next_offset"], 10);
    let third = app.get(&format!("{path}?page=3&page_size=10")).await.expect(200);
    assert_eq!(message_ids(&third), (20..25).collect::<Vec<_>>());
    assert_eq!(third["page"], 3);
    assert_eq!(third["next_offset"], Value::Null);
    // `page` is ignored once a Strands-style parameter is present.
    let strands = app.get(&format!("{path}?page=3&offset=0&limit=2")).await.expect(200);
    assert_eq!(message_ids(&strands), [0, 1]);
    let desc = app.get(&format!("{path}?page=1&page_size=5&order=desc")).await.expect(200);
    assert_eq!(message_ids(&desc), [24, 23, 22, 21, 20]);
}

async fn listing_errors(backend: Backend) {
    let app = app!(backend);
    let missing = TestApp::messages_path("s1", "a1");
    app.get(&format!("{missing}?offset=0")).await.expect_error(404, "NotFoundError");
    app.get(&missing).await.expect_error(404, "NotFoundError");
    let path = with_messages(&app, 1).await;
    for query in [
        "order=sideways",
        "offset=-1",
        "offset=x",
        "limit=0",
        "limit=10001",
        "limit=NaN",
        "after_message_id=abc",
        "page=0",
        "page_size=1001",
    ] {
        app.get(&format!("{path}?{query}")).await.expect_error(422, "ValidationError");
    }
    app.get(&format!("{path}?limit=10000")).await.expect(200);
}
