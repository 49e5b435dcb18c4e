//! The sweeper: every `retention.sweep_interval_ms`, deletes lapsed
//! sessions in batches of `retention.sweep_batch` (one short statement
//! each) until none is left, with their snapshot blobs; then, when
//! configured, idle snapshot sessions and old snapshot history
//! ([`snapshots`]); then reclaims the chunks of blob versions whose time
//! has come ([`reclaim`]), counting runs, deletions and reclaimed bytes.
//! With the interval at 0 nothing is swept, but chunks are still
//! reclaimed, every minute. Safe with many replicas sweeping at once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    config::{Config, RetentionConfig},
    db::Database,
    metrics::Metrics,
    store::{
        blobs::{Timing, reclaim},
        retention, snapshots,
    },
};

/// Batches of sessions one run deletes at most, so a backlog is worked off
/// over several runs instead of holding the database busy.
const BATCHES_PER_RUN: usize = 100;

/// How long one run may keep reclaiming chunks while versions are due.
const RECLAIM_PER_RUN: Duration = Duration::from_secs(5);

/// How often chunks are reclaimed when sessions are not swept.
const RECLAIM_ONLY_INTERVAL: Duration = Duration::from_secs(60);

/// Starts the sweeper.
pub fn start(db: Database, config: &Config, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    let retention = config.retention.clone();
    let timing = Timing::of(config);
    let sweep = retention.sweep_interval_ms > 0;
    let interval =
        if sweep { Duration::from_millis(retention.sweep_interval_ms) } else { RECLAIM_ONLY_INTERVAL };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (deleted, failed) =
                if sweep { sweep_once(&db, &retention, timing).await } else { (0, false) };
            let reclaim_failed = reclaim_blobs(&db, &metrics).await;
            metrics.sweep_finished(deleted, failed || reclaim_failed);
        }
    })
}

/// Deletes lapsed sessions (with their snapshot blobs), then idle snapshot
/// sessions and old snapshot history as configured; how many sessions,
/// and whether any step failed.
async fn sweep_once(db: &Database, retention: &RetentionConfig, timing: Timing) -> (u64, bool) {
    let (mut deleted, mut failed) = sweep_sessions_once(db, retention.sweep_batch, timing).await;
    let cutoff = |seconds: u64| {
        let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
        crate::store::now() - chrono::TimeDelta::try_seconds(seconds).unwrap_or(chrono::TimeDelta::MAX)
    };
    if retention.snapshot_ttl_seconds > 0 {
        let cutoff = cutoff(retention.snapshot_ttl_seconds);
        let idle = snapshots::expire_idle(db.conn(), cutoff, retention.sweep_batch, BATCHES_PER_RUN, timing);
        let (n, problem) = counted(idle.await, "idle snapshot sessions");
        deleted += n;
        failed |= problem;
    }
    if retention.snapshot_history_ttl_seconds > 0 {
        let cutoff = cutoff(retention.snapshot_history_ttl_seconds);
        let old =
            snapshots::expire_history(db.conn(), cutoff, retention.sweep_batch, BATCHES_PER_RUN, timing);
        failed |= counted(old.await, "old snapshot history").1;
    }
    (deleted, failed)
}

/// How many `what` a step deleted (logged when any), and whether it failed.
fn counted(result: Result<u64, crate::error::Error>, what: &str) -> (u64, bool) {
    match result {
        Ok(0) => (0, false),
        Ok(n) => {
            tracing::info!(deleted = n, "{what} deleted");
            (n, false)
        }
        Err(err) => {
            tracing::warn!(error = %err, "deleting {what} failed; retrying at the next run");
            (0, true)
        }
    }
}

/// Deletes lapsed sessions and then their snapshot blobs; how many, and
/// whether it failed.
async fn sweep_sessions_once(db: &Database, batch: u64, timing: Timing) -> (u64, bool) {
    let mut deleted = 0;
    for _ in 0..BATCHES_PER_RUN {
        // Blobs written from now on belong to a new session of the same id.
        let since = crate::store::now();
        let swept = match retention::sweep(db.conn(), batch).await {
            Ok(swept) => swept,
            Err(err) => {
                tracing::warn!(error = %err, "retention sweep failed; retrying at the next run");
                return (deleted, true);
            }
        };
        deleted += swept.len() as u64;
        for (tenant, session_id) in &swept {
            if let Err(err) = snapshots::delete_lapsed(db.conn(), tenant, session_id, since, timing).await {
                tracing::warn!(error = %err, "deleting a lapsed session's snapshots failed; idle-snapshot retention or a delete removes them");
            }
        }
        if (swept.len() as u64) < batch {
            break;
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
