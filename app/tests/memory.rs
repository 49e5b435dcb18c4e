//! Memory per request is bounded: the real binary takes four concurrent
//! bodies at the size limit (JSON made of many small values, the shape that
//! costs most as a tree) and serves four concurrent listings of the large
//! rows they made, and its peak resident memory stays under 512 MiB.
//!
//! Blob values stream: four 50 MiB values written while four are read
//! keep the process under one copy of the four.
//!
//! SQLite always; PostgreSQL too when `TEST_DATABASE_URL` names one (CI).
//! `SESSION_BACKEND_BIN` runs another build of the binary instead (to
//! compare releases).

use futures::{StreamExt, future::join_all};

mod running;

use running::{Running, with_postgres_schema};

/// The ceiling the issue sets for this load.
const PEAK_LIMIT_MIB: u64 = 512;
/// Just under the default body limit of 16 MiB.
const BODY_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;

/// `VmHWM`: the peak resident memory of `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

/// A JSON object of about `bytes` bytes made of many small numbers and
/// objects.
fn many_small_values(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 64);
    text.push_str(r#"{"session_id": "SID", "metadata": {"turns": ["#);
    let mut i = 0u64;
    while text.len() < bytes - 64 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(r#"{{"n":{},"f":{}.5}}"#, i % 1000, i % 97));
        i += 1;
    }
    text.push_str("]}}");
    text
}

/// Starts the binary with time enough: memory is measured here, not
/// speed, so a test build on a busy machine turns no request away.
async fn start(database_url: &str, dir: &std::path::Path) -> (Running, String) {
    let patient = [
        ("SESSION_BACKEND_SERVER__REQUEST_TIMEOUT_MS", "120000"),
        ("SESSION_BACKEND_DATABASE__ACQUIRE_TIMEOUT_MS", "30000"),
        ("SESSION_BACKEND_DATABASE__STATEMENT_TIMEOUT_MS", "60000"),
    ];
    running::start(database_url, dir, &patient).await
}

async fn exercise(database_url: &str, label: &str) -> u64 {
    let dir = tempfile::tempdir().expect("dir");
    let (server, base) = start(database_url, dir.path()).await;
    let client = reqwest::Client::new();
    let body = many_small_values(BODY_BYTES);
    let log = || std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    let post = |i: usize| {
        let body = body.replace("SID", &format!("big-{i}"));
        let request =
            client.post(format!("{base}/api/v1/sessions")).header("content-type", "application/json");
        async move {
            let post = request.body(body).send().await.expect("post");
            let status = post.status();
            let text = post.text().await.unwrap_or_default();
            assert_eq!(status, 201, "{label}: {}; server log:\n{}", &text[..text.len().min(300)], log());
        }
    };
    let list = || async {
        let resp = client.get(format!("{base}/api/v1/sessions?page_size=1000")).send().await.expect("list");
        let status = resp.status();
        if status != 200 {
            let text = resp.text().await.unwrap_or_default();
            panic!("{label}: listing answered {status}: {text}; server log:\n{}", log());
        }
        let mut bytes = 0usize;
        let mut tail = Vec::new();
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk
                .unwrap_or_else(|e| panic!("{label}: the listing broke off ({e}); server log:\n{}", log()));
            bytes += chunk.len();
            tail.extend_from_slice(&chunk);
            tail.drain(..tail.len().saturating_sub(200));
        }
        let tail = String::from_utf8_lossy(&tail).into_owned();
        assert!(bytes > 4 * BODY_BYTES - 1024 * 1024, "listing of {bytes} bytes");
        assert!(tail.ends_with('}') && tail.contains(r#""total":"#), "listing ends with: {tail}");
    };
    // Four bodies at once; then four more while four listings read them all.
    join_all((0..4).map(post)).await;
    let after_posts = peak_rss(server.0.id());
    let posts = join_all((4..8).map(post));
    let listings = join_all((0..4).map(|_| list()));
    futures::future::join(posts, listings).await;
    let peak = peak_rss(server.0.id());
    let mib = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
    eprintln!(
        "{label}: peak RSS {:.0} MiB after the bodies, {:.0} MiB after the listings",
        mib(after_posts),
        mib(peak)
    );
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peak_memory_stays_bounded_under_large_bodies_and_listings() {
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("memory.db").display());
    let mut peaks = vec![("sqlite", exercise(&sqlite, "sqlite").await)];
    if let Some(peak) =
        with_postgres_schema("memory", |url| async move { exercise(&url, "postgres").await }).await
    {
        peaks.push(("postgres", peak));
    }
    for (backend, peak) in peaks {
        assert!(peak < PEAK_LIMIT_MIB * 1024 * 1024, "{backend}: peak RSS {} MiB", peak / 1024 / 1024);
    }
}

/// The ceiling for four 50 MiB blob values written and read at once: less
/// than one copy of all four.
const BLOB_PEAK_LIMIT_MIB: u64 = 160;
const BLOB_BYTES: usize = 50 * 1024 * 1024;

/// A value of `BLOB_BYTES` made of `byte`, sent in 64 KiB pieces.
fn blob_body(byte: u8) -> reqwest::Body {
    let piece = bytes::Bytes::from(vec![byte; 64 * 1024]);
    let pieces = (0..BLOB_BYTES / piece.len()).map(move |_| Ok::<_, std::io::Error>(piece.clone()));
    reqwest::Body::wrap_stream(futures::stream::iter(pieces))
}

async fn exercise_blobs(database_url: &str, label: &str) -> u64 {
    let dir = tempfile::tempdir().expect("dir");
    let (server, base) = start(database_url, dir.path()).await;
    let client = reqwest::Client::new();
    let write = |i: u8| {
        let request = client.put(format!("{base}/api/v1/storage/big/{i}")).body(blob_body(i));
        async move { assert_eq!(request.send().await.expect("put").status(), 204, "{label}: write {i}") }
    };
    let read = |i: u8| {
        let request = client.get(format!("{base}/api/v1/storage/big/{i}"));
        async move {
            let resp = request.send().await.expect("get");
            assert_eq!(resp.status(), 200, "{label}: read {i}");
            let mut chunks = resp.bytes_stream();
            let mut bytes = 0;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.expect("chunk");
                assert!(chunk.iter().all(|b| *b == i), "{label}: value {i} came back changed");
                bytes += chunk.len();
            }
            assert_eq!(bytes, BLOB_BYTES, "{label}: value {i} came back whole");
        }
    };
    join_all((0..4).map(write)).await;
    let writes = join_all((4..8).map(write));
    let reads = join_all((0..4).map(read));
    futures::future::join(writes, reads).await;
    let peak = peak_rss(server.0.id());
    eprintln!("{label}: peak RSS {} MiB with 50 MiB blobs", peak / 1024 / 1024);
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_values_stream_in_and_out() {
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("blobs.db").display());
    let mut peaks = vec![("sqlite", exercise_blobs(&sqlite, "sqlite").await)];
    if let Some(peak) =
        with_postgres_schema("blobs", |url| async move { exercise_blobs(&url, "postgres").await }).await
    {
        peaks.push(("postgres", peak));
    }
    for (backend, peak) in peaks {
        assert!(peak < BLOB_PEAK_LIMIT_MIB * 1024 * 1024, "{backend}: peak RSS {} MiB", peak / 1024 / 1024);
    }
}
