//! Health probes and counters: `/health`, `/health/live`, `/health/db`,
//! `/health/ready`, `/health/metrics`.

use std::collections::BTreeMap;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Example};

use super::{
    ApiTags,
    fields::{Nullable, Timestamp},
};
use crate::{api::AppState, auth::MetricsView, db::PoolStats, domain::VERSION, metrics};

/// A probe's answer.
#[derive(Debug, Object)]
#[oai(example)]
pub struct HealthReport {
    /// `healthy`, `alive`, `ready`, or `unhealthy` / `not ready` on failure.
    pub status: String,
    /// The service version.
    pub version: String,
    /// When the probe ran (RFC 3339).
    pub timestamp: String,
    pub checks: HealthChecks,
}

impl Example for HealthReport {
    fn example() -> Self {
        Self {
            status: "ready".into(),
            version: VERSION.into(),
            timestamp: "2026-11-21T10:00:00.123456+00:00".into(),
            checks: HealthChecks {
                service: Some(ServiceCheck { status: "ready".into() }),
                database: Some(DatabaseCheck {
                    status: "ready".into(),
                    response_time_ms: Some(0.4),
                    connection_pool: None,
                    message: None,
                }),
            },
        }
    }
}

/// A failed probe, in the earlier service's shape.
#[derive(Debug, Object)]
#[oai(example)]
pub struct HealthFailure {
    pub detail: HealthReport,
}

impl Example for HealthFailure {
    fn example() -> Self {
        let mut detail = HealthReport::example();
        detail.status = "not ready".into();
        if let Some(db) = detail.checks.database.as_mut() {
            db.status = "not ready".into();
            db.response_time_ms = None;
            db.message = Some("no answer within 2000 ms".into());
        }
        Self { detail }
    }
}

/// The individual checks of a probe.
#[derive(Debug, Object)]
pub struct HealthChecks {
    #[oai(skip_serializing_if_is_none)]
    pub service: Option<ServiceCheck>,
    #[oai(skip_serializing_if_is_none)]
    pub database: Option<DatabaseCheck>,
}

/// The process itself.
#[derive(Debug, Object)]
pub struct ServiceCheck {
    pub status: String,
}

/// The database round trip.
#[derive(Debug, Object)]
pub struct DatabaseCheck {
    pub status: String,
    /// Round-trip time of `SELECT 1`.
    #[oai(skip_serializing_if_is_none)]
    pub response_time_ms: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub connection_pool: Option<PoolInfo>,
    /// Why the check failed.
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
}

/// Connection pool figures.
#[derive(Debug, Object)]
pub struct PoolInfo {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Connections in use.
    pub in_use: u32,
    /// Most connections the pool opens.
    pub max_size: u32,
}

impl From<PoolStats> for PoolInfo {
    fn from(p: PoolStats) -> Self {
        Self { size: p.size, idle: p.idle, in_use: p.size.saturating_sub(p.idle), max_size: p.max }
    }
}

/// Counters for people (Prometheus format comes with `/metrics`). The
/// traffic figures count every tenant's requests: with API keys on they
/// are `null` unless the request carries an operator's metrics key (or
/// `metrics.public` is set); the process's own figures are always there.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MetricsReport {
    pub version: String,
    pub timestamp: String,
    pub uptime_seconds: f64,
    pub requests_total: Nullable<u64>,
    /// Requests by HTTP status.
    pub requests_by_status: Nullable<BTreeMap<String, u64>>,
    /// Requests answered 4xx.
    pub client_errors_total: Nullable<u64>,
    /// Requests answered 5xx.
    pub errors_total: Nullable<u64>,
    pub mean_latency_ms: Nullable<f64>,
    /// Client connections open now.
    pub connections_open: Nullable<u64>,
    /// Connections turned away at `server.max_connections`.
    pub connections_refused_total: Nullable<u64>,
    /// Requests that found no free database connection in time (503).
    pub pool_acquire_timeouts_total: Nullable<u64>,
    /// Runs of the retention sweeper, and how many of them failed.
    pub sweeps_total: Nullable<u64>,
    pub sweeps_failed_total: Nullable<u64>,
    /// Lapsed sessions the sweeper deleted.
    pub sessions_swept_total: Nullable<u64>,
    /// Resident memory of the process.
    pub process_memory_bytes: Option<u64>,
    /// `sqlite` or `postgres`.
    pub database_backend: String,
    pub connection_pool: PoolInfo,
}

impl Example for MetricsReport {
    fn example() -> Self {
        Self {
            version: VERSION.into(),
            timestamp: "2026-11-21T10:00:00.123456+00:00".into(),
            uptime_seconds: 3600.0,
            requests_total: Nullable(Some(1200)),
            requests_by_status: Nullable(Some(BTreeMap::from([
                ("200".into(), 1100),
                ("201".into(), 95),
                ("404".into(), 5),
            ]))),
            client_errors_total: Nullable(Some(5)),
            errors_total: Nullable(Some(0)),
            mean_latency_ms: Nullable(Some(0.8)),
            connections_open: Nullable(Some(3)),
            connections_refused_total: Nullable(Some(0)),
            pool_acquire_timeouts_total: Nullable(Some(0)),
            sweeps_total: Nullable(Some(60)),
            sweeps_failed_total: Nullable(Some(0)),
            sessions_swept_total: Nullable(Some(12)),
            process_memory_bytes: Some(12_000_000),
            database_backend: "postgres".into(),
            connection_pool: PoolInfo { size: 4, idle: 3, in_use: 1, max_size: 10 },
        }
    }
}

#[derive(ApiResponse)]
enum Probe {
    /// The check passed.
    #[oai(status = 200)]
    Ok(Json<HealthReport>),
    /// The check failed; the report is under `detail`.
    #[oai(status = 503)]
    Failed(Json<HealthFailure>),
}

fn report(status: &str, checks: HealthChecks) -> HealthReport {
    HealthReport {
        status: status.into(),
        version: VERSION.into(),
        timestamp: Timestamp(chrono::Utc::now()).to_string(),
        checks,
    }
}

/// Pings the database within the health timeout. `words` are the statuses
/// for success and failure; readiness also reports the service, the
/// database probe the pool.
async fn probe_database(state: &AppState, words: (&str, &str), readiness: bool) -> Probe {
    let service = readiness.then(|| ServiceCheck { status: words.0.into() });
    let connection_pool = (!readiness).then(|| PoolInfo::from(state.db.pool_stats()));
    match state.db.ping(state.health_timeout).await {
        Ok(rtt) => Probe::Ok(Json(report(
            words.0,
            HealthChecks {
                service,
                database: Some(DatabaseCheck {
                    status: words.0.into(),
                    response_time_ms: Some(rtt.as_secs_f64() * 1000.0),
                    connection_pool,
                    message: None,
                }),
            },
        ))),
        Err(why) => Probe::Failed(Json(HealthFailure {
            detail: report(
                words.1,
                HealthChecks {
                    service,
                    database: Some(DatabaseCheck {
                        status: words.1.into(),
                        response_time_ms: None,
                        connection_pool,
                        message: Some(why),
                    }),
                },
            ),
        })),
    }
}

/// Health probes.
pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Process health
    ///
    /// The process is up; never touches the database.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<HealthReport> {
        Json(report(
            "healthy",
            HealthChecks { service: Some(ServiceCheck { status: "healthy".into() }), database: None },
        ))
    }

    /// Liveness probe
    ///
    /// Same rule as `/health`: restart the process only if this fails.
    #[oai(path = "/health/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> Json<HealthReport> {
        Json(report(
            "alive",
            HealthChecks { service: Some(ServiceCheck { status: "alive".into() }), database: None },
        ))
    }

    /// Database health
    ///
    /// Answers within `database.health_timeout_ms` (2 s) even while the
    /// database is down or hanging.
    #[oai(path = "/health/db", method = "get", operation_id = "health_db")]
    async fn db(&self, state: Data<&AppState>) -> Probe {
        probe_database(&state, ("healthy", "unhealthy"), false).await
    }

    /// Readiness probe
    ///
    /// Service and database; take the pod out of rotation while this fails.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self, state: Data<&AppState>) -> Probe {
        probe_database(&state, ("ready", "not ready"), true).await
    }

    /// Request counters
    ///
    /// Uptime, requests by status, errors, mean latency, memory and pool.
    /// With API keys on, the traffic figures (every tenant's) are `null`
    /// unless the request carries an operator's metrics key.
    #[oai(path = "/health/metrics", method = "get", operation_id = "health_metrics")]
    async fn metrics(&self, state: Data<&AppState>, request: &poem::Request) -> Json<MetricsReport> {
        // Always answered (a probe's rules): a bad credential sees less.
        let view = state.auth.metrics_view(request.headers()).unwrap_or(MetricsView::ProcessOnly);
        let snap = state.metrics.snapshot();
        let full = view == MetricsView::Full;
        let shown = |figure| Nullable(full.then_some(figure));
        Json(MetricsReport {
            version: VERSION.into(),
            timestamp: Timestamp(chrono::Utc::now()).to_string(),
            uptime_seconds: snap.uptime.as_secs_f64(),
            requests_total: shown(snap.requests),
            requests_by_status: Nullable(
                full.then(|| snap.by_status.iter().map(|(s, n)| (s.to_string(), *n)).collect()),
            ),
            client_errors_total: shown(snap.client_errors),
            errors_total: shown(snap.server_errors),
            mean_latency_ms: Nullable(full.then_some(snap.mean_latency_ms)),
            connections_open: shown(snap.connections_open),
            connections_refused_total: shown(snap.connections_refused),
            pool_acquire_timeouts_total: shown(snap.pool_timeouts),
            sweeps_total: shown(snap.sweeps),
            sweeps_failed_total: shown(snap.sweeps_failed),
            sessions_swept_total: shown(snap.swept_sessions),
            process_memory_bytes: metrics::resident_memory_bytes(),
            database_backend: state.db.backend().name().into(),
            connection_pool: state.db.pool_stats().into(),
        })
    }
}
