//! `/api/v1/sessions/{session_id}/multi-agents`: Graph and Swarm state.

use entity::multi_agent;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::Example,
};
use serde_json::json;

use super::{
    ApiTags, Paging,
    errors::{ApiResult, Missing, MissingOrDuplicate, MissingWithBody},
    input::{self, JsonObject},
    text::Text,
};
use crate::{AppState, error::Error, store};

/// The state of a multi-agent orchestrator.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MultiAgent {
    pub session_id: String,
    /// The orchestrator's id (`default_graph`, `default_swarm`, …).
    pub multi_agent_id: String,
    /// The orchestrator's `serialize_state()` object, opaque.
    pub state: JsonObject,
    pub created_at: String,
    pub updated_at: String,
}

fn example_state() -> JsonObject {
    JsonObject::from([
        ("type".to_owned(), json!("graph")),
        ("id".to_owned(), json!("default_graph")),
        ("status".to_owned(), json!("executing")),
        ("node_results".to_owned(), json!({})),
        ("next_nodes_to_execute".to_owned(), json!(["research"])),
    ])
}

impl Example for MultiAgent {
    fn example() -> Self {
        Self {
            session_id: "chat-42".into(),
            multi_agent_id: "default_graph".into(),
            state: example_state(),
            created_at: "2026-11-21T10:00:00.123456+00:00".into(),
            updated_at: "2026-11-21T10:00:00.123456+00:00".into(),
        }
    }
}

impl TryFrom<multi_agent::Model> for MultiAgent {
    type Error = Error;
    fn try_from(m: multi_agent::Model) -> Result<Self, Error> {
        Ok(Self {
            state: input::object(&m.state)?,
            session_id: m.session_id,
            multi_agent_id: m.multi_agent_id,
            created_at: input::format_timestamp(m.created_at),
            updated_at: input::format_timestamp(m.updated_at),
        })
    }
}

/// Body of `POST …/multi-agents`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateMultiAgentRequest {
    /// 1 to 255 bytes; no `/`, `\` or control characters; not `.` or `..`.
    pub multi_agent_id: Text,
    pub state: JsonObject,
}

impl Example for CreateMultiAgentRequest {
    fn example() -> Self {
        Self { multi_agent_id: "default_graph".into(), state: example_state() }
    }
}

/// Body of `PUT …/multi-agents/{multi_agent_id}`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateMultiAgentRequest {
    /// Replaces the stored state.
    pub state: JsonObject,
}

impl Example for UpdateMultiAgentRequest {
    fn example() -> Self {
        Self { state: example_state() }
    }
}

/// One page of a session's multi-agent states, oldest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MultiAgentList {
    pub multi_agents: Vec<MultiAgent>,
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
}

impl Example for MultiAgentList {
    fn example() -> Self {
        Self { multi_agents: vec![MultiAgent::example()], total: 1, page: 1, page_size: 10 }
    }
}

#[derive(ApiResponse)]
enum Created {
    /// The state was stored.
    #[oai(status = 201)]
    Created(Json<MultiAgent>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The state was deleted.
    #[oai(status = 204)]
    Deleted,
}

/// Multi-agent state operations.
pub struct MultiAgentsApi;

#[OpenApi(tag = "ApiTags::MultiAgents")]
impl MultiAgentsApi {
    /// Create a multi-agent state
    #[oai(
        path = "/api/v1/sessions/:session_id/multi-agents",
        method = "post",
        operation_id = "create_multi_agent"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        body: Json<CreateMultiAgentRequest>,
    ) -> ApiResult<Created, MissingOrDuplicate> {
        let session_id = input::id("session_id", &session_id)?;
        let multi_agent_id = input::id("multi_agent_id", &body.multi_agent_id)?.to_owned();
        let model = store::multi_agents::create(
            state.db.conn(),
            state.tenant(),
            session_id,
            multi_agent_id,
            input::to_text(&body.0.state),
        )
        .await?;
        Ok(Created::Created(Json(model.try_into()?)))
    }

    /// Read a multi-agent state
    #[oai(
        path = "/api/v1/sessions/:session_id/multi-agents/:multi_agent_id",
        method = "get",
        operation_id = "get_multi_agent"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        multi_agent_id: Path<String>,
    ) -> ApiResult<Json<MultiAgent>, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        let multi_agent_id = input::id("multi_agent_id", &multi_agent_id)?;
        let model =
            store::multi_agents::get(state.db.conn(), state.tenant(), session_id, multi_agent_id).await?;
        Ok(Json(model.try_into()?))
    }

    /// Update a multi-agent state
    ///
    /// Never creates: a missing state is `404`, as in the SDK's own backends.
    #[oai(
        path = "/api/v1/sessions/:session_id/multi-agents/:multi_agent_id",
        method = "put",
        operation_id = "update_multi_agent"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        multi_agent_id: Path<String>,
        body: Json<UpdateMultiAgentRequest>,
    ) -> ApiResult<Json<MultiAgent>, MissingWithBody> {
        let session_id = input::id("session_id", &session_id)?;
        let multi_agent_id = input::id("multi_agent_id", &multi_agent_id)?;
        let model = store::multi_agents::update(
            state.db.conn(),
            state.tenant(),
            session_id,
            multi_agent_id,
            input::to_text(&body.0.state),
        )
        .await?;
        Ok(Json(model.try_into()?))
    }

    /// Delete a multi-agent state
    #[oai(
        path = "/api/v1/sessions/:session_id/multi-agents/:multi_agent_id",
        method = "delete",
        operation_id = "delete_multi_agent"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        multi_agent_id: Path<String>,
    ) -> ApiResult<Deleted, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        let multi_agent_id = input::id("multi_agent_id", &multi_agent_id)?;
        store::multi_agents::delete(state.db.conn(), state.tenant(), session_id, multi_agent_id).await?;
        Ok(Deleted::Deleted)
    }

    /// List a session's multi-agent states
    ///
    /// Oldest first.
    #[oai(
        path = "/api/v1/sessions/:session_id/multi-agents",
        method = "get",
        operation_id = "list_multi_agents"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        /// Page number, from 1.
        #[oai(default = "super::default_page", validator(minimum(value = "1")))]
        page: Query<u64>,
        /// States per page, 1 to 1000.
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<Json<MultiAgentList>, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        let paging = Paging::new(page.0, page_size.0);
        let found = store::multi_agents::list(
            state.db.conn(),
            state.tenant(),
            session_id,
            paging.offset(),
            paging.page_size,
        )
        .await?;
        Ok(Json(MultiAgentList {
            multi_agents: found.items.into_iter().map(MultiAgent::try_from).collect::<Result<_, _>>()?,
            total: found.total,
            page: paging.page,
            page_size: paging.page_size,
        }))
    }
}
