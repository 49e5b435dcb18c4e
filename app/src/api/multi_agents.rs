//! `/api/v1/sessions/{session_id}/multi-agents`: Graph and Swarm state.

use entity::multi_agent;
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
    fields::{Id, ObjectJson, Timestamp, json_text},
    listing,
    payload::{FIELDS, JsonBody, JsonSize, JsonStream},
    versioned::{self, Created, Current},
};
use crate::{
    api::AppState,
    auth::Tenant,
    store,
    store::{ChildKey, children, leases::Fence},
};

/// The state of a multi-agent orchestrator.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub struct MultiAgent {
    pub session_id: String,
    /// The orchestrator's id (`default_graph`, `default_swarm`, …).
    pub multi_agent_id: String,
    /// The orchestrator's `serialize_state()` object, opaque.
    pub state: ObjectJson,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn example_state() -> ObjectJson {
    ObjectJson(json_text(
        r#"{"type": "graph", "id": "default_graph", "status": "executing", "node_results": {}, "next_nodes_to_execute": ["research"]}"#,
    ))
}

impl Example for MultiAgent {
    fn example() -> Self {
        let at = Timestamp::example();
        Self {
            session_id: "chat-42".into(),
            multi_agent_id: "default_graph".into(),
            state: example_state(),
            created_at: at,
            updated_at: at,
        }
    }
}

impl From<multi_agent::Model> for MultiAgent {
    fn from(m: multi_agent::Model) -> Self {
        Self {
            state: ObjectJson(m.state),
            session_id: m.session_id,
            multi_agent_id: m.multi_agent_id,
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
        }
    }
}

/// Body of `POST …/multi-agents`.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct CreateMultiAgentRequest {
    pub multi_agent_id: Id,
    pub state: ObjectJson,
}

impl Example for CreateMultiAgentRequest {
    fn example() -> Self {
        Self { multi_agent_id: "default_graph".into(), state: example_state() }
    }
}

/// Body of `PUT …/multi-agents/{multi_agent_id}`.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct UpdateMultiAgentRequest {
    /// Replaces the stored state.
    pub state: ObjectJson,
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
enum Deleted {
    /// The state was deleted.
    #[oai(status = 204)]
    Deleted,
}

fn key<'a>(tenant: &'a Tenant, session_id: &'a Id, multi_agent_id: &'a Id) -> ChildKey<'a> {
    ChildKey { tenant: tenant.as_str(), session_id: session_id.as_str(), id: multi_agent_id.as_str() }
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
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        body: JsonBody<CreateMultiAgentRequest>,
    ) -> ApiResult<Created<MultiAgent>, MissingOrDuplicate> {
        let body = body.0;
        let key = key(&tenant, &session_id, &body.multi_agent_id);
        let model =
            store::multi_agents::create(state.db.conn(), key, body.state.0, Fence(lease_token.0)).await?;
        Ok(Created::of(model))
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
        tenant: Tenant,
        session_id: Path<Id>,
        multi_agent_id: Path<Id>,
    ) -> ApiResult<Current<MultiAgent>, Missing> {
        let key = key(&tenant, &session_id, &multi_agent_id);
        Ok(Current::of(children::get::<multi_agent::Entity>(state.db.conn(), key).await?))
    }

    /// Update a multi-agent state
    ///
    /// Never creates: a missing state is `404`, as in the SDK's own backends.
    /// With `If-Match`, only if the state is still at that version.
    #[oai(
        path = "/api/v1/sessions/:session_id/multi-agents/:multi_agent_id",
        method = "put",
        operation_id = "update_multi_agent"
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
        multi_agent_id: Path<Id>,
        /// An `ETag` this state answered with (or a list of them, or `*`): 412
        /// unless it is still current. An empty list names no tag and so
        /// matches nothing (RFC 9110): 412.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<UpdateMultiAgentRequest>,
    ) -> ApiResult<Current<MultiAgent>, MissingOrStale> {
        let key = key(&tenant, &session_id, &multi_agent_id);
        let expected = versioned::if_match(if_match.0.as_deref());
        let model = store::multi_agents::update(
            state.db.conn(),
            key,
            expected.as_deref(),
            body.0.state.0,
            Fence(lease_token.0),
        )
        .await?;
        Ok(Current::of(model))
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
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        multi_agent_id: Path<Id>,
    ) -> ApiResult<Deleted, MissingOrLeased> {
        let key = key(&tenant, &session_id, &multi_agent_id);
        children::delete::<multi_agent::Entity>(state.db.conn(), key, Fence(lease_token.0)).await?;
        Ok(Deleted::Deleted)
    }

    /// List a session's multi-agent states
    ///
    /// Oldest first. The page is written as its rows arrive.
    #[oai(
        path = "/api/v1/sessions/:session_id/multi-agents",
        method = "get",
        operation_id = "list_multi_agents"
    )]
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
        /// States per page, 1 to 1000.
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<JsonStream<MultiAgentList>, Missing> {
        let paging = Paging::new(page.0, page_size.0);
        let found = children::list::<multi_agent::Entity>(
            state.db.conn(),
            tenant.as_str(),
            session_id.as_str(),
            paging.offset(),
            paging.page_size,
        )
        .await?;
        let total = found.total;
        Ok(listing::write("multi_agents", found.into_stream(), MultiAgent::from, move |_| paging.tail(total)))
    }
}

impl JsonSize for MultiAgent {
    fn json_size(&self) -> usize {
        FIELDS + self.session_id.len() + self.multi_agent_id.len() + self.state.len()
    }
}
