//! The sweeper: every `retention.sweep_interval_ms`, deletes lapsed
//! sessions in batches of `retention.sweep_batch` (one short statement
//! each) until none is left, then reclaims the chunks of blob versions
//! whose time has come ([`blobs::reclaim`]), counting runs, deletions and
//! reclaimed bytes. Safe with many replicas sweeping at once.

use std::{sync::Arc, time::Duration};

use crate::{
    config::RetentionConfig,
    db::Database,
    metrics::Metrics,
    store::{blobs::reclaim, retention},
};

/// Batches one run deletes at most, so a backlog is worked off over
/// several runs instead of holding the database busy.
const BATCHES_PER_RUN: usize = 100;

/// Starts the sweeper, unless it is turned off.
pub fn start(
    db: Database,
    config: &RetentionConfig,
    metrics: Arc<Metrics>,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.sweep_interval_ms == 0 {
        return None;
    }
    let (interval, batch) = (Duration::from_millis(config.sweep_interval_ms), config.sweep_batch);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (deleted, sessions_failed) = sweep_sessions(&db, batch).await;
            let reclaim_failed = reclaim_blobs(&db, &metrics).await;
            metrics.sweep_finished(deleted, sessions_failed || reclaim_failed);
        }
    }))
}

/// Deletes lapsed sessions; how many, and whether it failed.
async fn sweep_sessions(db: &Database, batch: u64) -> (u64, bool) {
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

/// Reclaims the chunks of due blob versions; whether it failed.
async fn reclaim_blobs(db: &Database, metrics: &Metrics) -> bool {
    let mut total = reclaim::Reclaimed::default();
    let mut failed = false;
    for _ in 0..BATCHES_PER_RUN {
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
