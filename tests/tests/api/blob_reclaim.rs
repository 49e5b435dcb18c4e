//! The chunks of replaced and deleted values, and of uploads that did not
//! land, come back: at once when nothing can still read them, else once
//! the transfer bound (and a margin) has passed, by the sweeper. A read in
//! progress keeps its value whole meanwhile; an upload in progress is never
//! touched; an upload that takes too long is refused and leaves nothing.

use std::time::{Duration, Instant};

use reqwest::Method;
use session_backend::config::Config;

use crate::{
    both_backends,
    helpers::{Backend, TestApp, spawn_app_with},
    storage::{noise, path, put, read, stray_bytes},
};

both_backends!(
    replaced_and_deleted_values_are_reclaimed_by_the_sweeper,
    a_read_keeps_its_value_while_it_is_replaced,
    an_upload_in_progress_is_never_reclaimed,
    an_upload_past_the_transfer_bound_is_refused_and_leaves_nothing
);

const MIB: usize = 1024 * 1024;

/// A short transfer bound, a grace of `transfer + 0.5 s + 1 s + 1 s`, and
/// a sweeper every 100 ms.
fn short_bounds(transfer_ms: u64) -> impl FnOnce(&mut Config) {
    move |config| {
        config.storage.transfer_timeout_ms = transfer_ms;
        config.database.acquire_timeout_ms = 500;
        config.database.statement_timeout_ms = 1000;
        config.retention.sweep_interval_ms = 100;
    }
}

/// The value of a counter in `/metrics`.
async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// Waits until no chunk is left that no key points at.
async fn until_reclaimed(app: &TestApp, within: Duration) {
    let started = Instant::now();
    loop {
        let (stray, unlisted) = stray_bytes(app).await;
        assert_eq!(unlisted, 0, "every stray chunk is listed for the sweeper");
        if stray == 0 {
            return;
        }
        assert!(started.elapsed() < within, "{stray} bytes still stray after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replaced_and_deleted_values_are_reclaimed_by_the_sweeper(backend: Backend) {
    let Some(app) = spawn_app_with(backend, short_bounds(1000)).await else { return };
    let big = |seed| noise(3 * MIB + 5, seed);
    put(&app, "k/replaced", big(1)).await.expect(204);
    put(&app, "k/replaced", big(2)).await.expect(204);
    put(&app, "k/replaced", "small now").await.expect(204);
    put(&app, "k/deleted", big(3)).await.expect(204);
    app.delete(&path("k/deleted")).await.expect(204);
    put(&app, "p/x", big(4)).await.expect(204);
    app.call(Method::DELETE, "/api/v1/storage?prefix=p%2F", None).await.expect(200);
    let last_change = Instant::now();
    // Values of one chunk go with the change that replaces them.
    put(&app, "k/small", "one").await.expect(204);
    put(&app, "k/small", "two").await.expect(204);
    let (stray, unlisted) = stray_bytes(&app).await;
    assert_eq!((stray, unlisted), (4 * (3 * MIB as i64 + 5), 0), "four large values wait for the sweeper");
    until_reclaimed(&app, Duration::from_secs(15)).await;
    let took = last_change.elapsed();
    eprintln!("{backend:?}: reclaimed {took:?} after the last change (grace 3.5 s)");
    // The last listing came at most a request before `last_change`.
    assert!(took > Duration::from_millis(2500), "kept while reads may still stream them ({took:?})");
    assert_eq!(counter(&app, "storage_reclaimed_bytes_total").await, 4 * (3 * MIB as u64 + 5));
    assert_eq!(counter(&app, "storage_reclaimed_versions_total").await, 4);
    assert_eq!(read(&app, "k/replaced").await.0, b"small now");
    assert_eq!(read(&app, "k/small").await.0, b"two");
}

async fn a_read_keeps_its_value_while_it_is_replaced(backend: Backend) {
    let Some(app) = spawn_app_with(backend, short_bounds(6000)).await else { return };
    let old = noise(24 * MIB, 5);
    put(&app, "big", old.clone()).await.expect(204);
    let mut resp = app.client.get(app.url(&path("big"))).send().await.expect("get");
    assert_eq!(resp.status(), 200);
    let mut body = resp.chunk().await.expect("first piece").expect("a piece").to_vec();
    put(&app, "big", noise(2 * MIB, 6)).await.expect(204);
    app.delete(&path("big")).await.expect(204);
    // The sweeper runs many times meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Some(piece) = resp.chunk().await.expect("the rest of the old value") {
        body.extend_from_slice(&piece);
    }
    assert!(body == old, "{} bytes of {} came back, or other bytes", body.len(), old.len());
    app.get(&path("big")).await.expect_error(404, "NotFoundError");
}

async fn an_upload_in_progress_is_never_reclaimed(backend: Backend) {
    let Some(app) = spawn_app_with(backend, short_bounds(8000)).await else { return };
    let value = noise(5 * MIB, 7);
    let pieces: Vec<Vec<u8>> = value.chunks(MIB / 2).map(<[u8]>::to_vec).collect();
    let slow = futures::stream::unfold(pieces.into_iter(), |mut pieces| async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        pieces.next().map(|piece| (Ok::<_, std::io::Error>(piece), pieces))
    });
    put(&app, "slow", reqwest::Body::wrap_stream(slow)).await.expect(204);
    assert!(read(&app, "slow").await.0 == value);
    assert_eq!(stray_bytes(&app).await, (0, 0));
}

async fn an_upload_past_the_transfer_bound_is_refused_and_leaves_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, short_bounds(1000)).await else { return };
    let pieces: Vec<Vec<u8>> = (0..8).map(|i| noise(MIB / 2, 10 + i)).collect();
    let slow = futures::stream::unfold(pieces.into_iter(), |mut pieces| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pieces.next().map(|piece| (Ok::<_, std::io::Error>(piece), pieces))
    });
    let reply = put(&app, "late", reqwest::Body::wrap_stream(slow)).await;
    let message = reply.expect_error(408, "RequestTimeoutError");
    assert!(message.contains("storage.transfer_timeout_ms"), "{message}");
    app.get(&path("late")).await.expect_error(404, "NotFoundError");
    assert_eq!(stray_bytes(&app).await, (0, 0), "its chunks went with it");
}
