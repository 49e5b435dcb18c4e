//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use crate::{auth::Auth, config, db::Database, drain::Draining, metrics::Metrics, store};

/// The server's shared state, handed to handlers as poem `Data`.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Database,
    /// Keys, for what a handler shows to whom.
    pub auth: Arc<Auth>,
    /// Single-message appends, written in groups.
    pub appender: store::appender::Appender,
    pub metrics: Arc<Metrics>,
    pub health_timeout: Duration,
    pub storage: config::StorageConfig,
    /// How long blob transfers may take, and unused chunks are kept.
    pub blob_timing: store::blobs::Timing,
    /// The longest pause of a streamed request body.
    pub body_stall: Duration,
    /// Whether the server is shutting down (streamed bodies may then
    /// stall for a second at most).
    pub draining: Draining,
    /// TTL of sessions created without one.
    pub default_ttl_seconds: u64,
}
