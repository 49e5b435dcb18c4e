//! The HTTP API: one `OpenApi` struct per resource, DTOs with explicit
//! names, typed responses. Handlers check input, call the store, translate.

mod agents;
pub mod errors;
mod health;
pub mod input;
mod messages;
mod multi_agents;
mod sessions;
mod text;

use poem_openapi::{OpenApiService, Tags};

use crate::VERSION;

/// Groups of operations in the document.
#[derive(Tags)]
pub enum ApiTags {
    /// Conversation sessions: the root of everything else.
    Sessions,
    /// Agents of a session: state, conversation-manager state, internal state.
    Agents,
    /// An agent's messages, keyed by the client's 0-based index.
    Messages,
    /// Multi-agent orchestrator state (Graph, Swarm).
    #[oai(rename = "Multi-agents")]
    MultiAgents,
    /// Probes and counters; never behind authentication.
    Health,
}

/// Every API of the service.
pub type Apis = (
    sessions::SessionsApi,
    agents::AgentsApi,
    messages::MessagesApi,
    multi_agents::MultiAgentsApi,
    health::HealthApi,
);

/// The OpenAPI service: routes plus the document they are described by.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            sessions::SessionsApi,
            agents::AgentsApi,
            messages::MessagesApi,
            multi_agents::MultiAgentsApi,
            health::HealthApi,
        ),
        "Session Backend",
        VERSION,
    )
    .description(
        "Storage for Strands agent sessions: sessions, agents, messages and multi-agent \
         state. Drop-in for the earlier Python Session Backend API. Every error body is \
         `{\"detail\": {\"error\", \"message\", \"request_id\"}}`; every response carries \
         `X-Request-Id`. Ids are percent-encoded in paths.",
    )
}

/// Page-style paging (`page` from 1, `page_size`).
#[derive(Clone, Copy, Debug)]
struct Paging {
    page: u64,
    page_size: u64,
}

impl Paging {
    fn new(page: u64, page_size: u64) -> Self {
        Self { page, page_size }
    }

    fn offset(self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.page_size)
    }
}

fn default_page() -> u64 {
    1
}

fn default_page_size() -> u64 {
    10
}
