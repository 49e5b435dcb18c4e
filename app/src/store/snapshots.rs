//! Snapshot sessions: the SDK's `SnapshotSessionManager` keeps a session
//! only as blobs under `session/<id>/` (its agents' and orchestrators'
//! snapshots and their `immutable_history/`), with no session row. What
//! is done to a session is done to those blobs too.

use super::blobs::{self, Timing};
use crate::{db::Conn, error::Error};

/// The blob prefix of session `session_id`'s snapshots.
pub fn prefix(session_id: &str) -> String {
    format!("session/{session_id}/")
}

/// Deletes the snapshot blobs of session `session_id`; how many.
pub async fn delete(db: &Conn, tenant: &str, session_id: &str, timing: Timing) -> Result<u64, Error> {
    blobs::delete_prefix(db, tenant, &prefix(session_id), timing).await
}
