//! SCALING.md's DDL for Citus (`deploy/citus/distribute.sql`), run against
//! plain PostgreSQL: its expand, backfill and contract sections apply to a
//! schema holding rows in every table, leave every key and foreign key led
//! by the distribution column, and keep deletes cascading.

use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::helpers::{self, TestApp};

/// The file's statements from `-- @section name` to the next section.
fn section(name: &str) -> String {
    let text = include_str!("../../../deploy/citus/distribute.sql");
    let start = text.find(&format!("-- @section {name}\n")).expect("the section");
    let body = &text[start..];
    let end = body[1..].find("-- @section").map_or(body.len(), |i| i + 1);
    body[..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_citus_ddl_applies_to_a_schema_with_rows() {
    let Some(database) = helpers::fresh_postgres_schema().await else { return };
    let direct = database.direct_url();
    let app = helpers::start(helpers::test_config(&database.url), None).await;
    app.agent("s:1", "a").await;
    let message = json!({"message_id": 0, "message": {"role": "user", "content": []}});
    app.post(&TestApp::messages_path("s:1", "a"), &message).await.expect(201);
    app.post("/api/v1/sessions/s%3A1/multi-agents", &json!({"multi_agent_id": "g", "state": {}}))
        .await
        .expect(201);
    let put = app.client.put(app.url("/api/v1/storage/notes/a%2Fb.txt")).body("the zebra crossed");
    assert_eq!(put.send().await.expect("blob").status(), 204);
    app.stop().await.expect("stop");

    let db = helpers::direct(&direct).await;
    for name in ["expand", "backfill", "contract"] {
        db.execute_unprepared(&section(name)).await.unwrap_or_else(|e| panic!("section {name}: {e}"));
    }
    let sql = |text: &str| Statement::from_string(db.get_database_backend(), text.to_owned());
    let scalar = |text: &'static str| {
        let db = &db;
        async move {
            let row = db.query_one_raw(sql(text)).await.expect("query").expect("a row");
            row.try_get_by_index::<i64>(0).expect("a count")
        }
    };
    assert_eq!(scalar("SELECT COUNT(*) FROM messages WHERE session_key = 'default/s:1'").await, 1);
    assert_eq!(scalar("SELECT COUNT(*) FROM blob_chunks WHERE blob_key = 'default/notes/a/b.txt'").await, 1);
    // Every primary key and foreign key starts with the distribution column.
    let keys = "SELECT COUNT(*) FROM pg_constraint c JOIN pg_attribute a \
                ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                WHERE c.connamespace = current_schema()::regnamespace AND c.contype IN ('p', 'f') \
                AND c.conrelid::regclass::text <> 'seaql_migrations' \
                AND a.attname NOT IN ('session_key', 'blob_key')";
    assert_eq!(scalar(keys).await, 0, "a key not led by the distribution column");
    db.execute_unprepared("DELETE FROM sessions").await.expect("delete");
    assert_eq!(
        scalar("SELECT COUNT(*) FROM messages").await + scalar("SELECT COUNT(*) FROM agents").await,
        0
    );
    db.close().await.ok();
    drop(database);
}
