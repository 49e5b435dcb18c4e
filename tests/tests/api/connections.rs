//! Slow and greedy clients: header, body, idle and write time limits, the
//! connection cap, and a shutdown that stalled clients cannot hold up.
//! Raw sockets, so the test controls every byte and every pause.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    both_backends,
    helpers::{Backend, TestApp, spawn_app_with},
};

both_backends!(
    half_headers_are_cut_off_after_the_header_timeout,
    idle_keep_alive_outlives_the_header_timeout_then_closes,
    connections_beyond_the_cap_are_refused,
    stalled_bodies_are_408_and_write_nothing,
    clients_that_stop_reading_are_cut_off,
    shutdown_is_prompt_however_clients_stall,
);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.expect("connect")
}

/// Reads until the server closes the connection or `within` passes;
/// `Some(bytes read)` when it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Sends one complete request and reads its whole answer (`Connection`
/// stays open).
async fn request(stream: &mut TcpStream, path: &str) -> String {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await.expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

async fn half_headers_are_cut_off_after_the_header_timeout(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.server.header_timeout_ms = 300).await else { return };
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = connect(&app).await;
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n").await.expect("half a header");
        stalled.push(stream);
    }
    // One that never sends a byte, one that drips a byte at a time.
    stalled.push(connect(&app).await);
    let mut drip = connect(&app).await;
    let started = Instant::now();
    for byte in b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if drip.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // Complete requests keep being served meanwhile.
    app.get("/health").await.expect(200);
    for (i, stream) in stalled.iter_mut().chain([&mut drip]).enumerate() {
        let closed = closed_within(stream, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "stalled connection {i} still open");
    }
    // Left open: at most the test client's own pooled connection or two.
    let metrics = app.get("/health/metrics").await.expect(200);
    assert!(metrics["connections_open"].as_u64() <= Some(2), "{metrics}");
}

async fn idle_keep_alive_outlives_the_header_timeout_then_closes(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.server.header_timeout_ms = 200;
        c.server.idle_timeout_ms = 1200;
    })
    .await
    else {
        return;
    };
    let mut stream = connect(&app).await;
    assert!(request(&mut stream, "/health").await.starts_with("HTTP/1.1 200"));
    // Idle for longer than the header timeout: the connection is still good.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(request(&mut stream, "/health/live").await.starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(4)).await.is_some(),
        "idle connection never closed"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the idle timeout");
}

async fn connections_beyond_the_cap_are_refused(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.server.max_connections = 4).await else { return };
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        assert!(request(&mut stream, "/health").await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let mut extra = connect(&app).await;
    drop(extra.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").await);
    let answer =
        closed_within(&mut extra, Duration::from_secs(2)).await.expect("the fifth is closed at once");
    assert!(answer.is_empty(), "served beyond the cap: {}", String::from_utf8_lossy(&answer));
    // The held ones still work; once one goes, a new client gets in.
    assert!(request(&mut held[0], "/health").await.starts_with("HTTP/1.1 200"));
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    let metrics = loop {
        let mut stream = connect(&app).await;
        if stream.write_all(b"GET /health/metrics HTTP/1.1\r\nHost: t\r\n\r\n").await.is_ok()
            && let Some(text) = closed_or_answer(&mut stream).await
        {
            break text;
        }
        assert!(Instant::now() < deadline, "no slot freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(metrics.contains("\"connections_refused_total\":"), "{metrics}");
    assert!(!metrics.contains("\"connections_refused_total\":0"), "{metrics}");
}

/// The answer on `stream`, or `None` when it was closed unanswered.
async fn closed_or_answer(stream: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await.ok()?.ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}

async fn stalled_bodies_are_408_and_write_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.server.body_timeout_ms = 300).await else { return };
    let mut stream = connect(&app).await;
    let body = r#"{"session_id": "stalled"}"#;
    let head = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body.as_bytes()[..10]).await.expect("part of the body");
    let started = Instant::now();
    let answer = closed_or_answer(&mut stream).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeoutError"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    app.get("/api/v1/sessions/stalled").await.expect(404);
}

async fn clients_that_stop_reading_are_cut_off(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.server.write_timeout_ms = 500).await else { return };
    let blob = "x".repeat(1024 * 1024);
    for i in 0..24 {
        app.post("/api/v1/sessions", &json!({"session_id": format!("s{i}"), "metadata": {"blob": blob}}))
            .await
            .expect(201);
    }
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"GET /api/v1/sessions?page_size=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("ask");
        readers.push(stream); // and never read
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app.get("/health/metrics").await.expect(200);
        if metrics["connections_open"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "readers that stopped are still connected: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Their queries gave their connections back: the pool still serves.
    for i in 0..10 {
        app.get(&format!("/api/v1/sessions/s{i}")).await.expect(200);
    }
    let listed = app.get("/api/v1/sessions?page_size=1000").await.expect(200);
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(24));
}

async fn shutdown_is_prompt_however_clients_stall(backend: Backend) {
    let Some(mut app) = spawn_app_with(backend, |c| c.server.shutdown_timeout_ms = 30_000).await else {
        return;
    };
    let mut half_header = connect(&app).await;
    half_header.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n").await.expect("half");
    let mut idle = connect(&app).await;
    assert!(request(&mut idle, "/health").await.starts_with("HTTP/1.1 200"));
    let mut mid_body = connect(&app).await;
    mid_body
        .write_all(b"POST /api/v1/sessions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"session_id\"")
        .await
        .expect("part of a body");
    let silent = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let server = app.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("shutdown held up by stalled clients")
        .expect("server task")
        .expect("clean stop");
    let took = started.elapsed();
    eprintln!("shutdown with four stalled clients took {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop((half_header, idle, mid_body, silent));
}
