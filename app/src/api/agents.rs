//! `/api/v1/sessions/{session_id}/agents`: agent state.

use entity::agent;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    types::Example,
};
use serde::{Deserialize, Serialize};

use super::{
    ApiTags, Paging,
    errors::{ApiResult, Missing, MissingOrDuplicate, MissingOrLeased, MissingOrStale},
    fields::{Id, ObjectJson, Optional, Timestamp, json_text},
    listing,
    payload::{FIELDS, JsonBody, JsonSize, JsonStream},
    versioned::{self, Created, Current},
};
use crate::{
    api::AppState,
    auth::Tenant,
    store,
    store::{
        ChildKey,
        agents::{AgentChanges, NewAgent},
        children,
        leases::Fence,
    },
};

/// An agent of a session.
///
/// `_internal_state` is the SDK's name (`SessionAgent.to_dict()`) and
/// `internal_state` the earlier service's name for the same object; both
/// are returned.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub struct Agent {
    pub session_id: String,
    pub agent_id: String,
    /// The agent's state (opaque JSON object).
    pub state: ObjectJson,
    /// The conversation manager's state (`__name__`, `removed_message_count`, …).
    pub conversation_manager_state: ObjectJson,
    /// The SDK's internal state (interrupts, model state, …).
    #[oai(rename = "_internal_state")]
    #[serde(rename = "_internal_state")]
    pub underscore_internal_state: ObjectJson,
    /// Same object as `_internal_state`, under the earlier service's name.
    pub internal_state: ObjectJson,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn example_state() -> (ObjectJson, ObjectJson, ObjectJson) {
    (
        ObjectJson(json_text(r#"{"preferences": {"units": "metric"}}"#)),
        ObjectJson(json_text(
            r#"{"__name__": "SlidingWindowConversationManager", "removed_message_count": 0}"#,
        )),
        ObjectJson(json_text(r#"{"interrupt_state": {"activated": false}}"#)),
    )
}

impl Example for Agent {
    fn example() -> Self {
        let (state, conversation_manager_state, internal_state) = example_state();
        let at = Timestamp::example();
        Self {
            session_id: "chat-42".into(),
            agent_id: "default".into(),
            state,
            conversation_manager_state,
            underscore_internal_state: internal_state.clone(),
            internal_state,
            created_at: at,
            updated_at: at,
        }
    }
}

impl From<agent::Model> for Agent {
    fn from(m: agent::Model) -> Self {
        Self {
            state: ObjectJson(m.state),
            conversation_manager_state: ObjectJson(m.conversation_manager_state),
            underscore_internal_state: ObjectJson(m.internal_state.clone()),
            internal_state: ObjectJson(m.internal_state),
            session_id: m.session_id,
            agent_id: m.agent_id,
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
        }
    }
}

/// Body of `POST …/agents` (the SDK's `SessionAgent.to_dict()`).
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct CreateAgentRequest {
    pub agent_id: Id,
    pub state: ObjectJson,
    pub conversation_manager_state: ObjectJson,
    /// The SDK's internal state; wins over `internal_state`. Default `{}`.
    #[oai(rename = "_internal_state")]
    #[serde(rename = "_internal_state", default)]
    pub underscore_internal_state: Optional<ObjectJson>,
    /// The earlier service's name for `_internal_state`.
    #[serde(default)]
    pub internal_state: Optional<ObjectJson>,
    /// Kept when given.
    #[serde(default)]
    pub created_at: Optional<Timestamp>,
    /// Kept when given.
    #[serde(default)]
    pub updated_at: Optional<Timestamp>,
}

impl Example for CreateAgentRequest {
    fn example() -> Self {
        let (state, conversation_manager_state, internal_state) = example_state();
        Self {
            agent_id: "default".into(),
            state,
            conversation_manager_state,
            underscore_internal_state: Optional::Value(internal_state),
            internal_state: Optional::Absent,
            created_at: Optional::Value(Timestamp::example()),
            updated_at: Optional::Value(Timestamp::example()),
        }
    }
}

/// Body of `PUT …/agents/{agent_id}`: fields not sent are kept, unknown
/// fields are ignored (the SDK sends its whole `SessionAgent`).
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct UpdateAgentRequest {
    #[serde(default)]
    pub state: Optional<ObjectJson>,
    #[serde(default)]
    pub conversation_manager_state: Optional<ObjectJson>,
    /// Wins over `internal_state` when both are sent.
    #[oai(rename = "_internal_state")]
    #[serde(rename = "_internal_state", default)]
    pub underscore_internal_state: Optional<ObjectJson>,
    #[serde(default)]
    pub internal_state: Optional<ObjectJson>,
}

impl Example for UpdateAgentRequest {
    fn example() -> Self {
        let (state, conversation_manager_state, internal_state) = example_state();
        Self {
            state: Optional::Value(state),
            conversation_manager_state: Optional::Value(conversation_manager_state),
            underscore_internal_state: Optional::Value(internal_state),
            internal_state: Optional::Absent,
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
enum Deleted {
    /// The agent and its messages were deleted.
    #[oai(status = 204)]
    Deleted,
}

fn key<'a>(tenant: &'a Tenant, session_id: &'a Id, agent_id: &'a Id) -> ChildKey<'a> {
    ChildKey { tenant: tenant.as_str(), session_id: session_id.as_str(), id: agent_id.as_str() }
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
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        body: JsonBody<CreateAgentRequest>,
    ) -> ApiResult<Created<Agent>, MissingOrDuplicate> {
        let body = body.0;
        let internal = body.underscore_internal_state.into_option().or(body.internal_state.into_option());
        let new = NewAgent {
            state: body.state.0,
            conversation_manager_state: body.conversation_manager_state.0,
            internal_state: internal.unwrap_or_else(ObjectJson::empty).0,
            created_at: body.created_at.into_option().map(|t| t.0),
            updated_at: body.updated_at.into_option().map(|t| t.0),
        };
        let model = store::agents::create(
            state.db.conn(),
            key(&tenant, &session_id, &body.agent_id),
            new,
            Fence(lease_token.0),
        )
        .await?;
        Ok(Created::of(model))
    }

    /// Read an agent
    #[oai(path = "/api/v1/sessions/:session_id/agents/:agent_id", method = "get", operation_id = "get_agent")]
    async fn get(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
        agent_id: Path<Id>,
    ) -> ApiResult<Current<Agent>, Missing> {
        let model =
            children::get::<agent::Entity>(state.db.conn(), key(&tenant, &session_id, &agent_id)).await?;
        Ok(Current::of(model))
    }

    /// Update an agent
    ///
    /// Any of `state`, `conversation_manager_state`, `_internal_state` /
    /// `internal_state`; fields not sent are kept, unknown fields ignored.
    /// With `If-Match`, only if the agent is still at that version.
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id",
        method = "put",
        operation_id = "update_agent"
    )]
    #[expect(clippy::too_many_arguments, reason = "poem-openapi takes each part of a request as an argument")]
    async fn update(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        agent_id: Path<Id>,
        /// An `ETag` this agent answered with (or a list of them, or `*`): 412
        /// unless it is still current. An empty list names no tag and so
        /// matches nothing (RFC 9110): 412.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<UpdateAgentRequest>,
    ) -> ApiResult<Current<Agent>, MissingOrStale> {
        let body = body.0;
        let changes = AgentChanges {
            state: body.state.into_option().map(|s| s.0),
            conversation_manager_state: body.conversation_manager_state.into_option().map(|s| s.0),
            internal_state: body
                .underscore_internal_state
                .into_option()
                .or(body.internal_state.into_option())
                .map(|s| s.0),
        };
        let expected = versioned::if_match(if_match.0.as_deref());
        let key = key(&tenant, &session_id, &agent_id);
        let model =
            store::agents::update(state.db.conn(), key, expected.as_deref(), changes, Fence(lease_token.0))
                .await?;
        Ok(Current::of(model))
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
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        agent_id: Path<Id>,
    ) -> ApiResult<Deleted, MissingOrLeased> {
        let key = key(&tenant, &session_id, &agent_id);
        children::delete::<agent::Entity>(state.db.conn(), key, Fence(lease_token.0)).await?;
        Ok(Deleted::Deleted)
    }

    /// List a session's agents
    ///
    /// Oldest first. The page is written as its rows arrive.
    #[oai(path = "/api/v1/sessions/:session_id/agents", method = "get", operation_id = "list_agents")]
    async fn list(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
        /// Page number, from 1.
        #[oai(
            default = "super::default_page",
            validator(minimum(value = "1"), maximum(value = "2147483647"))
        )]
        page: Query<u64>,
        /// Agents per page, 1 to 1000.
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<JsonStream<AgentList>, Missing> {
        let paging = Paging::new(page.0, page_size.0);
        let found = children::list::<agent::Entity>(
            state.db.conn(),
            tenant.as_str(),
            session_id.as_str(),
            paging.offset(),
            paging.page_size,
        )
        .await?;
        let total = found.total;
        Ok(listing::write("agents", found.into_stream(), Agent::from, move |_| paging.tail(total)))
    }
}

impl JsonSize for Agent {
    fn json_size(&self) -> usize {
        FIELDS
            + self.session_id.len()
            + self.agent_id.len()
            + self.state.len()
            + self.conversation_manager_state.len()
            + 2 * self.internal_state.len()
    }
}
