//! The HTTP server: accepts connections up to `server.max_connections`,
//! serves each one with the time limits of [`connection`], and on shutdown
//! stops accepting, closes idle connections at once, lets requests in
//! flight finish within `server.shutdown_timeout_ms`, then closes the pool.

mod app;
mod connection;
mod sweeper;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinSet,
};

use crate::{auth::Auth, config::Config, db, db::Database, drain::Draining, metrics::Metrics};

/// A server that is connected, migrated and bound, not yet serving.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    db: Database,
    auth: Arc<Auth>,
    config: Config,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] db::StartError),
    #[error("{0}")]
    Auth(String),
    #[error("cannot listen on {address} (server.host / server.port): {cause}")]
    Bind { address: String, cause: std::io::Error },
}

impl Server {
    /// Connects to the database, migrates (or checks the schema), binds.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let auth = Arc::new(Auth::load(&config).map_err(StartError::Auth)?);
        let db = Database::connect(&config).await?;
        db.prepare(config.database.auto_migrate).await?;
        let address = config.listen_address();
        let bind_error = |cause| StartError::Bind { address: address.clone(), cause };
        let listener = TcpListener::bind(&address).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        if auth.lists_no_key() {
            tracing::warn!("API keys are required but none is listed: every API request will be refused");
        } else if auth.enabled() {
            tracing::info!(keys = auth.key_count(), "API keys required on /api/");
        } else {
            tracing::warn!(
                "authentication is off: anyone who can reach this port can read and change every session; \
                 configure auth.keys_file (SESSION_BACKEND_AUTH__KEYS_FILE) before exposing it"
            );
        }
        Ok(Self { listener, addr, db, auth, config })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then drains (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Self { listener, addr, db, auth, config } = self;
        let metrics = Arc::new(Metrics::new(db.backend().name()));
        let (drain, draining) = watch::channel(false);
        let draining = Draining::new(draining);
        let interval = Duration::from_millis(config.auth.reload_interval_ms);
        let watcher = crate::auth::watch(auth.clone(), interval, metrics.clone());
        let sweeper = Some(sweeper::start(db.clone(), &config, metrics.clone()));
        let app = Arc::new(app::app(db.clone(), &config, auth, metrics.clone(), draining.clone()));
        let limits = connection::Limits::from(&config.server);
        let slots = Arc::new(Semaphore::new(config.server.max_connections));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            metrics.connection_refused();
                            tracing::warn!(%peer, max = config.server.max_connections, "connection refused: server.max_connections reached");
                            continue;
                        };
                        let serve = connection::serve(stream, addr, peer, app.clone(), limits, draining.clone());
                        let metrics = metrics.clone();
                        connections.spawn(async move {
                            let _open = metrics.connection_opened();
                            serve.await;
                            drop(slot);
                        });
                    }
                    // Out of file descriptors and the like: let it pass.
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Connections the kernel completed before the listener closes are
        // served too (each gets its one request in), not reset.
        while let Some(Ok((stream, peer))) = futures::FutureExt::now_or_never(listener.accept()) {
            let serve = connection::serve(stream, addr, peer, app.clone(), limits, draining.clone());
            connections.spawn(serve);
        }
        drop(listener);
        drain.send_replace(true);
        tracing::info!(open = connections.len(), "shutting down: draining in-flight requests");
        let grace = Duration::from_millis(config.server.shutdown_timeout_ms);
        let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} });
        if drained.await.is_err() {
            tracing::warn!(
                open = connections.len(),
                grace_ms = config.server.shutdown_timeout_ms,
                "requests still running at the end of the shutdown grace period; closing their connections"
            );
            connections.shutdown().await;
        }
        for task in [watcher, sweeper].into_iter().flatten() {
            task.abort();
        }
        db.close().await;
        Ok(())
    }
}
