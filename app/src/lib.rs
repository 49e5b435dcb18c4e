//! Session Backend: storage for Strands agent sessions behind an HTTP API,
//! on SQLite (default) or PostgreSQL.
//!
//! The library builds the whole server so that tests run it in-process:
//! [`Server::start`] connects, migrates and binds; [`Server::run`] serves
//! until the shutdown future resolves, then drains in-flight requests.

pub mod api;
pub mod config;
pub mod db;
pub mod error;
mod metrics;
mod middleware;
pub mod request_id;
pub mod store;
pub mod telemetry;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use poem::{Endpoint, EndpointExt, Route, listener::TcpAcceptor, middleware::CatchPanic};

use crate::{config::Config, db::Database, metrics::Metrics};

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Database,
    metrics: Arc<Metrics>,
    health_timeout: Duration,
}

impl AppState {
    /// The tenant of the request (always the default until authentication).
    pub fn tenant(&self) -> &'static str {
        store::DEFAULT_TENANT
    }

    /// Upper bound of a database probe.
    pub fn health_timeout(&self) -> Duration {
        self.health_timeout
    }
}

/// The complete HTTP application: API, `/docs`, `/openapi.json`, middleware.
pub fn app(db: Database, config: &Config) -> impl Endpoint + 'static {
    let metrics = Arc::new(Metrics::default());
    let state = AppState {
        db,
        metrics: metrics.clone(),
        health_timeout: Duration::from_millis(config.database.health_timeout_ms),
    };
    let api = api::service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let limit = config.server.body_limit_bytes;
    let deadline = Duration::from_millis(config.server.request_timeout_ms);
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .data(state)
        .with(CatchPanic::new().with_handler(middleware::PanicToEnvelope))
        .around(move |ep, req| middleware::deadline(ep, req, deadline))
        .around(move |ep, req| middleware::limit_body(ep, req, limit))
        .around(move |ep, req| middleware::observe(ep, req, metrics.clone()))
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    api::service().spec()
}

/// A server that is connected, migrated and bound, not yet serving.
pub struct Server {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    db: Database,
    config: Config,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] db::StartError),
    #[error("cannot listen on {address} (server.host / server.port): {cause}")]
    Bind { address: String, cause: std::io::Error },
}

impl Server {
    /// Connects to the database, migrates (or checks the schema), binds.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let db = Database::connect(&config).await?;
        db.prepare(config.database.auto_migrate).await?;
        let address = config.listen_address();
        let bind_error = |cause| StartError::Bind { address: address.clone(), cause };
        let listener = tokio::net::TcpListener::bind(&address).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let acceptor = TcpAcceptor::from_tokio(listener).map_err(bind_error)?;
        Ok(Self { acceptor, addr, db, config })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish
    /// (bounded by `server.shutdown_timeout_ms`), then closes the pool.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let app = app(self.db.clone(), &self.config);
        let grace = Duration::from_millis(self.config.server.shutdown_timeout_ms);
        let result = poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown, Some(grace))
            .await;
        self.db.close().await;
        result
    }
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
