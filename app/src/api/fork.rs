//! `POST /api/v1/sessions/{session_id}/fork`: a session copied under a new
//! id, optionally with one agent's history cut after a message.

use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Path, types::Example};
use serde::Deserialize;

use super::{
    ApiTags,
    errors::{ApiResult, Forking},
    fields::{Id, MessageId, Optional},
    payload::JsonBody,
    transfer::{CopyCreated, turn},
};
use crate::{
    api::AppState,
    auth::Tenant,
    error::Error,
    store::fork::{self, Copying, Cut, Fork, Forked},
};

/// Body of `POST /api/v1/sessions/{session_id}/fork`.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct ForkSessionRequest {
    /// The new session's id.
    pub session_id: Id,
    /// The agent whose history is cut; the other agents keep theirs whole.
    #[serde(default)]
    pub agent_id: Optional<Id>,
    /// With `agent_id`: the last of its messages the fork keeps.
    #[serde(default)]
    pub up_to_message_id: Optional<MessageId>,
}

impl Example for ForkSessionRequest {
    fn example() -> Self {
        Self {
            session_id: "chat-42-retry".into(),
            agent_id: Optional::Value("default".into()),
            up_to_message_id: Optional::Value(MessageId(3)),
        }
    }
}

/// Where forks are made.
pub const PATH: &str = "/api/v1/sessions/:session_id/fork";

/// Forking sessions.
pub struct ForkApi;

#[OpenApi(tag = "ApiTags::Sessions")]
impl ForkApi {
    /// Fork a session
    ///
    /// A copy of the session under a new id: its agents with their
    /// messages and its multi-agent states, copied in one transaction from
    /// one snapshot of the source, and its snapshot blobs (the keys under
    /// `session/<id>/`), read from one snapshot, staged and switched in by
    /// that transaction. With `agent_id` and `up_to_message_id`, that
    /// agent keeps only its messages up to that id, and its
    /// conversation-manager state restores all of them
    /// (`removed_message_count` 0, no `summary_message`). The fork has no
    /// lease and the source's time to live, counted from now. A session
    /// kept only as blobs (the SDK's `SnapshotSessionManager`) forks into
    /// one kept only as blobs: the answer is its id and blob count, with
    /// no `ETag`. `404` when the source has neither a row nor a blob (or
    /// its row is deleted while its blobs are copied), `409` when the new
    /// id is taken (a row, or a blob under its prefix), `503` when the
    /// blobs take longer than `storage.transfer_timeout_ms` to copy.
    #[oai(path = "/api/v1/sessions/:session_id/fork", method = "post", operation_id = "fork_session")]
    async fn fork(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
        body: JsonBody<ForkSessionRequest>,
    ) -> ApiResult<CopyCreated, Forking> {
        let body = body.0;
        let (agent_id, up_to) = (body.agent_id.into_option(), body.up_to_message_id.into_option());
        let cut = match (&agent_id, up_to) {
            (Some(agent_id), Some(up_to)) => {
                Some(Cut { agent_id: agent_id.as_str(), up_to_message_id: up_to.0 })
            }
            (None, None) => None,
            _ => {
                return Err(Error::Validation(
                    "`agent_id` and `up_to_message_id` go together: send both to cut a history, or neither"
                        .into(),
                )
                .into());
            }
        };
        let target = body.session_id.into_string();
        let fork = Fork { tenant: tenant.as_str(), source: session_id.as_str(), target: &target, cut };
        let copying = Copying { index_bytes: state.storage.search_index_bytes, timing: state.blob_timing };
        // Two shares: on PostgreSQL the switch looks outside its
        // transaction on a second connection.
        let _turn = turn(&state, 2).await?;
        let forked = fork::fork(state.db.conn(), fork, copying).await?;
        tracing::info!(
            audit = "fork",
            tenant = tenant.as_str(),
            session_id = session_id.as_str(),
            fork = target.as_str(),
            "session forked"
        );
        Ok(match forked {
            Forked::Session(session) => CopyCreated::session(session),
            Forked::Blobs(blobs) => CopyCreated::blobs(target, blobs),
        })
    }
}
