//! The SQLite writer: a busy database is a prompt 503, a refused statement
//! fails alone within its group, and what is queued when the last handle
//! goes is still committed.

use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait, DbBackend, Statement,
    sqlx::{Connection, Executor, Row, sqlite::SqliteConnection},
};

use super::Scratch;
use crate::{
    config::Backend,
    db::{Db, Failure},
};

const WAIT_MS: u64 = 300;

async fn scratch() -> Scratch {
    let adjust = |config: &mut crate::config::Config| config.database.acquire_timeout_ms = WAIT_MS;
    let scratch = Scratch::new(Backend::Sqlite, adjust).await.expect("SQLite");
    let table = "CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT NOT NULL)";
    scratch.db.conn().writes().execute_unprepared(table).await.expect("table");
    scratch
}

fn insert(id: i64) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, "INSERT INTO t (id, note) VALUES (?, 'x')", [id.into()])
}

async fn count(scratch: &Scratch) -> i64 {
    let conn = scratch.db.conn();
    let row =
        conn.reads().query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM t")).await;
    row.expect("count").expect("a row").try_get_by_index::<i64>(0).expect("an integer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_elsewhere_is_a_prompt_busy_error_and_the_writer_recovers() {
    let scratch = scratch().await;
    let path = scratch.url.trim_start_matches("sqlite://").trim_end_matches("?mode=rwc").to_owned();
    let mut other = SqliteConnection::connect(&format!("sqlite://{path}")).await.expect("second connection");
    other.execute("BEGIN IMMEDIATE").await.expect("lock");
    let started = Instant::now();
    let err = scratch.db.conn().writes().execute_raw(insert(1)).await.expect_err("busy");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(WAIT_MS * 4), "took {took:?}");
    // Answered 503 (the error layer's tests).
    assert_eq!(Failure::of(&err), Failure::Busy, "{err}");
    other.execute("ROLLBACK").await.expect("unlock");
    scratch.db.conn().writes().execute_raw(insert(2)).await.expect("written once free");
    assert_eq!(count(&scratch).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_statement_fails_alone_in_its_group() {
    let scratch = scratch().await;
    scratch.db.conn().writes().execute_raw(insert(7)).await.expect("first");
    // Sent together, so the writer commits them as one group.
    let writes = (0..12).map(|id| {
        let conn = scratch.db.conn().clone();
        async move { conn.writes().execute_raw(insert(id)).await }
    });
    let results = futures::future::join_all(writes).await;
    for (id, result) in results.iter().enumerate() {
        match result {
            Err(e) if id == 7 => assert_eq!(Failure::of(e), Failure::Constraint, "{e}"),
            Ok(done) if id != 7 => assert_eq!(done.rows_affected(), 1),
            other => panic!("insert {id}: {other:?}"),
        }
    }
    assert_eq!(count(&scratch).await, 12);
}

/// Shutdown closes the pools while writes may still be queued: each is
/// answered (none hangs), and exactly the ones answered as written are
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_at_shutdown_are_answered_and_stored_exactly_when_acknowledged() {
    let scratch = scratch().await;
    let writers: Vec<_> = (0..200)
        .map(|id| {
            let conn = scratch.db.conn().clone();
            tokio::spawn(async move { conn.writes().execute_raw(insert(id)).await.is_ok() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(2)).await;
    scratch.db.clone().close().await;
    let mut acknowledged = 0;
    for writer in writers {
        let answered = tokio::time::timeout(Duration::from_secs(5), writer).await.expect("answered");
        acknowledged += i64::from(answered.expect("task"));
    }
    let path = scratch.url.trim_end_matches("?mode=rwc").to_owned();
    let mut reader = SqliteConnection::connect(&path).await.expect("a connection of its own");
    let stored: i64 = reader.fetch_one("SELECT count(*) FROM t").await.expect("count").get(0);
    assert_eq!(stored, acknowledged);
}
