//! The PostgreSQL request pool: what happens to a connection after a
//! statement cut off, a transaction abandoned, a wait that runs out, and a
//! database that closed it while it idled.

use std::time::{Duration, Instant};

use sea_orm::{
    DbErr,
    sqlx::{Executor, Row, postgres::PgConnectOptions},
};

use super::postgres_url;
use crate::db::{
    Failure,
    pool::{Pool, Sharing},
};

const ACQUIRE: Duration = Duration::from_millis(300);

async fn pool(max: u32) -> Option<Pool> {
    let options = postgres_url()?.parse::<PgConnectOptions>().expect("TEST_DATABASE_URL");
    Some(Pool::connect(options, Sharing::Private, max, ACQUIRE, Duration::from_secs(10)).await.expect("pool"))
}

/// `sql`'s first column, as an integer, on a connection of `pool`.
async fn scalar(pool: &Pool, sql: &'static str) -> i64 {
    let mut lease = pool.acquire().await.expect("a connection");
    let row = lease.run(async |conn| conn.fetch_one(sql).await).await.expect(sql);
    row.try_get::<i64, _>(0).expect("an integer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cut_off_closes_its_connection_and_the_next_one_answers_its_own() {
    let Some(pool) = pool(1).await else { return };
    let opened = pool.stats().size;
    let slow = async {
        let mut lease = pool.acquire().await.expect("a connection");
        lease.run(async |conn| conn.execute("SELECT pg_sleep(5)").await.map(drop)).await
    };
    // A request dropped (its deadline, its client gone) mid-statement.
    assert!(tokio::time::timeout(Duration::from_millis(200), slow).await.is_err());
    assert_eq!(pool.stats().size, opened - 1, "the cut-off connection is closed, not kept");
    let started = Instant::now();
    // On a reused connection this would read the sleep's answer first.
    assert_eq!(scalar(&pool, "SELECT 42::bigint").await, 42);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(pool.stats().size, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_is_rolled_back_before_the_connection_is_reused() {
    let Some(pool) = pool(1).await else { return };
    {
        let mut lease = pool.acquire().await.expect("a connection");
        lease
            .run(async |conn| conn.execute("CREATE TEMP TABLE t (x int)").await.map(drop))
            .await
            .expect("table");
        lease.begin().await.expect("begin");
        lease
            .run(async |conn| conn.execute("INSERT INTO t VALUES (1)").await.map(drop))
            .await
            .expect("insert");
        // Dropped: an error between the write and the commit.
    }
    // The same connection (one in the pool), once it is rolled back.
    assert_eq!(scalar(&pool, "SELECT count(*) FROM t").await, 0);
    assert_eq!(scalar(&pool, "SELECT (txid_current_if_assigned() IS NULL)::int::bigint").await, 1);
    assert_eq!(pool.stats().size, 1, "kept, not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_past_the_acquire_timeout_is_a_pool_timeout() {
    let Some(pool) = pool(1).await else { return };
    let held = pool.acquire().await.expect("a connection");
    let started = Instant::now();
    let err: DbErr = pool.acquire().await.expect_err("no connection free");
    let waited = started.elapsed();
    assert!(waited >= ACQUIRE && waited < ACQUIRE * 3, "waited {waited:?}");
    // Answered 503 (the error layer's tests).
    assert_eq!(Failure::of(&err), Failure::PoolTimeout);
    drop(held);
    assert_eq!(scalar(&pool, "SELECT 1::bigint").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_database_closed_while_idle_costs_no_error() {
    let Some(url) = postgres_url() else { return };
    let Some(pool) = pool(1).await else { return };
    let pid = scalar(&pool, "SELECT pg_backend_pid()::bigint").await;
    super::run_sql(&url, &format!("SELECT pg_terminate_backend({pid})")).await;
    // Idle long enough to be pinged before use: the ping fails, a new
    // connection serves the statement.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_ne!(scalar(&pool, "SELECT pg_backend_pid()::bigint").await, pid);
}
