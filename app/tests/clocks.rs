//! Replicas whose clocks disagree agree on expiry: whether a session has
//! lapsed is decided by the database's clock (`app/src/db/clock.rs`), never
//! by a replica's. Two servers share one PostgreSQL database and the second
//! runs an hour ahead (libfaketime): a session the first writes with a TTL
//! of half an hour is neither hidden nor swept by the second, what the
//! second writes lives its TTL from its `updated_at` on both, and a session
//! whose TTL has run out is gone on both.
//!
//! PostgreSQL only (replicas share a database): runs when
//! `TEST_DATABASE_URL` is set, and then needs libfaketime (`LIBFAKETIME`,
//! Debian's `libfaketime` by default), which CI installs.

use std::time::Duration;

use serde_json::{Value, json};

mod running;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_clocks_an_hour_apart_agree_on_expiry() {
    let ran = running::with_postgres_schema("clocks", |url| async move {
        let lib = std::env::var("LIBFAKETIME").unwrap_or_else(|_| LIBFAKETIME.to_owned());
        assert!(
            std::path::Path::new(&lib).exists(),
            "no libfaketime at {lib}: install it or set LIBFAKETIME"
        );
        let dir = tempfile::tempdir().expect("dir");
        let sweep = ("SESSION_BACKEND_RETENTION__SWEEP_INTERVAL_MS", "100");
        let (_on_time, on_time) = running::start(&url, dir.path(), &[sweep]).await;
        let skewed =
            [sweep, ("LD_PRELOAD", &lib), ("FAKETIME", "+1h"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
        let (_ahead, ahead) = running::start(&url, dir.path(), &skewed).await;
        let client = reqwest::Client::new();
        let create =
            |base: &str, body: Value| client.post(format!("{base}/api/v1/sessions")).json(&body).send();
        let status = |base: &str, id: &str| {
            let request = client.get(format!("{base}/api/v1/sessions/{id}")).send();
            async move { request.await.expect("get").status().as_u16() }
        };

        // The second replica's clock really is an hour ahead.
        let probe: Value =
            create(&ahead, json!({"session_id": "probe"})).await.expect("create").json().await.expect("json");
        let stamped = chrono::DateTime::parse_from_rfc3339(probe["created_at"].as_str().expect("created_at"))
            .expect("timestamp");
        let ahead_by = stamped.signed_duration_since(chrono::Utc::now());
        assert!(ahead_by > chrono::TimeDelta::minutes(55), "the replica is not ahead: {ahead_by}");

        let half_hour = json!({"session_id": "half-hour", "ttl_seconds": 1800});
        assert_eq!(create(&on_time, half_hour).await.expect("create").status(), 201);
        assert_eq!(status(&ahead, "half-hour").await, 200, "the replica ahead hides a live session");
        // Several of its sweeps later the session is still there.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(status(&on_time, "half-hour").await, 200, "the replica ahead swept a live session");
        assert_eq!(status(&ahead, "half-hour").await, 200);

        // What the replica ahead writes lives its TTL from its `updated_at`,
        // on every replica.
        let written: Value = create(&ahead, json!({"session_id": "ahead-wrote", "ttl_seconds": 1800}))
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let at = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(written[field].as_str().expect("timestamp"))
                .expect("rfc3339")
        };
        assert_eq!(at("expires_at") - at("updated_at"), chrono::TimeDelta::minutes(30));
        assert_eq!((status(&on_time, "ahead-wrote").await, status(&ahead, "ahead-wrote").await), (200, 200));

        let brief = json!({"session_id": "brief", "ttl_seconds": 1});
        assert_eq!(create(&on_time, brief).await.expect("create").status(), 201);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!((status(&on_time, "brief").await, status(&ahead, "brief").await), (404, 404));
    })
    .await;
    if ran.is_none() {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set"
        );
    }
}
