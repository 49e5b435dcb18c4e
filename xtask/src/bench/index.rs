//! The search index's cost: for snapshots of 1, 4 and 16 MiB shaped like
//! the SDK's (turns of text, now and then a base64 image), the time to
//! write one with indexing on and off (`storage.search_index_bytes = 0`),
//! and the space its index takes.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::Method;

use super::{Database, load::Client, server::Process};

/// Snapshot sizes measured, in MiB.
const SIZES_MIB: [usize; 3] = [1, 4, 16];
/// Writes timed per size at most (the median is shown); fewer once the
/// scenario's time is up.
const WRITES: usize = 5;

/// What one snapshot size cost.
pub struct IndexRow {
    pub mib: usize,
    /// What the index of one such snapshot takes, in bytes.
    pub index_bytes: Option<u64>,
    pub indexed_ms: f64,
    pub unindexed_ms: f64,
}

/// Measures every size on `database`, with a server of its own for each
/// setting.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    database: &Database,
    dir: &Path,
    budget: Duration,
) -> Result<Vec<IndexRow>, String> {
    let snapshots: Vec<Bytes> = SIZES_MIB.iter().map(|mib| Bytes::from(snapshot(mib << 20))).collect();
    let mut rows = Vec::new();
    let server = Process::start(binary, &database.url, dir, &[])?;
    for (mib, value) in SIZES_MIB.into_iter().zip(&snapshots) {
        let before = database.index_bytes();
        let timed = runtime.block_on(write_times(server.addr, &format!("index/on/{mib}"), value, budget))?;
        let index_bytes = match (before, database.index_bytes()) {
            (Ok(before), Ok(after)) => Some(after.saturating_sub(before) / timed.len() as u64),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("  index size not measured: {e}");
                None
            }
        };
        rows.push(IndexRow { mib, index_bytes, indexed_ms: median(timed), unindexed_ms: 0.0 });
    }
    server.stop();
    let off = [("SESSION_BACKEND_STORAGE__SEARCH_INDEX_BYTES", "0".to_owned())];
    let server = Process::start(binary, &database.url, dir, &off)?;
    for (row, value) in rows.iter_mut().zip(&snapshots) {
        let key = format!("index/off/{}", row.mib);
        row.unindexed_ms = median(runtime.block_on(write_times(server.addr, &key, value, budget))?);
    }
    server.stop();
    Ok(rows)
}

/// Writes `value` under new keys starting with `key`, [`WRITES`] times or
/// until `budget` has passed (once at least); how long each write took, in
/// milliseconds.
async fn write_times(
    addr: SocketAddr,
    key: &str,
    value: &Bytes,
    budget: Duration,
) -> Result<Vec<f64>, String> {
    let mut client = Client::connect(addr).await?;
    let started = Instant::now();
    let mut times = Vec::new();
    while times.len() < WRITES && (times.is_empty() || started.elapsed() < budget) {
        let path = format!("/api/v1/storage/{key}-{}", times.len());
        let sent = Instant::now();
        client.expect(Method::PUT, &path, Some(value.clone()), 204).await?;
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A snapshot of about `bytes`: JSON turns of prose, every 40th an image.
fn snapshot(bytes: usize) -> String {
    const WORDS: [&str; 16] = [
        "weather", "report", "the", "agent", "answered", "user", "asked", "about", "tomorrow", "forecast",
        "in", "Paris", "rain", "expected", "morning", "sunny",
    ];
    let mut text = String::from(r#"{"schema_version": "1.0", "messages": ["#);
    let mut seed = 0x2545_f491_u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut turn = 0;
    while text.len() < bytes {
        if turn % 40 == 39 {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let image: String = (0..48 * 1024).map(|_| ALPHABET[(next() % 64) as usize] as char).collect();
            text.push_str(&format!(
                r#"{{"role": "user", "content": [{{"image": {{"data": "{image}"}}}}]}},"#
            ));
        } else {
            let words: Vec<String> =
                (0..200).map(|_| format!("{}{}", WORDS[(next() % 16) as usize], next() % 50)).collect();
            text.push_str(&format!(
                r#"{{"role": "assistant", "content": [{{"text": "{}"}}]}},"#,
                words.join(" ")
            ));
        }
        turn += 1;
    }
    text.push_str(r#"{"role": "user", "content": []}]}"#);
    text
}
