//! The sweeper: every `retention.sweep_interval_ms`, deletes lapsed
//! sessions in batches of `retention.sweep_batch` (one short statement
//! each) until none is left, then reclaims the chunks of blob versions
//! whose time has come ([`reclaim`]), counting runs, deletions and
//! reclaimed bytes. With the interval at 0 sessions are never swept, but
//! chunks are still reclaimed, every minute. Safe with many replicas
//! sweeping at once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    config::RetentionConfig,
    db::Database,
    metrics::Metrics,
    store::{blobs::reclaim, retention},
};

/// Batches of sessions one run deletes at most, so a backlog is worked off
/// over several runs instead of holding the database busy.
const BATCHES_PER_RUN: usize = 100;

/// How long one run may keep reclaiming chunks while versions are due.
const RECLAIM_PER_RUN: Duration = Duration::from_secs(5);

/// How often chunks are reclaimed when sessions are not swept.
const RECLAIM_ONLY_INTERVAL: Duration = Duration::from_secs(60);

/// Starts the sweeper.
pub fn start(db: Database, config: &RetentionConfig, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    let sweep_sessions = config.sweep_interval_ms > 0;
    let interval =
        if sweep_sessions { Duration::from_millis(config.sweep_interval_ms) } else { RECLAIM_ONLY_INTERVAL };
    let batch = config.sweep_batch;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (deleted, sessions_failed) =
                if sweep_sessions { sweep_sessions_once(&db, batch).await } else { (0, false) };
            let reclaim_failed = reclaim_blobs(&db, &metrics).await;
            metrics.sweep_finished(deleted, sessions_failed || reclaim_failed);
        }
    })
}

/// Deletes lapsed sessions; how many, and whether it failed.
async fn sweep_sessions_once(db: &Database, batch: u64) -> (u64, bool) {
    let mut deleted = 0;
    for _ in 0..BATCHES_PER_RUN {
        match retention::sweep(db.conn(), batch).await {
            Ok(n) => {
                deleted += n;
                if n < batch {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "retention sweep failed; retrying at the next run");
                return (deleted, true);
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "lapsed sessions deleted");
    }
    (deleted, false)
}

/// Reclaims the chunks of due blob versions, a batch per transaction, while
/// any are due and for at most [`RECLAIM_PER_RUN`]; whether it failed.
async fn reclaim_blobs(db: &Database, metrics: &Metrics) -> bool {
    let started = Instant::now();
    let mut total = reclaim::Reclaimed::default();
    let mut failed = false;
    while started.elapsed() < RECLAIM_PER_RUN {
        match reclaim::reclaim(db.conn()).await {
            Ok(done) => {
                metrics.reclaimed(done.versions, done.bytes);
                total.versions += done.versions;
                total.bytes += done.bytes;
                if done.versions < reclaim::BATCH {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "reclaiming blob chunks failed; retrying at the next run");
                failed = true;
                break;
            }
        }
    }
    if total.versions > 0 {
        tracing::info!(versions = total.versions, bytes = total.bytes, "blob chunks reclaimed");
    }
    failed
}
