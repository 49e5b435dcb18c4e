//! One test that really goes through testcontainers: a PostgreSQL
//! container of its own (`TEST_POSTGRES_IMAGE`, default `postgres:16`),
//! started, served against, and removed.

use serde_json::json;
use testcontainers::{ImageExt, runners::AsyncRunner};
use testcontainers_modules::postgres::Postgres;

use crate::helpers::{self, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_from_a_testcontainers_postgres() {
    let (name, tag) = helpers::postgres_image();
    let container = match Postgres::default().with_name(name).with_tag(tag).start().await {
        Ok(container) => container,
        Err(e) => {
            assert!(!helpers::postgres_required(), "REQUIRE_POSTGRES=1 but testcontainers failed: {e}");
            eprintln!("skipping: testcontainers could not start PostgreSQL ({e})");
            return;
        }
    };
    let port = container.get_host_port_ipv4(5432).await.expect("mapped port");
    let base = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres");
    let database = helpers::schema_in(&base).await;
    let app = helpers::start(helpers::test_config(&database.url), Some(database)).await;
    app.agent("s1", "a1").await;
    let path = TestApp::messages_path("s1", "a1");
    app.post(&path, &json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "\u{0}"}]}}))
        .await
        .expect(201);
    let listed = app.get(&format!("{path}?offset=0")).await.expect(200);
    assert_eq!(listed["messages"][0]["message"]["content"][0]["text"], "\u{0}");
    let metrics = app.get("/health/metrics").await.expect(200);
    assert_eq!(metrics["database_backend"], "postgres");
    app.stop().await.expect("clean stop");
    container.stop().await.expect("container stops");
}
