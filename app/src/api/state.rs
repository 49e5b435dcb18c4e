//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use crate::{auth::Auth, config, db::Database, metrics::Metrics, store};

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
    /// What request bodies may be (their longest pause, whether the server
    /// is draining) and the room large ones share, which large answers
    /// built in memory take theirs from too.
    pub body_limits: crate::drain::BodyLimits,
    /// How long blob transfers may take, and unused chunks are kept.
    pub blob_timing: store::blobs::Timing,
    /// The largest document an import reads.
    pub import_limit_bytes: u64,
    /// Exports and imports running at once, at most: each holds a
    /// connection (a snapshot) or a parser thread and a staging.
    pub transfers: Arc<tokio::sync::Semaphore>,
    /// TTL of sessions created without one.
    pub default_ttl_seconds: u64,
}
