//! `/api/v1/sessions/{session_id}/agents`: agent state.

use entity::agent;
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
use crate::{
    AppState,
    error::Error,
    store,
    store::agents::{AgentChanges, NewAgent},
};

/// An agent of a session.
///
/// `_internal_state` is the SDK's name (`SessionAgent.to_dict()`) and
/// `internal_state` the earlier service's name for the same object; both
/// are returned.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Agent {
    pub session_id: String,
    pub agent_id: String,
    /// The agent's state (opaque JSON object).
    pub state: JsonObject,
    /// The conversation manager's state (`__name__`, `removed_message_count`, …).
    pub conversation_manager_state: JsonObject,
    /// The SDK's internal state (interrupts, model state, …).
    #[oai(rename = "_internal_state")]
    pub underscore_internal_state: JsonObject,
    /// Same object as `_internal_state`, under the earlier service's name.
    pub internal_state: JsonObject,
    pub created_at: String,
    pub updated_at: String,
}

fn example_state() -> (JsonObject, JsonObject, JsonObject) {
    (
        JsonObject::from([("preferences".to_owned(), json!({"units": "metric"}))]),
        JsonObject::from([
            ("__name__".to_owned(), json!("SlidingWindowConversationManager")),
            ("removed_message_count".to_owned(), json!(0)),
        ]),
        JsonObject::from([("interrupt_state".to_owned(), json!({"activated": false}))]),
    )
}

impl Example for Agent {
    fn example() -> Self {
        let (state, conversation_manager_state, internal_state) = example_state();
        Self {
            session_id: "chat-42".into(),
            agent_id: "default".into(),
            state,
            conversation_manager_state,
            underscore_internal_state: internal_state.clone(),
            internal_state,
            created_at: "2026-11-21T10:00:00.123456+00:00".into(),
            updated_at: "2026-11-21T10:00:00.123456+00:00".into(),
        }
    }
}

impl TryFrom<agent::Model> for Agent {
    type Error = Error;
    fn try_from(m: agent::Model) -> Result<Self, Error> {
        let internal_state = input::object(&m.internal_state)?;
        Ok(Self {
            state: input::object(&m.state)?,
            conversation_manager_state: input::object(&m.conversation_manager_state)?,
            underscore_internal_state: internal_state.clone(),
            internal_state,
            session_id: m.session_id,
            agent_id: m.agent_id,
            created_at: input::format_timestamp(m.created_at),
            updated_at: input::format_timestamp(m.updated_at),
        })
    }
}

/// Body of `POST …/agents` (the SDK's `SessionAgent.to_dict()`).
#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateAgentRequest {
    /// 1 to 255 bytes; no `/`, `\` or control characters; not `.` or `..`.
    pub agent_id: Text,
    pub state: JsonObject,
    pub conversation_manager_state: JsonObject,
    /// The SDK's internal state; wins over `internal_state`. Default `{}`.
    #[oai(rename = "_internal_state")]
    pub underscore_internal_state: Option<JsonObject>,
    /// The earlier service's name for `_internal_state`.
    pub internal_state: Option<JsonObject>,
    /// Kept when given; RFC 3339 with offset.
    pub created_at: Option<Text>,
    /// Kept when given; RFC 3339 with offset.
    pub updated_at: Option<Text>,
}

impl Example for CreateAgentRequest {
    fn example() -> Self {
        let (state, conversation_manager_state, internal_state) = example_state();
        Self {
            agent_id: "default".into(),
            state,
            conversation_manager_state,
            underscore_internal_state: Some(internal_state),
            internal_state: None,
            created_at: Some("2026-11-21T10:00:00.123456+00:00".into()),
            updated_at: Some("2026-11-21T10:00:00.123456+00:00".into()),
        }
    }
}

/// Body of `PUT …/agents/{agent_id}`: fields not sent are kept, unknown
/// fields are ignored (the SDK sends its whole `SessionAgent`).
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateAgentRequest {
    pub state: Option<JsonObject>,
    pub conversation_manager_state: Option<JsonObject>,
    /// Wins over `internal_state` when both are sent.
    #[oai(rename = "_internal_state")]
    pub underscore_internal_state: Option<JsonObject>,
    pub internal_state: Option<JsonObject>,
}

impl Example for UpdateAgentRequest {
    fn example() -> Self {
        let (state, conversation_manager_state, internal_state) = example_state();
        Self {
            state: Some(state),
            conversation_manager_state: Some(conversation_manager_state),
            underscore_internal_state: Some(internal_state),
            internal_state: None,
        }
    }
}

/// One page of a session's agents, oldest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AgentList {
    pub agents: Vec<Agent>,
    /// All agents of the session.
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
}

impl Example for AgentList {
    fn example() -> Self {
        Self { agents: vec![Agent::example()], total: 1, page: 1, page_size: 10 }
    }
}

#[derive(ApiResponse)]
enum Created {
    /// The agent was created.
    #[oai(status = 201)]
    Created(Json<Agent>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The agent and its messages were deleted.
    #[oai(status = 204)]
    Deleted,
}

/// Agent operations.
pub struct AgentsApi;

#[OpenApi(tag = "ApiTags::Agents")]
impl AgentsApi {
    /// Create an agent
    #[oai(path = "/api/v1/sessions/:session_id/agents", method = "post", operation_id = "create_agent")]
    async fn create(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        body: Json<CreateAgentRequest>,
    ) -> ApiResult<Created, MissingOrDuplicate> {
        let session_id = input::id("session_id", &session_id)?;
        let body = body.0;
        let internal = body.underscore_internal_state.or(body.internal_state).unwrap_or_default();
        let new = NewAgent {
            agent_id: input::id("agent_id", &body.agent_id)?.to_owned(),
            state: input::to_text(&body.state),
            conversation_manager_state: input::to_text(&body.conversation_manager_state),
            internal_state: input::to_text(&internal),
            created_at: input::timestamp("created_at", body.created_at.as_deref())?,
            updated_at: input::timestamp("updated_at", body.updated_at.as_deref())?,
        };
        let model = store::agents::create(state.db.conn(), state.tenant(), session_id, new).await?;
        Ok(Created::Created(Json(model.try_into()?)))
    }

    /// Read an agent
    #[oai(path = "/api/v1/sessions/:session_id/agents/:agent_id", method = "get", operation_id = "get_agent")]
    async fn get(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
    ) -> ApiResult<Json<Agent>, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        let agent_id = input::id("agent_id", &agent_id)?;
        let model = store::agents::get(state.db.conn(), state.tenant(), session_id, agent_id).await?;
        Ok(Json(model.try_into()?))
    }

    /// Update an agent
    ///
    /// Any of `state`, `conversation_manager_state`, `_internal_state` /
    /// `internal_state`; fields not sent are kept, unknown fields ignored.
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id",
        method = "put",
        operation_id = "update_agent"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
        body: Json<UpdateAgentRequest>,
    ) -> ApiResult<Json<Agent>, MissingWithBody> {
        let session_id = input::id("session_id", &session_id)?;
        let agent_id = input::id("agent_id", &agent_id)?;
        let body = body.0;
        let changes = AgentChanges {
            state: body.state.as_ref().map(input::to_text),
            conversation_manager_state: body.conversation_manager_state.as_ref().map(input::to_text),
            internal_state: body
                .underscore_internal_state
                .or(body.internal_state)
                .as_ref()
                .map(input::to_text),
        };
        let model =
            store::agents::update(state.db.conn(), state.tenant(), session_id, agent_id, changes).await?;
        Ok(Json(model.try_into()?))
    }

    /// Delete an agent
    ///
    /// Its messages go with it.
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id",
        method = "delete",
        operation_id = "delete_agent"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
    ) -> ApiResult<Deleted, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        let agent_id = input::id("agent_id", &agent_id)?;
        store::agents::delete(state.db.conn(), state.tenant(), session_id, agent_id).await?;
        Ok(Deleted::Deleted)
    }

    /// List a session's agents
    ///
    /// Oldest first.
    #[oai(path = "/api/v1/sessions/:session_id/agents", method = "get", operation_id = "list_agents")]
    async fn list(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        /// Page number, from 1.
        #[oai(default = "super::default_page", validator(minimum(value = "1")))]
        page: Query<u64>,
        /// Agents per page, 1 to 1000.
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<Json<AgentList>, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        let paging = Paging::new(page.0, page_size.0);
        let found = store::agents::list(
            state.db.conn(),
            state.tenant(),
            session_id,
            paging.offset(),
            paging.page_size,
        )
        .await?;
        Ok(Json(AgentList {
            agents: found.items.into_iter().map(Agent::try_from).collect::<Result<_, _>>()?,
            total: found.total,
            page: paging.page,
            page_size: paging.page_size,
        }))
    }
}
