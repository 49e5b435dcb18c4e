//! The HTTP application: the API and its documents under the middleware
//! every request passes through.

use std::{sync::Arc, time::Duration};

use poem::{Endpoint, EndpointExt, IntoEndpoint, Route, middleware::CatchPanic};

use crate::{
    api::{self, AppState},
    auth::{self, Auth, Limit},
    config::Config,
    db::Database,
    drain::{BodyLimits, Draining},
    metrics::Metrics,
    middleware, store,
};

/// The complete HTTP application: API, `/docs`, `/openapi.json`, middleware.
pub fn app(
    db: Database,
    config: &Config,
    auth: Arc<Auth>,
    metrics: Arc<Metrics>,
    draining: Draining,
) -> impl Endpoint + 'static {
    let limits = crate::drain::BodyLimits {
        max_bytes: config.server.body_limit_bytes,
        stall: Duration::from_millis(config.server.body_timeout_ms),
        large: Arc::new(tokio::sync::Semaphore::new(
            config.server.large_bodies_in_flight_bytes.div_ceil(1024),
        )),
        room_kib: u32::try_from(config.server.large_bodies_in_flight_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX),
        turn_wait: Duration::from_millis(config.server.request_timeout_ms),
        draining: draining.clone(),
    };
    let appender = store::appender::Appender::start(db.conn().clone(), config.acquire_timeout());
    let state = AppState {
        db,
        auth: auth.clone(),
        appender,
        metrics: metrics.clone(),
        health_timeout: Duration::from_millis(config.database.health_timeout_ms),
        storage: config.storage.clone(),
        body_limits: limits.clone(),
        blob_timing: store::blobs::Timing::of(config),
        default_ttl_seconds: config.retention.default_ttl_seconds,
        import_limit_bytes: config.server.import_limit_bytes,
        transfers: Arc::new(tokio::sync::Semaphore::new(
            (config.database.max_connections as usize / 2).max(2),
        )),
    };
    let document = bytes::Bytes::from(api::document(auth.enabled()));
    let docs = api::swagger_ui(document.clone());
    let spec = api::document_endpoint(document);
    static ROUTES: std::sync::OnceLock<api::Routes> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        api::Routes::new(&["/openapi.json", "/docs", "/metrics", api::CONSOLE_PATH, api::CONSOLE_FILE_PATH])
    });
    let deadline = Duration::from_millis(config.server.request_timeout_ms);
    let exposition = {
        let (metrics, db) = (metrics.clone(), state.db.clone());
        poem::get(poem::endpoint::make_sync(move |_| {
            poem::Response::builder()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(metrics.render(db.pool_stats()))
        }))
    };
    let (tenants, operators, browsers) = (auth.clone(), auth.clone(), auth);
    let tenant_routes = Arc::new(json_routes(
        api::tenant_routes().around(move |ep, req| middleware::deadline(ep, req, deadline)),
        limits.clone(),
        tenants.clone(),
    ));
    let transfer_routes = Arc::new(api::transfer_routes().around({
        let auth = tenants.clone();
        move |ep, req| auth::tenants_only(ep, req, auth.clone(), Limit::Rate)
    }));
    let fork_routes = json_routes(api::fork_routes(), limits.clone(), tenants.clone());
    let lease_routes = api::lease_routes()
        .around(move |ep, req| middleware::deadline(ep, req, deadline))
        .around(move |ep, req| middleware::read_body(ep, req, limits.clone()))
        .around({
            let auth = tenants.clone();
            move |ep, req| auth::tenants_only(ep, req, auth.clone(), Limit::None)
        });
    let storage_routes = api::storage_routes()
        .around(move |ep, req| middleware::deadline_unless_streaming(ep, req, deadline))
        .around(move |ep, req| auth::tenants_only(ep, req, tenants.clone(), Limit::Rate));
    let exposition = exposition.around(move |ep, req| auth::operators_only(ep, req, operators.clone()));
    Route::new()
        .nest_no_strip("/api/v1/storage", storage_routes)
        .at(api::LEASE_PATH, lease_routes)
        .at(api::FORK_PATH, fork_routes)
        .at(api::EXPORT_PATH, transfer_routes.clone())
        .at(api::IMPORT_PATH, middleware::PostOr { post: transfer_routes, other: tenant_routes.clone() })
        .nest_no_strip("/api", tenant_routes)
        .nest_no_strip("/health", api::health_routes())
        .at("/metrics", exposition)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest(api::CONSOLE_PATH, api::console_routes())
        .data(state)
        .around(move |ep, req| auth::same_site_only(ep, req, browsers.clone()))
        .with(CatchPanic::new().with_handler(middleware::PanicToEnvelope))
        .around(move |ep, req| middleware::observe(ep, req, metrics.clone(), routes))
        .before(|req| async move { Ok(middleware::key_as_one_segment(req)) })
}

/// `routes` for tenants, under the rate limit, with their JSON bodies read
/// whole (and bounded) before they run.
fn json_routes(
    routes: impl IntoEndpoint<Endpoint: 'static>,
    limits: BodyLimits,
    tenants: Arc<Auth>,
) -> impl Endpoint {
    routes
        .into_endpoint()
        .around(move |ep, req| middleware::read_body(ep, req, limits.clone()))
        .around(move |ep, req| auth::tenants_only(ep, req, tenants.clone(), Limit::Rate))
}
