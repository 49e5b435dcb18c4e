//! Transactions on both backends: one dropped without a commit writes
//! nothing and leaves the connection (PostgreSQL) or the turn to write
//! (SQLite) to the next one.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};

use super::Scratch;
use crate::{config::Backend, db::Db};

async fn dropped_transaction_writes_nothing(backend: Backend) {
    // One connection on PostgreSQL: the next statement gets the same one.
    let Some(scratch) = Scratch::new(backend, |c| c.database.max_connections = 2).await else { return };
    let conn = scratch.db.conn();
    let sql = |sql: &str| Statement::from_string(conn.backend(), sql.to_owned());
    conn.writes().execute_raw(sql("CREATE TABLE t (id BIGINT PRIMARY KEY)")).await.expect("table");
    {
        let txn = conn.begin().await.expect("begin");
        txn.execute_raw(sql("INSERT INTO t (id) VALUES (1)")).await.expect("insert");
        // Dropped: an error before the commit, or a request cut off.
    }
    // The next transaction gets its turn promptly and sees nothing.
    let txn =
        tokio::time::timeout(Duration::from_secs(2), conn.begin()).await.expect("prompt").expect("begin");
    txn.execute_raw(sql("INSERT INTO t (id) VALUES (2)")).await.expect("insert");
    txn.commit().await.expect("commit");
    let rows = conn.reads().query_all_raw(sql("SELECT id FROM t")).await.expect("read");
    let ids: Vec<i64> = rows.iter().map(|r| r.try_get_by_index(0).expect("id")).collect();
    assert_eq!(ids, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_dropped_transaction_writes_nothing() {
    dropped_transaction_writes_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_dropped_transaction_writes_nothing() {
    dropped_transaction_writes_nothing(Backend::Postgres).await;
}
