//! The PostgreSQL connections requests run on: a pool that takes a
//! connection back without a round trip.
//!
//! sqlx's own pool pings every connection it takes back (a `Sync` and its
//! `ReadyForQuery`), so each statement costs the database two round trips
//! and the server a task; measured, that ping was a quarter of an append's
//! cost. This pool hands connections out the same way (at most `max`, a
//! wait bounded by the acquire timeout, the newest idle one first) and
//! takes one back as it is when its last statement ran to the end. A
//! connection dropped in the middle of a statement (a cancelled request)
//! or after a connection-level error is closed instead; one left inside a
//! transaction is rolled back first; one idle for a second is pinged before
//! it is used, so a restarted database costs no request an error.
//!
//! Why not a library: deadpool's managed pool (whose `recycle` could ping
//! only after idling) would need a manager for sqlx connections written
//! here anyway, and this module is little more than that manager; sqlx's
//! own pool pings every connection it takes back. This module can go when
//! sqlx's pool can take a connection back without a round trip (the
//! release ping: <https://github.com/transact-rs/sqlx/issues/4349>,
//! <https://github.com/transact-rs/sqlx/pull/4363>).
//!
//! Behind a transaction-mode pooler ([`Sharing::Pooled`]) a connection is
//! the pooler's, shared with other clients between transactions: nothing
//! set on it survives a transaction, and sqlx's prepared statements, named
//! or not, cost it a round trip of their own after which the server may be
//! another (sqlx has no single-round-trip unnamed statement:
//! <https://github.com/transact-rs/sqlx/issues/67>). There each statement
//! goes as text with its values inlined ([`super::inline`]), its limits
//! set by `SET LOCAL` in the same round trip; BENCHMARKS.md ("Behind a
//! pooler") has the measurements that chose this.

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{
    ConnAcquireErr, DbErr, RuntimeErr,
    sqlx::{
        self, AssertSqlSafe, ConnectOptions, Connection, Executor,
        postgres::{PgConnectOptions, PgConnection},
    },
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Failure;

/// An idle connection is pinged before use once it has idled this long.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// Idle connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Connections are replaced after this long, as sqlx's pool does.
const MAX_LIFETIME: Duration = Duration::from_secs(1800);

/// A pool of PostgreSQL connections.
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// Whether the connections are this pool's own or a pooler's.
#[derive(Clone, Debug)]
pub enum Sharing {
    /// Direct connections: settings made once when each opens (in
    /// `PgConnectOptions`), statements prepared once and cached.
    Private,
    /// Connections through a transaction-mode pooler.
    Pooled {
        /// `SET LOCAL`s for the limits a statement runs under, sent before
        /// each statement outside a transaction and at each `BEGIN`.
        settings: String,
    },
}

#[derive(Debug)]
struct Shared {
    options: PgConnectOptions,
    sharing: Sharing,
    max: u32,
    acquire_timeout: Duration,
    /// Longest a statement may take on our side: past it the database is
    /// not answering (a silent host, a failover), and the connection is
    /// given up rather than held until TCP notices.
    statement_limit: Duration,
    /// One permit per connection that may be in use.
    permits: Arc<Semaphore>,
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
    /// Connections open, idle or in use.
    size: AtomicU32,
    closed: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    conn: PgConnection,
    opened: Instant,
    since: Instant,
}

/// What a leased connection is doing, for deciding its fate on return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between statements: fit for the next user.
    Ready,
    /// A statement was sent and its answer not read to the end.
    Busy,
    /// The connection failed or was found unfit.
    Broken,
}

/// A connection taken from the pool; it goes back when dropped.
#[derive(Debug)]
pub struct Lease {
    conn: Option<PgConnection>,
    opened: Instant,
    state: State,
    /// Inside a transaction this lease began.
    in_transaction: bool,
    pool: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
}

/// Pool figures.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl Pool {
    /// A pool of at most `max` connections made with `options`; one is
    /// opened at once, so an unreachable database fails here.
    pub async fn connect(
        options: PgConnectOptions,
        sharing: Sharing,
        max: u32,
        acquire_timeout: Duration,
        statement_limit: Duration,
    ) -> Result<Self, DbErr> {
        let max = max.max(1);
        let pool = Self {
            shared: Arc::new(Shared {
                options: options.disable_statement_logging(),
                sharing,
                max,
                acquire_timeout,
                statement_limit,
                permits: Arc::new(Semaphore::new(max as usize)),
                idle: Mutex::new(Vec::with_capacity(max as usize)),
                size: AtomicU32::new(0),
                closed: AtomicBool::new(false),
            }),
        };
        drop(pool.acquire().await?);
        Ok(pool)
    }

    /// A connection, waiting at most the acquire timeout for one.
    pub async fn acquire(&self) -> Result<Lease, DbErr> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::now() + shared.acquire_timeout;
        let permit = match tokio::time::timeout_at(deadline, shared.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)),
            Err(_) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
        };
        if shared.closed.load(Ordering::Acquire) {
            return Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed));
        }
        let mut permit = permit;
        while let Some(idle) = shared.take_idle() {
            let fresh = idle.since.elapsed() < PING_AFTER_IDLE;
            let mut lease = shared.lease(idle.conn, idle.opened, permit);
            if fresh {
                return Ok(lease);
            }
            match tokio::time::timeout_at(deadline, lease.run(async |conn| conn.ping().await)).await {
                Ok(Ok(())) => return Ok(lease),
                // Gone while it idled: close it and try the next one.
                Ok(Err(_)) => {
                    lease.state = State::Broken;
                    permit = lease.permit.take().ok_or(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))?;
                }
                Err(_) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
            }
        }
        self.open(deadline, permit).await
    }

    /// Opens a new connection for the holder of `permit`.
    async fn open(
        &self,
        deadline: tokio::time::Instant,
        permit: OwnedSemaphorePermit,
    ) -> Result<Lease, DbErr> {
        let shared = &self.shared;
        match tokio::time::timeout_at(deadline, shared.options.connect()).await {
            Ok(Ok(conn)) => {
                shared.size.fetch_add(1, Ordering::AcqRel);
                Ok(shared.lease(conn, Instant::now(), permit))
            }
            Ok(Err(e)) => Err(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e)))),
            Err(_) => Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
        }
    }

    /// Current figures.
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        let idle = u32::try_from(shared.idle().len()).unwrap_or(u32::MAX);
        Stats { size: shared.size.load(Ordering::Acquire), idle, max: shared.max }
    }

    /// Closes the idle connections and, as they come back, the others.
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.closed.store(true, Ordering::Release);
        shared.permits.close();
        let idle: Vec<Idle> = shared.idle().drain(..).collect();
        for idle in idle {
            shared.size.fetch_sub(1, Ordering::AcqRel);
            drop(idle.conn.close().await);
        }
    }
}

impl Shared {
    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used idle connection, closing any past their time.
    fn take_idle(&self) -> Option<Idle> {
        loop {
            let idle = self.idle().pop()?;
            if idle.opened.elapsed() < MAX_LIFETIME {
                return Some(idle);
            }
            self.retire(idle.conn);
        }
    }

    fn lease(self: &Arc<Self>, conn: PgConnection, opened: Instant, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            conn: Some(conn),
            opened,
            state: State::Ready,
            in_transaction: false,
            pool: self.clone(),
            permit: Some(permit),
        }
    }

    /// Takes back a connection fit for use.
    fn put_back(&self, mut conn: PgConnection, opened: Instant) {
        if self.closed.load(Ordering::Acquire) || opened.elapsed() >= MAX_LIFETIME {
            return self.retire(conn);
        }
        // A connection that carried a document of many MiB would keep
        // buffers that size while it idles.
        conn.shrink_buffers();
        let stale = {
            let mut idle = self.idle();
            idle.push(Idle { conn, opened, since: Instant::now() });
            if self.closed.load(Ordering::Acquire) {
                // Closed meanwhile: `close` may have drained already.
                let all: Vec<_> = idle.drain(..).map(|i| i.conn).collect();
                drop(idle);
                for conn in all {
                    self.retire(conn);
                }
                return;
            }
            // The oldest idle ones are at the front.
            let expired = idle.iter().take_while(|i| i.since.elapsed() >= IDLE_TIMEOUT).count();
            idle.drain(..expired).map(|i| i.conn).collect::<Vec<_>>()
        };
        for conn in stale {
            self.retire(conn);
        }
    }

    /// Closes a healthy connection politely, in the background.
    fn retire(&self, conn: PgConnection) {
        self.size.fetch_sub(1, Ordering::AcqRel);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { drop(conn.close().await) });
        }
    }

    /// Forgets a connection that cannot be trusted (dropping it closes it).
    fn discard(&self, conn: PgConnection) {
        self.size.fetch_sub(1, Ordering::AcqRel);
        drop(conn);
    }
}

impl Lease {
    /// Runs one statement on the connection, keeping track of whether it
    /// ended cleanly.
    pub async fn run<T>(
        &mut self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let conn = self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        self.state = State::Busy;
        let result = tokio::time::timeout(self.pool.statement_limit, statement(conn))
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into())));
        self.state = match &result {
            Err(e) if Failure::of_driver(e).breaks_connection() => State::Broken,
            _ => State::Ready,
        };
        result
    }

    /// Behind a pooler, what to send before a statement's inlined text:
    /// its `SET LOCAL`s outside a transaction, nothing inside one (they
    /// were sent with `BEGIN`). `None` on a direct connection.
    pub fn pooled_prefix(&self) -> Option<&str> {
        match &self.pool.sharing {
            Sharing::Private => None,
            Sharing::Pooled { .. } if self.in_transaction => Some(""),
            Sharing::Pooled { settings } => Some(settings),
        }
    }

    /// Starts a transaction on this connection.
    pub async fn begin(&mut self) -> Result<(), sqlx::Error> {
        let begin = match &self.pool.sharing {
            Sharing::Private => "BEGIN".to_owned(),
            Sharing::Pooled { settings } => format!("BEGIN; {settings}"),
        };
        self.run(async |conn| conn.execute(AssertSqlSafe(begin)).await.map(drop)).await?;
        self.in_transaction = true;
        Ok(())
    }

    /// Commits the transaction begun on this connection.
    pub async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.run(async |conn| conn.execute("COMMIT").await.map(drop)).await?;
        self.in_transaction = false;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let pool = self.pool.clone();
        match self.state {
            State::Ready if !self.in_transaction => pool.put_back(conn, self.opened),
            State::Ready => {
                // Left inside a transaction (an error before the commit):
                // roll it back before anyone else gets the connection,
                // keeping its permit until then.
                let permit = self.permit.take();
                let opened = self.opened;
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return pool.discard(conn);
                };
                runtime.spawn(async move {
                    let mut conn = conn;
                    let limit = pool.statement_limit;
                    match tokio::time::timeout(limit, conn.execute("ROLLBACK")).await {
                        Ok(Ok(_)) => pool.put_back(conn, opened),
                        _ => pool.discard(conn),
                    }
                    drop(permit);
                });
            }
            State::Busy | State::Broken => pool.discard(conn),
        }
    }
}
