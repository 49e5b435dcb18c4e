//! SQLite writes from every request go through one task that commits
//! together whatever is waiting (group commit).
//!
//! SQLite lets one connection write at a time. Left to the pool, each write
//! is a transaction of its own: its connection waits for the lock, writes
//! its pages to the WAL, commits and hands the lock on. Here one connection
//! takes the statements that arrived while the previous commit ran, runs
//! them in one transaction and answers each once that transaction has
//! committed, so nothing is acknowledged that is not in the database. A
//! statement the database refuses (a constraint: a taken key, a missing
//! parent) fails alone, as it would in autocommit; any other failure rolls
//! the whole group back and answers every statement in it with the error.

use std::{sync::Arc, time::Duration};

use sea_orm::{
    ConnAcquireErr, DbErr, ExecResult, QueryResult, RuntimeErr, Statement, Values,
    sqlx::{
        self, AssertSqlSafe, Executor, SqlitePool,
        sqlite::{SqliteConnection, SqliteQueryResult, SqliteRow},
    },
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

use super::Failure;

/// Statements committed together at most.
const MAX_GROUP: usize = 256;

/// A handle on the writer task.
#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    wait: Duration,
    /// Whose turn it is to write: the task's, for each group, or a
    /// transaction's, for its whole length. Taken in order of arrival, so
    /// neither starves the other (SQLite's own busy handler polls, and a
    /// transaction polling for the lock lost it to the task every time).
    turn: Arc<Mutex<()>>,
}

/// What a caller wants back from its statement.
#[derive(Clone, Copy, Debug)]
enum Want {
    Execute,
    One,
    All,
}

#[derive(Debug)]
enum Output {
    Execute(SqliteQueryResult),
    Rows(Vec<SqliteRow>),
}

#[derive(Debug)]
struct Job {
    statement: Statement,
    want: Want,
    reply: oneshot::Sender<Result<Output, DbErr>>,
}

impl Writer {
    /// Starts the task, writing on a connection of `pool`; a statement
    /// waits at most `wait` to be taken in (then 503, as a pool wait).
    pub fn start(pool: SqlitePool, wait: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MAX_GROUP);
        let turn = Arc::new(Mutex::new(()));
        tokio::spawn(run(pool, queue, turn.clone()));
        Self { jobs, wait, turn }
    }

    /// The turn to write, for a transaction to hold until it ends; waits at
    /// most as long as a statement would.
    pub async fn turn(&self) -> Result<OwnedMutexGuard<()>, DbErr> {
        tokio::time::timeout(self.wait, self.turn.clone().lock_owned())
            .await
            .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
    }

    pub async fn execute(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        match self.submit(statement, Want::Execute).await? {
            Output::Execute(done) => Ok(done.into()),
            Output::Rows(_) => Ok(SqliteQueryResult::default().into()),
        }
    }

    pub async fn query_one(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.rows(statement, Want::One).await?.into_iter().next())
    }

    pub async fn query_all(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.rows(statement, Want::All).await
    }

    async fn rows(&self, statement: Statement, want: Want) -> Result<Vec<QueryResult>, DbErr> {
        match self.submit(statement, want).await? {
            Output::Rows(rows) => Ok(rows.into_iter().map(Into::into).collect()),
            Output::Execute(_) => Ok(Vec::new()),
        }
    }

    async fn submit(&self, statement: Statement, want: Want) -> Result<Output, DbErr> {
        let (reply, answer) = oneshot::channel();
        let job = Job { statement, want, reply };
        match tokio::time::timeout(self.wait, self.jobs.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)),
            Err(_) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
        }
        answer.await.unwrap_or(Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)))
    }
}

/// The task: takes what is waiting, commits it, answers; ends when every
/// handle is gone. It holds a connection of the pool only while there are
/// writes to make, so the pool can close.
async fn run(pool: SqlitePool, mut queue: mpsc::Receiver<Job>, turn: Arc<Mutex<()>>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let cause = e.to_string();
                for job in group.drain(..) {
                    drop(job.reply.send(Err(unavailable(&cause))));
                }
                continue;
            }
        };
        loop {
            let committed = {
                let _turn = turn.lock().await;
                commit(&mut conn, std::mem::take(&mut group)).await
            };
            if !committed {
                // Unsure what state it is in: the pool opens a fresh one.
                conn.close_on_drop();
                break;
            }
            // More arrived while that group committed: keep the connection.
            if queue.is_empty() || queue.recv_many(&mut group, MAX_GROUP).await == 0 {
                break;
            }
        }
    }
}

/// Runs `jobs` (one alone in autocommit, more in one transaction) and
/// answers them; whether the connection is still fit for use.
async fn commit(conn: &mut SqliteConnection, jobs: Vec<Job>) -> bool {
    if jobs.len() == 1 {
        let Some(job) = jobs.into_iter().next() else { return true };
        let result = run_one(conn, &job).await;
        drop(job.reply.send(result.map_err(statement_error)));
        return true;
    }
    if let Err(e) = conn.execute(sqlx::raw_sql("BEGIN IMMEDIATE")).await {
        // Busy past the busy timeout: a transaction elsewhere holds the lock.
        let cause = e.to_string();
        for job in jobs {
            drop(job.reply.send(Err(unavailable(&cause))));
        }
        return Failure::of_driver(&e) == Failure::Busy;
    }
    let mut results = Vec::with_capacity(jobs.len());
    let mut failed = None;
    for job in &jobs {
        match run_one(conn, job).await {
            Err(e) if Failure::of_driver(&e) != Failure::Constraint => {
                failed = Some((results.len(), e.to_string()));
                results.push(Err(statement_error(e)));
                break;
            }
            result => results.push(result.map_err(statement_error)),
        }
    }
    let failed_at = failed.as_ref().map(|(at, _)| *at);
    let failed = failed.map(|(_, cause)| cause);
    let committed = match failed {
        Some(cause) => Err(cause),
        None => conn.execute(sqlx::raw_sql("COMMIT")).await.map(drop).map_err(|e| e.to_string()),
    };
    match committed {
        Ok(()) => {
            for (job, result) in jobs.into_iter().zip(results) {
                drop(job.reply.send(result));
            }
            true
        }
        Err(cause) => {
            let rolled_back = conn.execute(sqlx::raw_sql("ROLLBACK")).await.is_ok();
            // The statement that failed keeps its own error; the others
            // were not written (even a refusal may have been caused by a
            // write rolled back with them): retry.
            let mut own = failed_at.and_then(|at| results.into_iter().nth(at)).and_then(Result::err);
            for (at, job) in jobs.into_iter().enumerate() {
                let error = if Some(at) == failed_at { own.take() } else { None };
                drop(job.reply.send(Err(error.unwrap_or_else(|| unavailable(&cause)))));
            }
            rolled_back
        }
    }
}

async fn run_one(conn: &mut SqliteConnection, job: &Job) -> Result<Output, sqlx::Error> {
    let Statement { sql, values, .. } = &job.statement;
    let values = values.clone().unwrap_or(Values(Vec::new()));
    let query = sqlx::query_with(AssertSqlSafe(sql.as_str()), SqlxValues(values));
    match job.want {
        Want::Execute => query.execute(conn).await.map(Output::Execute),
        // Read to the end even for one row: a `… RETURNING` in autocommit
        // commits when its statement finishes, and only then may it be
        // answered.
        Want::One | Want::All => query.fetch_all(conn).await.map(Output::Rows),
    }
}

fn statement_error(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(e.into()))
}

/// The group was not written: a retry may succeed (answered 503).
fn unavailable(cause: &str) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!("the group of writes was not committed: {cause}")))
}
