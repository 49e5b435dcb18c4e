//! `/api/v1/storage`: the byte store behind the SDK's `Storage` protocol.
//!
//! Over 400 lines by one: the whole protocol's contract, one test per rule.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    app, both_backends,
    helpers::{Backend, Reply, TestApp, enc, scalar, spawn_app_with},
};

both_backends!(
    values_round_trip_as_bytes,
    keys_normalise_as_the_sdk_does,
    bad_keys_and_queries_are_refused,
    listing_is_in_byte_order_and_pages,
    prefixes_match_as_the_sdk_does,
    prefix_delete_removes_only_the_prefix_in_batches,
    etags_and_preconditions,
    values_over_the_limit_are_refused_and_store_nothing,
    search_ranks_text_values,
    concurrent_writers_leave_one_whole_value
);

const ROOT: &str = "/api/v1/storage";

/// Deterministic bytes that are not text.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `/api/v1/storage/<key>` with each `/`-separated part percent-encoded.
pub fn path(key: &str) -> String {
    let parts: Vec<String> = key.split('/').map(enc).collect();
    format!("{ROOT}/{}", parts.join("/"))
}

pub async fn put(app: &TestApp, key: &str, value: impl Into<reqwest::Body>) -> Reply {
    put_with(app, key, value, &[]).await
}

pub async fn put_with(
    app: &TestApp,
    key: &str,
    value: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = app.client.put(app.url(&path(key))).body(value);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    TestApp::reply(req.send().await.expect("request")).await
}

/// The bytes under `key` (status 200 asserted), with the response headers.
pub async fn read(app: &TestApp, key: &str) -> (Vec<u8>, reqwest::header::HeaderMap) {
    let resp = app.client.get(app.url(&path(key))).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK, "GET {key}");
    let headers = resp.headers().clone();
    (resp.bytes().await.expect("body").to_vec(), headers)
}

async fn status_of(app: &TestApp, method: Method, key: &str) -> u16 {
    app.client.request(method, app.url(&path(key))).send().await.expect("request").status().as_u16()
}

/// Bytes of chunks no key points at (replaced or deleted values, uploads
/// that did not land), and of those the bytes not listed for the sweeper.
pub async fn stray_bytes(app: &TestApp) -> (i64, i64) {
    let length = if app.database_url.starts_with("postgres") { "octet_length" } else { "length" };
    let stray = |condition: &str| {
        format!(
            "SELECT CAST(COALESCE(SUM({length}(c.data)), 0) AS BIGINT) FROM blob_chunks c \
             WHERE NOT EXISTS (SELECT 1 FROM blobs b \
             WHERE b.tenant_id = c.tenant_id AND b.key = c.key AND b.version = c.version){condition}"
        )
    };
    let unlisted = " AND NOT EXISTS (SELECT 1 FROM blob_garbage g \
                    WHERE g.tenant_id = c.tenant_id AND g.key = c.key AND g.version = c.version)";
    (scalar(&app.database_url, &stray("")).await, scalar(&app.database_url, &stray(unlisted)).await)
}

/// Bytes of chunks that nothing points at or lists: none, ever.
async fn unlisted_stray_bytes(app: &TestApp) -> i64 {
    stray_bytes(app).await.1
}

async fn keys(app: &TestApp, query: &str) -> Value {
    app.get(&format!("{ROOT}?{query}")).await.expect(200)
}

async fn values_round_trip_as_bytes(backend: Backend) {
    let app = app!(backend);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("zeros", vec![0; 4096]),
        ("not-utf8", vec![0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80]),
        ("json", br#"{"schema_version": "1.0", "messages": ["\u0000"]}"#.to_vec()),
        ("chunk-edge", noise(1024 * 1024, 1)),
        ("chunk-edge-plus", noise(1024 * 1024 + 1, 2)),
        ("large", noise(50 * 1024 * 1024, 3)),
    ];
    for (key, value) in &cases {
        let written = put_with(&app, key, value.clone(), &[("content-type", "image/png")]).await;
        let tag = written.etag();
        written.expect(204);
        let (back, headers) = read(&app, key).await;
        assert!(back == *value, "{key}: {} bytes back for {}", back.len(), value.len());
        assert_eq!(headers["etag"].to_str().ok(), Some(tag.as_str()));
        assert_eq!(headers["content-type"], "application/octet-stream");
        assert_eq!(headers["content-length"].to_str().ok(), Some(value.len().to_string().as_str()));
        let head = app.client.head(app.url(&path(key))).send().await.expect("head");
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["etag"].to_str().ok(), Some(tag.as_str()));
        assert_eq!(head.headers()["content-length"].to_str().ok(), Some(value.len().to_string().as_str()));
    }
    // Overwrite a large value with a small one, and delete.
    put(&app, "large", "small").await.expect(204);
    assert_eq!(read(&app, "large").await.0, b"small");
    app.delete(&path("large")).await.expect(204);
    app.get(&path("large")).await.expect_error(404, "NotFoundError");
    assert_eq!(status_of(&app, Method::HEAD, "large").await, 404);
    // Deleting what is not there is fine.
    app.delete(&path("never/was")).await.expect(204);
}

async fn keys_normalise_as_the_sdk_does(backend: Backend) {
    let app = app!(backend);
    put(&app, "session/s1/scopes/agent/a1/snapshots/snapshot_latest.json", "v1").await.expect(204);
    for alias in [
        "/api/v1/storage//session//s1/scopes/agent/a1/snapshots/snapshot_latest.json/",
        "/api/v1/storage/session%2Fs1%2Fscopes%2Fagent%2Fa1%2Fsnapshots%2Fsnapshot_latest.json",
        "/api/v1/storage/session/s1///scopes/agent/a1/snapshots/snapshot_latest.json//",
    ] {
        let resp = app.client.get(app.url(alias)).send().await.expect("request");
        assert_eq!(resp.status(), 200, "{alias}");
        assert_eq!(resp.bytes().await.expect("body").as_ref(), b"v1");
    }
    // Unicode, spaces, dots and other characters are part of keys.
    for key in ["日本/データ", "with space/and+plus", "a/./b", "a/..b/c", "tenant:1/x@y", "p%q"] {
        put(&app, key, key.to_owned()).await.expect(204);
        assert_eq!(read(&app, key).await.0, key.as_bytes(), "{key}");
    }
    let listed = keys(&app, "").await;
    let listed: Vec<&str> =
        listed["keys"].as_array().expect("keys").iter().filter_map(Value::as_str).collect();
    assert!(listed.contains(&"session/s1/scopes/agent/a1/snapshots/snapshot_latest.json"), "{listed:?}");
    assert!(listed.contains(&"日本/データ") && listed.contains(&"p%q"), "{listed:?}");
    // The longest key is 1024 bytes after normalisation.
    let longest = "k".repeat(1024);
    put(&app, &format!("/{longest}/"), "x").await.expect(204);
    assert_eq!(read(&app, &longest).await.0, b"x");
}

async fn bad_keys_and_queries_are_refused(backend: Backend) {
    let app = app!(backend);
    for bad in [
        format!("{ROOT}/a%5Cb"),
        format!("{ROOT}/a%2F..%2Fb"),
        format!("{ROOT}/..%2Fa"),
        format!("{ROOT}/a%2F.."),
        format!("{ROOT}/%2F"),
        format!("{ROOT}/%2F%2F%2F"),
        format!("{ROOT}/a%00b"),
        format!("{ROOT}/{}", "k".repeat(1025)),
        format!("{ROOT}/{}", "é".repeat(513)),
        format!("{ROOT}/%FF%FE"),
    ] {
        let written = app.client.put(app.url(&bad)).body("x").send().await.expect("request");
        let reply = TestApp::reply(written).await;
        reply.expect_error(422, "ValidationError");
        for method in [Method::GET, Method::DELETE] {
            let reply =
                TestApp::reply(app.client.request(method, app.url(&bad)).send().await.expect("r")).await;
            reply.expect_error(422, "ValidationError");
        }
    }
    assert_eq!(keys(&app, "").await["keys"], json!([]), "nothing was written");
    for query in [
        "prefix=a%5C",
        "prefix=a%2F..%2F",
        "prefix=%00",
        "start_after=a%00",
        "limit=0",
        "limit=10001",
        "limit=-1",
        "limit=18446744073709551616",
        "limit=abc",
    ] {
        app.get(&format!("{ROOT}?{query}")).await.expect_error(422, "ValidationError");
    }
    for query in ["", "prefix=", "prefix=%2F%2F", "prefix=..%2F"] {
        let reply = app.call(Method::DELETE, &format!("{ROOT}?{query}"), None).await;
        reply.expect_error(422, "ValidationError");
    }
}

async fn listing_is_in_byte_order_and_pages(backend: Backend) {
    let app = app!(backend);
    let mut names = vec!["a", "b", "B", "a/b", "a-b", "é", "z", "日本", "😀", "\u{7f}x", "A", "ab", "a b"];
    for name in &names {
        put(&app, name, "v").await.expect(204);
    }
    names.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let all = keys(&app, "").await;
    assert_eq!(all["keys"], json!(names));
    assert_eq!(all["next_start_after"], Value::Null);
    // Pages of two, following next_start_after.
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(key) => format!("limit=2&start_after={}", enc(key)),
            None => "limit=2".into(),
        };
        let page = keys(&app, &query).await;
        let batch = page["keys"].as_array().expect("keys");
        assert!(batch.len() <= 2);
        seen.extend(batch.iter().filter_map(Value::as_str).map(str::to_owned));
        match page["next_start_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, names);
}

async fn prefixes_match_as_the_sdk_does(backend: Backend) {
    let app = app!(backend);
    for key in ["p", "p/x", "p/y/z", "pq", "q/p", "p\u{10FFFF}", "p0"] {
        put(&app, key, "v").await.expect(204);
    }
    let listed = |v: Value| v["keys"].clone();
    assert_eq!(listed(keys(&app, "prefix=p%2F").await), json!(["p/x", "p/y/z"]));
    assert_eq!(listed(keys(&app, "prefix=%2F%2Fp%2F%2F").await), json!(["p/x", "p/y/z"]));
    assert_eq!(listed(keys(&app, "prefix=p").await), json!(["p", "p/x", "p/y/z", "p0", "pq", "p\u{10FFFF}"]));
    assert_eq!(listed(keys(&app, "prefix=p%2Fy").await), json!(["p/y/z"]));
    assert_eq!(listed(keys(&app, "prefix=nothing").await), json!([]));
    assert_eq!(listed(keys(&app, "prefix=%2F").await).as_array().map(Vec::len), Some(7));
}

async fn prefix_delete_removes_only_the_prefix_in_batches(backend: Backend) {
    let app = app!(backend);
    let keys_to_make: Vec<String> = (0..1203).map(|i| format!("bulk/{i:05}")).collect();
    for batch in keys_to_make.chunks(50) {
        let writes = batch.iter().map(|key| put(&app, key, key.clone()));
        assert!(join_all(writes).await.into_iter().all(|r| r.status == 204));
    }
    for key in ["bulk", "bulkier/x", "other/bulk/1"] {
        put(&app, key, "keep").await.expect(204);
    }
    let deleted = app.call(Method::DELETE, &format!("{ROOT}?prefix=bulk%2F"), None).await.expect(200);
    assert_eq!(deleted, json!({"deleted": 1203}));
    assert_eq!(keys(&app, "").await["keys"], json!(["bulk", "bulkier/x", "other/bulk/1"]));
    app.get(&path("bulk/00007")).await.expect_error(404, "NotFoundError");
    let again = app.call(Method::DELETE, &format!("{ROOT}?prefix=bulk%2F"), None).await.expect(200);
    assert_eq!(again, json!({"deleted": 0}));
}

async fn etags_and_preconditions(backend: Backend) {
    let app = app!(backend);
    let key = "session/s1/snapshot.json";
    // If-None-Match: * creates only.
    let first = put_with(&app, key, "one", &[("if-none-match", "*")]).await;
    let one = first.etag();
    first.expect(204);
    put_with(&app, key, "two", &[("if-none-match", "*")]).await.expect_error(412, "PreconditionFailedError");
    assert_eq!(read(&app, key).await.0, b"one");
    // If-Match applies at the current version only.
    let second = put_with(&app, key, "two", &[("if-match", &one)]).await;
    let two = second.etag();
    second.expect(204);
    assert_ne!(one, two);
    put_with(&app, key, "three", &[("if-match", &one)]).await.expect_error(412, "PreconditionFailedError");
    put_with(&app, key, "three", &[("if-match", "W/\"1\"")])
        .await
        .expect_error(412, "PreconditionFailedError");
    assert_eq!(read(&app, key).await.0, b"two");
    put_with(&app, key, "three", &[("if-match", "")]).await.expect_error(412, "PreconditionFailedError");
    put_with(&app, key, "three", &[("if-match", "*")]).await.expect(204);
    // An empty If-None-Match lists no tag, so none matches: the write goes.
    put_with(&app, key, "three", &[("if-none-match", "")]).await.expect(204);
    // If-Match on a missing key never creates it.
    put_with(&app, "missing", "x", &[("if-match", "*")]).await.expect_error(412, "PreconditionFailedError");
    put_with(&app, "missing", "x", &[("if-match", &two)]).await.expect_error(412, "PreconditionFailedError");
    app.get(&path("missing")).await.expect_error(404, "NotFoundError");
    // A refused large write stores nothing.
    let big = noise(3 * 1024 * 1024, 9);
    put_with(&app, key, big, &[("if-match", &one)]).await.expect_error(412, "PreconditionFailedError");
    assert_eq!(read(&app, key).await.0, b"three");
    assert_eq!(stray_bytes(&app).await, (0, 0), "a refused write leaves nothing");
}

async fn values_over_the_limit_are_refused_and_store_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.storage.max_value_bytes = 2 * 1024 * 1024 + 5).await else {
        return;
    };
    put(&app, "k", "before").await.expect(204);
    put(&app, "k", noise(2 * 1024 * 1024 + 6, 4)).await.expect_error(413, "PayloadTooLargeError");
    assert_eq!(read(&app, "k").await.0, b"before");
    put(&app, "new", noise(3 * 1024 * 1024, 5)).await.expect_error(413, "PayloadTooLargeError");
    app.get(&path("new")).await.expect_error(404, "NotFoundError");
    // Without a Content-Length the limit holds too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..3).map(|i| Ok(noise(1024 * 1024, 10 + i))).collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    put(&app, "streamed", streamed).await.expect_error(413, "PayloadTooLargeError");
    app.get(&path("streamed")).await.expect_error(404, "NotFoundError");
    let exact = noise(2 * 1024 * 1024 + 5, 6);
    put(&app, "exact", exact.clone()).await.expect(204);
    assert!(read(&app, "exact").await.0 == exact);
    assert_eq!(stray_bytes(&app).await, (0, 0), "a refused write leaves nothing");
}

async fn search_ranks_text_values(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.storage.search_index_bytes = 4096).await else {
        return;
    };
    put(&app, "notes/weather", "The weather in Paris is rainy; Paris weather changes fast.")
        .await
        .expect(204);
    put(&app, "notes/food", "Croissants in Paris taste great.").await.expect(204);
    put(&app, "notes/café", "Un café crème, s'il vous plaît.").await.expect(204);
    put(&app, "other/weather", "weather report: sunny").await.expect(204);
    put(&app, "binary", noise(1000, 7)).await.expect(204);
    let late = format!("{} needle", "filler ".repeat(1000));
    put(&app, "notes/late", late).await.expect(204);

    let search = |q: &str| {
        let app = &app;
        let q = enc(q);
        async move { app.get(&format!("{ROOT}?q={q}")).await.expect(200) }
    };
    let ranked = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|r| r["key"].as_str())
            .map(str::to_owned)
            .collect()
    };
    let found = search("Paris weather").await;
    let keys = ranked(&found);
    assert_eq!(keys.first().map(String::as_str), Some("notes/weather"), "{found}");
    assert!(keys.contains(&"notes/food".to_owned()) && keys.contains(&"other/weather".to_owned()), "{found}");
    let scores: Vec<f64> =
        found["results"].as_array().expect("r").iter().filter_map(|r| r["score"].as_f64()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]) && scores.iter().all(|s| *s > 0.0), "{found}");
    // Case-insensitive, unicode words, prefix and limit.
    assert_eq!(ranked(&search("CAFÉ").await), ["notes/café"]);
    let scoped = app.get(&format!("{ROOT}?q=weather&prefix=notes%2F")).await.expect(200);
    assert_eq!(ranked(&scoped), ["notes/weather"]);
    let one = app.get(&format!("{ROOT}?q=paris&limit=1")).await.expect(200);
    assert_eq!(ranked(&one).len(), 1);
    // Only the indexed first bytes of a text value count; no words, no hits.
    assert!(ranked(&search("needle").await).is_empty());
    assert!(ranked(&search("  ?!  ").await).is_empty());
    // Overwrites and deletes update the index.
    put(&app, "notes/food", "Bagels in New York.").await.expect(204);
    assert!(!ranked(&search("croissants").await).contains(&"notes/food".to_owned()));
    assert_eq!(ranked(&search("bagels").await), ["notes/food"]);
    put(&app, "notes/food", noise(100, 8)).await.expect(204);
    assert!(ranked(&search("bagels").await).is_empty());
    app.delete(&path("notes/weather")).await.expect(204);
    assert_eq!(ranked(&search("rainy").await), Vec::<String>::new());
    app.call(Method::DELETE, &format!("{ROOT}?prefix=other"), None).await.expect(200);
    assert!(ranked(&search("sunny").await).is_empty());
    // Query syntax is never interpreted.
    for q in ["\"", "a OR", "NEAR(", "*", "'; DROP TABLE blobs; --", "a & b | !c", "\u{0}"] {
        app.get(&format!("{ROOT}?q={}", enc(q))).await.expect(200);
    }
}

async fn concurrent_writers_leave_one_whole_value(backend: Backend) {
    let app = app!(backend);
    let values: Vec<Vec<u8>> = (0..6).map(|i| noise(1024 * 1024 + 1000 * i, 20 + i as u64)).collect();
    let writes = values.iter().map(|v| put(&app, "contended", v.clone()));
    let replies = join_all(writes).await;
    assert!(
        replies.iter().all(|r| r.status == 204),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let (stored, _) = read(&app, "contended").await;
    assert!(values.contains(&stored), "the stored value is one of the written ones, whole");
    assert_eq!(unlisted_stray_bytes(&app).await, 0, "replaced versions are listed for the sweeper");
    // Each writer with If-None-Match: exactly one creates the key.
    let racing = (0..6).map(|i| put_with(&app, "once", format!("v{i}"), &[("if-none-match", "*")]));
    let statuses: Vec<u16> = join_all(racing).await.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 5, "{statuses:?}");
}
