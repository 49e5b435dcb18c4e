//! Start-up: migrations, the `auto_migrate = false` guard, replicas
//! starting together, and a database that cannot be reached.

use futures::future::join_all;
use session_backend::Server;

use crate::{
    both_backends,
    helpers::{self, Backend},
};

both_backends!(auto_migrate_false_refuses_an_out_of_date_schema);

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
