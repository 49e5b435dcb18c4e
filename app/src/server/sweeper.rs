//! The retention sweeper: every `retention.sweep_interval_ms`, deletes
//! lapsed sessions in batches of `retention.sweep_batch` (one short
//! statement each) until none is left, counting runs and deletions.
//! Safe with many replicas sweeping at once (see [`retention::sweep`]).

use std::{sync::Arc, time::Duration};

use crate::{config::RetentionConfig, db::Database, metrics::Metrics, store::retention};

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
            let mut deleted = 0;
            let mut failed = false;
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
                        failed = true;
                        break;
                    }
                }
            }
            metrics.sweep_finished(deleted, failed);
            if deleted > 0 {
                tracing::info!(deleted, "lapsed sessions deleted");
            }
        }
    }))
}
