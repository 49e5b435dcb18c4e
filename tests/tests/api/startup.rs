//! Start-up: migrations, the `auto_migrate = false` guard, replicas
//! starting together, and a database that cannot be reached.

use futures::future::join_all;
use session_backend::Server;

use crate::{
    both_backends,
    helpers::{self, Backend},
};

both_backends!(auto_migrate_false_refuses_an_out_of_date_schema, the_newest_migration_only_expands);

async fn auto_migrate_false_refuses_an_out_of_date_schema(backend: Backend) {
    let Some(database) = helpers::fresh_database(backend).await else { return };
    let url = database.url.clone();
    let mut guarded = helpers::test_config(&url);
    guarded.database.auto_migrate = false;
    let refused = Server::start(guarded.clone()).await.err().expect("an empty schema is refused");
    let message = refused.to_string();
    assert!(message.contains("session-backend migrate up") && message.contains("pending"), "{message}");
    // Migrated once (by a normal start), the guarded start is accepted.
    let app = helpers::start(helpers::test_config(&url), None).await;
    app.stop().await.expect("stop");
    let app = helpers::start(guarded, Some(database)).await;
    app.session("s1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_postgres_migrate_once() {
    let Some(database) = helpers::fresh_postgres_schema().await else { return };
    let url = database.url.clone();
    let starts = join_all((0..4).map(|_| Server::start(helpers::test_config(&url)))).await;
    let servers: Vec<Server> = starts.into_iter().map(|s| s.expect("every replica starts")).collect();
    assert_eq!(servers.len(), 4);
    drop(servers);
    let app = helpers::start(helpers::test_config(&url), Some(database)).await;
    app.session("s1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_one_clear_line() {
    let config = helpers::test_config("postgres://user:secret@127.0.0.1:1/nothing");
    let message = Server::start(config).await.err().expect("start must fail").to_string();
    assert!(message.contains("database.url"), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

/// The rule of README's "Upgrade and roll back", checked for the newest
/// migration: it removes and changes nothing the previous release uses,
/// and what it adds is nullable or has a default, so the previous
/// release's statements (which name their columns) still run beside it.
async fn the_newest_migration_only_expands(backend: Backend) {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Statement};
    let Some(database) = helpers::fresh_database(backend).await else { return };
    let db = helpers::direct(&database.direct_url()).await;
    let previous = Migrator::migrations().len() as u32 - 1;
    Migrator::up(&db, Some(previous)).await.expect("the previous release's schema");
    let before = columns(&db).await;
    // A session as the previous release writes and reads it.
    let write = |id: &str| {
        format!(
            "INSERT INTO sessions (tenant_id, session_id, session_type, metadata, version, created_at, \
             updated_at, ttl_seconds, expires_at) VALUES ('default', '{id}', 'AGENT', '{{}}', 1, \
             CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, NULL, NULL)"
        )
    };
    let sql = |text: String| Statement::from_string(db.get_database_backend(), text);
    db.execute_raw(sql(write("before"))).await.expect("a session the previous release writes");
    Migrator::up(&db, None).await.expect("the newest migration");
    let after = columns(&db).await;
    for column in &before {
        assert!(after.contains(column), "the newest migration changed or removed {column:?}");
    }
    for (table, name, _, required) in after.iter().filter(|c| !before.contains(c)) {
        assert!(!required, "{table}.{name} is added as a required column without a default");
    }
    db.execute_raw(sql(write("after"))).await.expect("the previous release's insert on the new schema");
    let read = "SELECT tenant_id, session_id, session_type, metadata, version, created_at, updated_at, \
                ttl_seconds, expires_at FROM sessions ORDER BY session_id";
    assert_eq!(db.query_all_raw(sql(read.into())).await.expect("the previous release's read").len(), 2);
    db.close().await.ok();
    // The new release serves both, and leases them.
    let app = helpers::start(helpers::test_config(&database.url), Some(database)).await;
    for id in ["before", "after"] {
        app.get(&format!("/api/v1/sessions/{id}")).await.expect(200);
        let lease = serde_json::json!({"holder": "w", "ttl_seconds": 5});
        app.put(&format!("/api/v1/sessions/{id}/lease"), &lease).await.expect(200);
    }
}

/// Every column of the schema's tables: table, name, type, and whether a
/// row must give it (NOT NULL without a default).
async fn columns(db: &sea_orm::DatabaseConnection) -> Vec<(String, String, String, bool)> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text, column_name::text, data_type::text, \
             (is_nullable = 'NO' AND column_default IS NULL) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> 'seaql_migrations'"
        }
        _ => {
            "SELECT m.name, c.name, c.type, (c.\"notnull\" = 1 AND c.dflt_value IS NULL AND c.pk = 0) \
             FROM sqlite_master m, pragma_table_info(m.name) c \
             WHERE m.type = 'table' AND m.name <> 'seaql_migrations' AND m.name NOT LIKE 'blob_word%'"
        }
    };
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.expect("the schema's columns");
    let mut columns: Vec<_> = rows
        .iter()
        .map(|row| {
            let text = |i| row.try_get_by_index::<String>(i).expect("text");
            (text(0), text(1), text(2), row.try_get_by_index::<bool>(3).expect("bool"))
        })
        .collect();
    columns.sort();
    columns
}
