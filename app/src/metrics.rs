//! In-process request counters behind `/health/metrics`.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Counters updated once per request.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    latency_micros: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    sweeps: AtomicU64,
    sweeps_failed: AtomicU64,
    swept_sessions: AtomicU64,
}

/// A consistent-enough copy of the counters.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub uptime: Duration,
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub mean_latency_ms: f64,
    pub by_status: BTreeMap<u16, u64>,
    pub connections_open: u64,
    pub connections_refused: u64,
    pub sweeps: u64,
    pub sweeps_failed: u64,
    pub swept_sessions: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
            by_status: Mutex::new(BTreeMap::new()),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
            sweeps_failed: AtomicU64::new(0),
            swept_sessions: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one finished request.
    pub fn record(&self, status: u16, latency: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
        match status {
            400..=499 => self.client_errors.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.server_errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        if let Ok(mut by_status) = self.by_status.lock() {
            *by_status.entry(status).or_default() += 1;
        }
    }

    /// Reads the counters.
    pub fn snapshot(&self) -> Snapshot {
        let requests = self.requests.load(Ordering::Relaxed);
        let latency = self.latency_micros.load(Ordering::Relaxed);
        Snapshot {
            uptime: self.started.elapsed(),
            requests,
            client_errors: self.client_errors.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            mean_latency_ms: if requests == 0 { 0.0 } else { latency as f64 / requests as f64 / 1000.0 },
            by_status: self.by_status.lock().map(|m| m.clone()).unwrap_or_default(),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            sweeps: self.sweeps.load(Ordering::Relaxed),
            sweeps_failed: self.sweeps_failed.load(Ordering::Relaxed),
            swept_sessions: self.swept_sessions.load(Ordering::Relaxed),
        }
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// Counts a run of the retention sweeper and the sessions it deleted.
    pub fn sweep_finished(&self, deleted: u64, failed: bool) {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.swept_sessions.fetch_add(deleted, Ordering::Relaxed);
        if failed {
            self.sweeps_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a connection turned away at `server.max_connections`.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// An open connection, counted while it lives.
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resident memory of this process in bytes (Linux), if it can be read.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
