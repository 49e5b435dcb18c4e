//! Faults with a real PostgreSQL of the test's own (initdb + pg_ctl from
//! the machine's PostgreSQL, on a loopback port): stopped hard under write
//! load and started again. Every request answers promptly (503 within 2 s
//! while it is down, nothing hangs), the server recovers by itself, and
//! every write it acknowledged — before, during and after — is there when
//! read back. Writers retry a 503 with the same message id, as the SDK's
//! client does, so a write that landed but whose answer was lost is
//! replayed, not duplicated.

use std::{
    path::PathBuf,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;

use crate::helpers::{self, TestApp, postgres_required};

/// A PostgreSQL cluster in a temporary directory, run by the `postgres`
/// user when the tests run as root (PostgreSQL refuses root).
struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()?;
        let dir = tempfile::tempdir().ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let own = Self { bin, dir, port };
        if is_root() {
            let chown =
                Command::new("chown").args(["-R", "postgres:postgres"]).arg(own.dir.path()).status().ok()?;
            assert!(chown.success(), "chown to postgres");
        }
        let data = own.data().display().to_string();
        own.run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"]).then_some(())?;
        own.pg_ctl_start().then_some(own)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a PostgreSQL program (as `postgres` when root); whether it succeeded.
    fn run(&self, program: &str, args: &[&str]) -> bool {
        let path = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&path);
            cmd
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).output().expect("a PostgreSQL program runs");
        if !out.status.success() {
            eprintln!("{program} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.success()
    }

    fn pg_ctl_start(&self) -> bool {
        let (data, log) =
            (self.data().display().to_string(), self.dir.path().join("log").display().to_string());
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &options, "-w", "start"])
    }

    /// Stops the server at once, as a crash would (no shutdown checkpoint).
    fn stop_hard(&self) {
        assert!(self.run("pg_ctl", &["-D", &self.data().display().to_string(), "-m", "immediate", "stop"]));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.run("pg_ctl", &["-D", &self.data().display().to_string(), "-m", "immediate", "stop"]);
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// What one writer saw.
#[derive(Default)]
struct Tally {
    /// Message ids acknowledged (201, or 200 for a replay), with when.
    acked: Vec<(i64, Instant)>,
    unavailable: usize,
    slowest_503: Duration,
    slowest: Duration,
    other: Vec<String>,
}

async fn write_until(app: Arc<TestApp>, agent: String, stop: Arc<AtomicBool>) -> Tally {
    let path = TestApp::messages_path("faults", &agent);
    let mut tally = Tally::default();
    let mut next = 0i64;
    while !stop.load(Ordering::SeqCst) {
        let body = json!({"message_id": next, "message": {"role": "user", "content": [{"text": format!("{agent} {next}")}]}});
        let started = Instant::now();
        let sent = app.client.post(app.url(&path)).json(&body).timeout(Duration::from_secs(10)).send().await;
        let took = started.elapsed();
        tally.slowest = tally.slowest.max(took);
        match sent.map(|r| r.status().as_u16()) {
            Ok(200 | 201) => {
                tally.acked.push((next, Instant::now()));
                next += 1;
            }
            Ok(503) => {
                tally.unavailable += 1;
                tally.slowest_503 = tally.slowest_503.max(took);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => tally.other.push(format!("{other:?} after {took:?}")),
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_write_load_loses_no_acknowledged_write() {
    let Some(postgres) = OwnPostgres::start() else {
        assert!(!postgres_required(), "REQUIRE_POSTGRES=1 but no PostgreSQL server programs to run one");
        eprintln!("skipping: no PostgreSQL server programs (initdb, pg_ctl)");
        return;
    };
    let app = Arc::new(helpers::start(helpers::test_config(&postgres.url()), None).await);
    app.session("faults").await;
    let writers = 8;
    for i in 0..writers {
        let body = json!({"agent_id": format!("w{i}"), "state": {}, "conversation_manager_state": {}});
        app.post("/api/v1/sessions/faults/agents", &body).await.expect(201);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> =
        (0..writers).map(|i| tokio::spawn(write_until(app.clone(), format!("w{i}"), stop.clone()))).collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = Instant::now();
    tokio::task::block_in_place(|| postgres.stop_hard());
    tokio::time::sleep(Duration::from_secs(3)).await;
    // During the outage the probes say so, within their bound.
    let probe = Instant::now();
    assert_eq!(app.get("/health/ready").await.status, 503);
    assert!(probe.elapsed() < Duration::from_millis(2500), "readiness took {:?}", probe.elapsed());
    let restarted = Instant::now();
    assert!(tokio::task::block_in_place(|| postgres.pg_ctl_start()), "PostgreSQL starts again");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);

    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.expect("writer"));
    }
    let (mut before, mut during, mut after, mut unavailable) = (0, 0, 0, 0);
    let (mut slowest_503, mut slowest) = (Duration::ZERO, Duration::ZERO);
    for (i, tally) in tallies.iter().enumerate() {
        assert!(tally.other.is_empty(), "writer {i}: answers other than 201/200/503: {:?}", tally.other);
        for (_, at) in &tally.acked {
            match (*at < stopped, *at < restarted) {
                (true, _) => before += 1,
                (false, true) => during += 1,
                (false, false) => after += 1,
            }
        }
        assert!(tally.acked.iter().any(|(_, at)| *at > restarted), "writer {i} never recovered");
        unavailable += tally.unavailable;
        slowest_503 = slowest_503.max(tally.slowest_503);
        slowest = slowest.max(tally.slowest);
    }
    assert!(unavailable > 0, "the outage was never noticed");
    let counted = app.get("/health/metrics").await.expect(200);
    // Refused connections are answered at once: nobody waited out the pool.
    assert!(counted["errors_total"].as_u64() >= Some(unavailable as u64), "503s counted: {counted}");
    assert!(slowest_503 <= Duration::from_secs(2), "a 503 took {slowest_503:?}");
    assert!(slowest < Duration::from_secs(3), "a request hung for {slowest:?}");

    // Read everything back: every acknowledged id is there, nothing else.
    let mut acked_total = 0;
    let mut lost = 0;
    for (i, tally) in tallies.iter().enumerate() {
        let listed = app
            .get(&format!("{}?offset=0&limit=10000", TestApp::messages_path("faults", &format!("w{i}"))))
            .await
            .expect(200);
        let stored: Vec<i64> = helpers::message_ids(&listed);
        let acked: Vec<i64> = tally.acked.iter().map(|(id, _)| *id).collect();
        lost += acked.iter().filter(|id| !stored.contains(id)).count();
        acked_total += acked.len();
        // Ids are written in order, so what is stored is 0..n: the acked ids
        // and at most one more (landed, but its answer was a 503).
        assert!(stored.iter().copied().eq(0..stored.len() as i64), "writer {i}: gaps in {stored:?}");
        assert!(
            stored.len() <= acked.len() + 1,
            "writer {i}: {} stored, {} acked",
            stored.len(),
            acked.len()
        );
    }
    eprintln!(
        "faults: {acked_total} writes acknowledged ({before} before the stop, {during} during, {after} after the restart), \
         {unavailable} answered 503 (slowest {slowest_503:?}), slowest request {slowest:?}, lost {lost}"
    );
    assert_eq!(lost, 0, "acknowledged writes were lost");
}
