//! Database outages: prompt 503s, probes that answer within their bound
//! and never show the driver's words, recovery without a restart, and
//! locks or slow statements that end in a 503 that wrote nothing.
//!
//! PostgreSQL is reached through a small TCP proxy that the test can cut
//! and restore, so the shared database keeps serving other tests. SQLite
//! has no network to cut; its outage is another process holding the write
//! lock.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::sqlx::{Connection, Executor, SqliteConnection};
use serde_json::json;
use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

use crate::helpers::{self, Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_recovers() {
    let Some(direct) = helpers::fresh_postgres_schema().await else { return };
    let upstream = reqwest::Url::parse(&direct.url).expect("database url");
    let target = format!("{}:{}", upstream.host_str().expect("host"), upstream.port().unwrap_or(5432));
    let proxy = Proxy::start(target).await;
    let mut proxied = upstream.clone();
    proxied.set_host(Some("127.0.0.1")).expect("host");
    proxied.set_port(Some(proxy.addr.port())).expect("port");
    let app = helpers::start(direct.config_via(proxied.as_str()), Some(direct)).await;
    app.session("before").await;

    proxy.cut();
    let started = Instant::now();
    let db = app.get("/health/db").await;
    assert!(started.elapsed() < Duration::from_millis(2_500), "took {:?}", started.elapsed());
    let body = db.expect(503);
    assert_eq!(body["detail"]["status"], "unhealthy");
    assert_eq!(body["detail"]["checks"]["database"]["status"], "unhealthy");
    // A fixed sentence: no host, port, user or driver text.
    let message = body["detail"]["checks"]["database"]["message"].as_str().expect("message").to_owned();
    let port = proxy.addr.port().to_string();
    for leak in
        ["127.0.0.1", port.as_str(), "session_backend", "postgres", "refused", "reset", "error", "pool"]
    {
        assert!(!message.to_lowercase().contains(leak), "{message} shows {leak}");
    }
    let started = Instant::now();
    let ready = app.get("/health/ready").await.expect(503);
    assert!(started.elapsed() < Duration::from_millis(2_500));
    assert_eq!(ready["detail"]["status"], "not ready");
    assert_eq!(ready["detail"]["checks"]["database"]["status"], "not ready");
    app.get("/health").await.expect(200);
    for _ in 0..3 {
        let started = Instant::now();
        app.post("/api/v1/sessions", &json!({"session_id": "during"}))
            .await
            .expect_error(503, "ServiceUnavailableError");
        app.get("/api/v1/sessions/before").await.expect_error(503, "ServiceUnavailableError");
        assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    }

    proxy.restore();
    wait_until_ready(&app).await;
    for i in 0..5 {
        app.session(&format!("after-{i}")).await;
    }
    app.get("/api/v1/sessions/before").await.expect(200);
    app.get("/api/v1/sessions/during").await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_answers_503_and_recovers() {
    let app = helpers::spawn_app(Backend::Sqlite).await.expect("sqlite app");
    app.session("before").await;
    let mut holder = SqliteConnection::connect(&app.database_url).await.expect("second connection");
    holder.execute("BEGIN EXCLUSIVE").await.expect("take the write lock");
    let started = Instant::now();
    app.post("/api/v1/sessions", &json!({"session_id": "during"}))
        .await
        .expect_error(503, "ServiceUnavailableError");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    holder.execute("ROLLBACK").await.expect("release the lock");
    app.session("after").await;
    app.get("/api/v1/sessions/during").await.expect(404);
    app.get("/health/ready").await.expect(200);
}

async fn wait_until_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = app.get("/health/ready").await.status;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "not ready again after the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A TCP forwarder whose link can be cut (all connections dropped, new
/// ones refused) and restored.
struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let down = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let (down, links) = (down.clone(), links.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the link close
                    }
                    let target = target.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().expect("links").push(link.abort_handle());
                }
            })
            .abort_handle()
        };
        Self { addr, down, links, accept }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A locked table or a statement that hangs: the database gives up first
/// (`lock_timeout`, `statement_timeout`), the request is a prompt 503 that
/// wrote nothing, its connection goes back to the pool, and requests that
/// do not need the locked table keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_locks_and_slow_statements_are_prompt_503s_that_write_nothing() {
    for (lock_ms, statement_ms) in [(300, 2000), (3000, 300)] {
        let Some(database) = helpers::fresh_postgres_schema().await else { return };
        let mut config = helpers::test_config(&database.url);
        config.database.lock_timeout_ms = lock_ms;
        config.database.statement_timeout_ms = statement_ms;
        config.server.request_timeout_ms = 8000;
        let url = database.direct_url();
        let app = helpers::start(config, Some(database)).await;
        app.agent("s1", "a1").await;
        let path = TestApp::messages_path("s1", "a1");
        let mut holder = lock_messages(&url).await;
        // More writers than the pool has connections.
        let writes = timed_appends(&app, &path, 8);
        let reads = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            app.get("/api/v1/sessions/s1").await.expect(200);
            app.get("/api/v1/sessions/s1/agents/a1").await.expect(200);
            started.elapsed()
        };
        let (writes, read_took) = tokio::join!(writes, reads);
        assert!(read_took < Duration::from_secs(3), "reads of other tables waited {read_took:?}");
        let slowest = lock_ms.min(statement_ms);
        for (reply, took) in writes {
            reply.expect_error(503, "ServiceUnavailableError");
            assert!(took < Duration::from_millis(slowest + 3000), "a locked write took {took:?}");
        }
        holder.execute("ROLLBACK").await.expect("unlock");
        // Nothing was written; the pool is whole again.
        assert_eq!(app.get(&format!("{path}?offset=0")).await.expect(200)["total"], 0);
        for i in 0..6 {
            let body = json!({"message_id": i, "message": {"role": "user", "content": []}});
            app.post(&path, &body).await.expect(201);
        }
    }
}

/// More requests than connections while every connection waits on a lock:
/// the ones left without a connection are answered 503 once
/// `database.acquire_timeout_ms` has passed, and counted as pool timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_exhaustion_is_a_prompt_counted_503() {
    let Some((app, url, pool)) = app_with_a_short_pool_wait().await else { return };
    app.session("locked").await;
    app.agent("s1", "a1").await;
    // Deletes of a locked session: each holds a connection while it waits
    // (appends would share connections in groups).
    let mut holder = sea_orm::sqlx::PgConnection::connect(&url).await.expect("second connection");
    holder.execute("BEGIN").await.expect("begin");
    holder.execute("SELECT 1 FROM sessions WHERE session_id = 'locked' FOR UPDATE").await.expect("lock");
    let requests = pool + 3;
    let deletes = futures::future::join_all((0..requests).map(|_| async {
        let started = Instant::now();
        let reply = app.delete("/api/v1/sessions/locked").await;
        (reply, started.elapsed())
    }))
    .await;
    holder.execute("ROLLBACK").await.expect("unlock");
    let mut without_connection = 0;
    for (reply, took) in deletes {
        reply.expect_error(503, "ServiceUnavailableError");
        assert!(took < Duration::from_secs(6), "a request took {took:?}");
        if took < Duration::from_millis(2000) {
            without_connection += 1;
        }
    }
    assert!(without_connection >= requests - pool, "{without_connection} answered before the lock timeout");
    let counted = app.get("/health/metrics").await.expect(200);
    let timeouts = counted["pool_acquire_timeouts_total"].as_u64().unwrap_or(0);
    assert!(timeouts >= (requests - pool) as u64, "pool waits that ran out: {counted}");
    // The pool is whole again.
    let path = TestApp::messages_path("s1", "a1");
    for i in 0..pool + 1 {
        let body = json!({"message_id": i, "message": {"role": "user", "content": []}});
        app.post(&path, &body).await.expect(201);
    }
    app.get("/api/v1/sessions/locked").await.expect(200);
}

/// An agent that another transaction holds locked (a delete under way)
/// holds up only the appends to it: appends to other agents that arrive
/// with them, and so share their groups, are written at once rather than
/// waiting on that lock past `database.acquire_timeout_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_locked_agent_holds_up_only_its_own_appends() {
    let Some(database) = helpers::fresh_postgres_schema().await else { return };
    let mut config = helpers::test_config(&database.url);
    config.database.lock_timeout_ms = 3000;
    config.database.statement_timeout_ms = 4000;
    config.database.acquire_timeout_ms = 500;
    config.server.request_timeout_ms = 9000;
    let url = database.direct_url();
    let app = helpers::start(config, Some(database)).await;
    let free: Vec<String> = (0..24).map(|i| format!("free-{i}")).collect();
    app.agent("s1", "locked").await;
    for agent in &free {
        app.agent_in("s1", agent).await;
    }
    let mut holder = sea_orm::sqlx::PgConnection::connect(&url).await.expect("second connection");
    holder.execute("BEGIN").await.expect("begin");
    holder
        .execute("SELECT 1 FROM agents WHERE agent_id = 'locked' FOR UPDATE")
        .await
        .expect("lock the agent");
    // Fewer locked appends than the pool has connections, spread among the rest.
    let mut paths: Vec<String> = free.iter().map(|a| TestApp::messages_path("s1", a)).collect();
    for at in [0, 9, 18] {
        paths.insert(at, TestApp::messages_path("s1", "locked"));
    }
    let body = json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]}});
    let replies = futures::future::join_all(paths.iter().map(|path| app.post(path, &body))).await;
    holder.execute("ROLLBACK").await.expect("unlock");
    for (path, reply) in paths.iter().zip(replies) {
        if path.ends_with("/locked/messages") {
            reply.expect_error(503, "ServiceUnavailableError");
        } else {
            reply.expect(201);
        }
    }
    let locked = TestApp::messages_path("s1", "locked");
    assert_eq!(app.get(&format!("{locked}?offset=0")).await.expect(200)["total"], 0, "a 503 wrote nothing");
    for agent in &free {
        let listed = app.get(&format!("{}?offset=0", TestApp::messages_path("s1", agent))).await.expect(200);
        assert_eq!(listed["total"], 1, "{agent}: {listed}");
    }
}

/// Appends written together wait for a connection as a group: when none
/// becomes free in time, every append of the group is answered 503 and
/// counted as a pool timeout, once each, like a request on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_grouped_appends_count_their_pool_timeouts() {
    let Some((app, url, pool)) = app_with_a_short_pool_wait().await else { return };
    app.session("locked").await;
    app.agent("free", "a").await;
    // Every connection waits on a lock of session `locked`.
    let mut holder = sea_orm::sqlx::PgConnection::connect(&url).await.expect("second connection");
    holder.execute("BEGIN").await.expect("begin");
    holder.execute("SELECT 1 FROM sessions WHERE session_id = 'locked' FOR UPDATE").await.expect("lock");
    let blockers = futures::future::join_all((0..pool).map(|_| app.delete("/api/v1/sessions/locked")));
    let counted = || async {
        let report = app.get("/health/metrics").await.expect(200);
        report["pool_acquire_timeouts_total"].as_u64().expect("counted")
    };
    let before = counted().await;
    let appends = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        timed_appends(&app, &TestApp::messages_path("free", "a"), 6).await
    };
    let (blocked, appends) = tokio::join!(blockers, appends);
    holder.execute("ROLLBACK").await.expect("unlock");
    for reply in blocked {
        reply.expect_error(503, "ServiceUnavailableError");
    }
    let sent = appends.len() as u64;
    for (reply, took) in appends {
        reply.expect_error(503, "ServiceUnavailableError");
        assert!(took < Duration::from_millis(2500), "an append waited {took:?}");
    }
    assert_eq!(counted().await - before, sent, "each append's pool timeout counted once");
}

/// A server whose requests wait 400 ms for a connection and 3 s for a lock
/// or a statement; its database URL and pool size.
async fn app_with_a_short_pool_wait() -> Option<(TestApp, String, usize)> {
    let database = helpers::fresh_postgres_schema().await?;
    let mut config = helpers::test_config(&database.url);
    let pool = config.database.max_connections as usize;
    config.database.lock_timeout_ms = 3000;
    config.database.statement_timeout_ms = 3000;
    config.database.acquire_timeout_ms = 400;
    config.server.request_timeout_ms = 8000;
    let url = database.direct_url();
    Some((helpers::start(config, Some(database)).await, url, pool))
}

/// A second connection holding `messages` locked until it rolls back.
async fn lock_messages(url: &str) -> sea_orm::sqlx::PgConnection {
    let mut holder = sea_orm::sqlx::PgConnection::connect(url).await.expect("second connection");
    holder.execute("BEGIN").await.expect("begin");
    holder.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    holder
}

/// `n` appends to `path` sent at once, each answer with how long it took.
async fn timed_appends(app: &TestApp, path: &str, n: usize) -> Vec<(helpers::Reply, Duration)> {
    futures::future::join_all((0..n).map(|i| {
        let body = json!({"message_id": i, "message": {"role": "user", "content": []}});
        async move {
            let started = Instant::now();
            let reply = app.post(path, &body).await;
            (reply, started.elapsed())
        }
    }))
    .await
}
