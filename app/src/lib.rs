//! Session Backend: storage for Strands agent sessions behind an HTTP API,
//! on SQLite (default) or PostgreSQL.
//!
//! The library builds the whole server so that tests run it in-process:
//! [`Server::start`] connects, migrates and binds; [`Server::run`] serves
//! until the shutdown future resolves, then drains in-flight requests.
//! [`ops`] holds backup and restore, shared by the binary and `cargo xtask`.

mod api;
pub mod auth;
pub mod config;
pub mod db;
mod drain;
mod error;
mod metrics;
mod middleware;
pub mod ops;
mod request_id;
mod server;
mod store;
pub mod telemetry;

use std::{sync::Arc, time::Duration};

use poem::{Endpoint, EndpointExt, Route, middleware::CatchPanic};

pub use crate::server::{Server, StartError};
use crate::{auth::Auth, config::Config, db::Database, metrics::Metrics, server::Draining};

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every handler can reach.
#[derive(Clone, Debug)]
struct AppState {
    db: Database,
    /// Single-message appends, written in groups.
    appender: store::appender::Appender,
    metrics: Arc<Metrics>,
    health_timeout: Duration,
    storage: config::StorageConfig,
    /// How long blob transfers may take, and unused chunks are kept.
    blob_timing: store::blobs::Timing,
    /// The longest pause of a streamed request body.
    body_stall: Duration,
    /// Whether the server is shutting down (streamed bodies may then
    /// stall for a second at most).
    draining: Draining,
    /// TTL of sessions created without one.
    default_ttl_seconds: u64,
}

/// The complete HTTP application: API, `/docs`, `/openapi.json`, middleware.
fn app(
    db: Database,
    config: &Config,
    auth: Arc<Auth>,
    metrics: Arc<Metrics>,
    draining: Draining,
) -> impl Endpoint + 'static {
    let appender = store::appender::Appender::start(db.conn().clone(), config.acquire_timeout());
    let state = AppState {
        db,
        appender,
        metrics: metrics.clone(),
        health_timeout: Duration::from_millis(config.database.health_timeout_ms),
        storage: config.storage.clone(),
        blob_timing: config.blob_timing(),
        body_stall: Duration::from_millis(config.server.body_timeout_ms),
        draining: draining.clone(),
        default_ttl_seconds: config.retention.default_ttl_seconds,
    };
    let api = api::service();
    let document = bytes::Bytes::from(api::document(auth.enabled()));
    let docs = api::swagger_ui(document.clone());
    let spec = api::document_endpoint(document);
    let routes = api::Routes::of_document();
    let limits = middleware::BodyLimits {
        max_bytes: config.server.body_limit_bytes,
        stall: Duration::from_millis(config.server.body_timeout_ms),
        large: Arc::new(tokio::sync::Semaphore::new(
            config.server.large_bodies_in_flight_bytes.div_ceil(1024),
        )),
        room_kib: u32::try_from(config.server.large_bodies_in_flight_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX),
        turn_wait: Duration::from_millis(config.server.request_timeout_ms),
        draining,
    };
    let deadline = Duration::from_millis(config.server.request_timeout_ms);
    let exposition = {
        let (metrics, db) = (metrics.clone(), state.db.clone());
        poem::get(poem::endpoint::make_sync(move |_| {
            poem::Response::builder()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(metrics.render(db.pool_stats()))
        }))
    };
    Route::new()
        .at("/metrics", exposition)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .data(state)
        .with(CatchPanic::new().with_handler(middleware::PanicToEnvelope))
        .around(move |ep, req| middleware::deadline(ep, req, deadline))
        .around(move |ep, req| middleware::read_body(ep, req, limits.clone()))
        .around(move |ep, req| auth::authenticate(ep, req, auth.clone()))
        .around(move |ep, req| middleware::observe(ep, req, metrics.clone(), routes))
        .before(|req| async move { Ok(middleware::key_as_one_segment(req)) })
}

/// The OpenAPI document as JSON, as a server with API keys serves it.
pub fn openapi_json() -> String {
    api::document(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_openapi_document_is_current() {
        let committed = include_str!("../openapi.json");
        assert!(
            committed == format!("{}\n", super::openapi_json()),
            "app/openapi.json is stale: run `cargo xtask openapi` and commit the result"
        );
    }
}
