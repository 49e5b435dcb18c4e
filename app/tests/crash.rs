//! A server killed (`kill -9`) in the middle of an upload leaves chunks no
//! key points at. After a restart the sweeper reclaims them once their time
//! has come by the database's clock (the transfer bound plus a margin,
//! short here), within one sweep interval of it, and `/metrics` counts the
//! bytes. The key itself was never written; a later write of it is whole.
//!
//! SQLite always; PostgreSQL too when `TEST_DATABASE_URL` names one (CI,
//! where `REQUIRE_POSTGRES=1` makes it required).

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;

mod running;

const MIB: usize = 1024 * 1024;

/// A transfer bound of 3 s, so chunks are kept 3 + 0.5 + 1 + 1 = 5.5 s;
/// a sweep every 250 ms.
const ENV: [(&str, &str); 4] = [
    ("SESSION_BACKEND_STORAGE__TRANSFER_TIMEOUT_MS", "3000"),
    ("SESSION_BACKEND_DATABASE__ACQUIRE_TIMEOUT_MS", "500"),
    ("SESSION_BACKEND_DATABASE__STATEMENT_TIMEOUT_MS", "1000"),
    ("SESSION_BACKEND_RETENTION__SWEEP_INTERVAL_MS", "250"),
];
const GRACE: Duration = Duration::from_millis(5500);
const SWEEP: Duration = Duration::from_millis(250);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_of_an_upload_cut_off_by_a_crash_are_reclaimed() {
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("crash.db").display());
    crash_mid_upload_and_restart(&sqlite, "sqlite").await;
    let postgres = running::with_postgres_schema("crash", |url| async move {
        crash_mid_upload_and_restart(&url, "postgres").await
    })
    .await;
    if postgres.is_none() {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "REQUIRE_POSTGRES=1 needs TEST_DATABASE_URL"
        );
        eprintln!("skipping the PostgreSQL variant: no TEST_DATABASE_URL");
    }
}

async fn crash_mid_upload_and_restart(url: &str, label: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();
    let (mut server, base) = running::start(url, dir.path(), &ENV).await;
    let key = format!("{base}/api/v1/storage/session/s1/snapshot_latest.json");
    // A 60 MiB upload whose first 8 MiB arrive, then nothing more.
    let (pieces, arriving) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    for i in 0..8u8 {
        pieces.send(vec![i; MIB]).await.expect("queued");
    }
    let body = futures::stream::unfold(arriving, |mut arriving| async move {
        arriving.recv().await.map(|piece| (Ok::<_, std::io::Error>(piece), arriving))
    });
    let upload = tokio::spawn(
        client
            .put(&key)
            .header("content-length", (60 * MIB).to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    let started = Instant::now();
    while stray_bytes(url).await < 4 * MIB as i64 {
        assert!(started.elapsed() < Duration::from_secs(2), "{label}: the upload's chunks never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.0.kill().expect("kill -9");
    server.0.wait().expect("wait");
    drop(server);
    drop(pieces);
    assert!(upload.await.expect("task").is_err(), "{label}: the upload ended with the server");
    // A statement the killed server had sent may still commit (PostgreSQL
    // finishes it): what is left is what stays put.
    let mut left = stray_bytes(url).await;
    let settling = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = stray_bytes(url).await;
        if now == left {
            break;
        }
        assert!(settling.elapsed() < Duration::from_secs(10), "{label}: stray chunks keep coming");
        left = now;
    }
    assert!(left >= 4 * MIB as i64, "{label}: {left} bytes left");

    let (_server, base) = running::start(url, dir.path(), &ENV).await;
    let restarted = Instant::now();
    while stray_bytes(url).await > 0 {
        let waited = restarted.elapsed();
        assert!(waited < GRACE + 2 * SWEEP, "{label}: chunks still there {waited:?} after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = restarted.elapsed();
    eprintln!(
        "{label}: {} MiB left by kill -9 mid-upload, reclaimed {took:?} after the restart",
        left / MIB as i64
    );
    let metrics =
        client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let reclaimed = metrics.lines().find_map(|l| l.strip_prefix("storage_reclaimed_bytes_total "));
    assert_eq!(reclaimed, Some(left.to_string().as_str()), "{label}: /metrics counts the bytes");
    let key = format!("{base}/api/v1/storage/session/s1/snapshot_latest.json");
    assert_eq!(client.get(&key).send().await.expect("get").status(), 404, "{label}: never written");
    let value: Vec<u8> = (0..3 * MIB + 7).map(|i| (i % 251) as u8).collect();
    assert_eq!(client.put(&key).body(value.clone()).send().await.expect("put").status(), 204);
    let back = client.get(&key).send().await.expect("get").bytes().await.expect("body");
    assert!(back.as_ref() == value.as_slice(), "{label}: written again, whole");
}

/// Bytes of chunks that no key points at.
async fn stray_bytes(url: &str) -> i64 {
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).idle_timeout(None).max_lifetime(None).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.expect("connect");
    let length = if url.starts_with("postgres") { "octet_length" } else { "length" };
    let sql = format!(
        "SELECT CAST(COALESCE(SUM({length}(c.data)), 0) AS BIGINT) FROM blob_chunks c WHERE NOT EXISTS \
         (SELECT 1 FROM blobs b WHERE b.tenant_id = c.tenant_id AND b.key = c.key AND b.version = c.version)"
    );
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await;
    let bytes = row.expect("sum").expect("a row").try_get_by_index::<i64>(0).expect("bytes");
    db.close().await.ok();
    bytes
}
