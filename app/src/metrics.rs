//! What the service counts, in one place: `/metrics` renders it in the
//! Prometheus text format (prometheus-client), `/health/metrics` as JSON
//! counters for people. Every request is recorded once, by method, route
//! template (never the raw path: `unmatched` for paths outside the
//! document) and status.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use poem::http::Method;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::{db::PoolStats, domain::VERSION};

/// The route label of a request whose path is not in the document.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    event: &'static str,
}

/// What happened to a session's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    Granted,
    Renewed,
    /// A grant or renewal refused (423).
    Refused,
    /// A grant replaced a lease that lapsed without being released.
    Expired,
    /// An operator broke a live lease.
    Broken,
}

impl LeaseEvent {
    fn label(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Renewed => "renewed",
            Self::Refused => "refused",
            Self::Expired => "expired",
            Self::Broken => "broken",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    backend: &'static str,
}

/// The counters, gauges and histograms of one server.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
    connections_open: Gauge,
    connections_refused: Counter,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    pool_timeouts: Counter,
    sweeps: Counter,
    sweeps_failed: Counter,
    swept_sessions: Counter,
    reclaimed_versions: Counter,
    reclaimed_bytes: Counter,
    keys: Gauge,
    keys_file_bad_lines: Gauge,
    key_reload_failures: Counter,
    leases: Family<LeaseLabels, Counter>,
    resident_memory: Gauge,
    // For the JSON view: totals by status and the summed latency.
    by_status: Mutex<BTreeMap<u16, u64>>,
    latency_micros: AtomicU64,
}

/// A consistent-enough copy of the counters (the JSON view).
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
    pub pool_timeouts: u64,
    pub sweeps: u64,
    pub sweeps_failed: u64,
    pub swept_sessions: u64,
}

impl Metrics {
    /// Registers every metric; `backend` labels the build info.
    pub fn new(backend: &'static str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to the response's head, by method and route template",
            Unit::Seconds,
            latency.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let in_flight = gauge(&mut registry, "http_requests_in_flight", "Requests being served now");
        let connections_open = gauge(&mut registry, "http_connections_open", "Client connections open now");
        let connections_refused = counter(
            &mut registry,
            "http_connections_refused",
            "Connections turned away at server.max_connections",
        );
        let pool_size = gauge(&mut registry, "db_pool_connections", "Database connections open in the pool");
        let pool_idle = gauge(&mut registry, "db_pool_idle_connections", "Pool connections not in use");
        let pool_max = gauge(&mut registry, "db_pool_max_connections", "Most connections the pool opens");
        let pool_timeouts = counter(
            &mut registry,
            "db_pool_acquire_timeouts",
            "Requests that waited for a connection past database.acquire_timeout_ms (answered 503)",
        );
        let sweeps = counter(&mut registry, "retention_sweeps", "Runs of the retention sweeper");
        let sweeps_failed =
            counter(&mut registry, "retention_sweeps_failed", "Sweeper runs that hit a database error");
        let swept_sessions =
            counter(&mut registry, "retention_swept_sessions", "Lapsed sessions deleted by the sweeper");
        let reclaimed_versions = counter(
            &mut registry,
            "storage_reclaimed_versions",
            "Blob versions whose chunks the sweeper deleted (replaced, deleted, or uploads given up)",
        );
        let reclaimed_bytes = Counter::default();
        registry.register_with_unit(
            "storage_reclaimed",
            "Bytes of blob chunks the sweeper deleted",
            Unit::Bytes,
            reclaimed_bytes.clone(),
        );
        let keys = gauge(&mut registry, "auth_keys", "API keys accepted now");
        let keys_file_bad_lines = gauge(
            &mut registry,
            "auth_keys_file_bad_lines",
            "Lines of the keys file in use that were skipped as bad",
        );
        let key_reload_failures = counter(
            &mut registry,
            "auth_keys_reload_failures",
            "Reloads of the keys file that could not read it or skipped bad lines",
        );
        let leases = Family::<LeaseLabels, Counter>::default();
        registry.register(
            "session_lease_events",
            "Session leases granted, renewed, refused, replaced after expiring, broken by force",
            leases.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of the process",
            Unit::Bytes,
            resident_memory.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "session_backend_build_info",
            "Version and database backend; always 1",
            build.clone(),
        );
        build.get_or_create(&BuildLabels { version: VERSION, backend }).set(1);
        Self {
            started: Instant::now(),
            registry,
            requests,
            latency,
            in_flight,
            connections_open,
            connections_refused,
            pool_size,
            pool_idle,
            pool_max,
            pool_timeouts,
            sweeps,
            sweeps_failed,
            swept_sessions,
            reclaimed_versions,
            reclaimed_bytes,
            keys,
            keys_file_bad_lines,
            key_reload_failures,
            leases,
            resident_memory,
            by_status: Mutex::new(BTreeMap::new()),
            latency_micros: AtomicU64::new(0),
        }
    }

    /// Counts one event of a session's lease.
    pub fn lease(&self, event: LeaseEvent) {
        self.leases.get_or_create(&LeaseLabels { event: event.label() }).inc();
    }

    /// Counts a request being served until the guard is dropped.
    pub fn request_started(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(self)
    }

    /// Counts one finished request; `route` is a template of the document
    /// (or [`UNMATCHED`]), so labels never copy anything per request.
    pub fn record(&self, method: &Method, route: &'static str, status: u16, latency: Duration) {
        let method = method_label(method);
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
        self.latency.get_or_create(&RouteLabels { method, route }).observe(latency.as_secs_f64());
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
        if let Ok(mut by_status) = self.by_status.lock() {
            *by_status.entry(status).or_default() += 1;
        }
    }

    /// Counts a request answered 503 because no database connection
    /// became free in time.
    pub fn pool_timed_out(&self) {
        self.pool_timeouts.inc();
    }

    /// Reads the counters.
    pub fn snapshot(&self) -> Snapshot {
        let by_status = self.by_status.lock().map(|m| m.clone()).unwrap_or_default();
        let requests: u64 = by_status.values().sum();
        let sum = |range: std::ops::RangeInclusive<u16>| {
            by_status.iter().filter(|(s, _)| range.contains(s)).map(|(_, n)| n).sum()
        };
        let latency = self.latency_micros.load(Ordering::Relaxed);
        Snapshot {
            uptime: self.started.elapsed(),
            requests,
            client_errors: sum(400..=499),
            server_errors: sum(500..=599),
            mean_latency_ms: if requests == 0 { 0.0 } else { latency as f64 / requests as f64 / 1000.0 },
            connections_open: u64::try_from(self.connections_open.get()).unwrap_or(0),
            connections_refused: self.connections_refused.get(),
            pool_timeouts: self.pool_timeouts.get(),
            sweeps: self.sweeps.get(),
            sweeps_failed: self.sweeps_failed.get(),
            swept_sessions: self.swept_sessions.get(),
            by_status,
        }
    }

    /// The Prometheus text exposition, with the pool and memory read now.
    pub fn render(&self, pool: PoolStats) -> String {
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %err, "rendering the metrics failed");
        }
        text
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections_open.inc();
        OpenConnection(self)
    }

    /// Counts a connection turned away at `server.max_connections`.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Records a reload of the keys file: whether it failed, the keys
    /// accepted now and the bad lines of the file in use.
    pub fn keys_reloaded(&self, failed: bool, keys: usize, bad_lines: usize) {
        if failed {
            self.key_reload_failures.inc();
        }
        self.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
        self.keys_file_bad_lines.set(i64::try_from(bad_lines).unwrap_or(i64::MAX));
    }

    /// Counts blob versions the sweeper reclaimed and their bytes.
    pub fn reclaimed(&self, versions: u64, bytes: u64) {
        self.reclaimed_versions.inc_by(versions);
        self.reclaimed_bytes.inc_by(bytes);
    }

    /// Counts a run of the retention sweeper and the sessions it deleted.
    pub fn sweep_finished(&self, deleted: u64, failed: bool) {
        self.sweeps.inc();
        self.swept_sessions.inc_by(deleted);
        if failed {
            self.sweeps_failed.inc();
        }
    }
}

/// The method as a label: the standard ones by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("other")
}

/// A request being served, counted while it lives.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// An open connection, counted while it lives.
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// Resident memory of this process in bytes (Linux), if it can be read.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
