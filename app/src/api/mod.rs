//! The HTTP API: one `OpenApi` struct per resource, DTOs with explicit
//! names, typed responses. Handlers read their input through the types of
//! [`fields`] (which carry the contract's rules), call the store, translate.

mod agents;
mod document;
mod errors;
mod fields;
mod health;
mod listing;
mod messages;
mod multi_agents;
mod payload;
mod sessions;
mod storage;
pub(crate) mod validate;
mod versioned;

use poem::http::Method;
use poem_openapi::{OpenApiService, Tags};

pub use self::document::{document, endpoint as document_endpoint, swagger_ui};
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
    /// Byte values under keys, for the SDK's `Storage` (snapshots).
    Storage,
    /// Probes and counters; never behind authentication.
    Health,
}

/// Every API of the service.
pub type Apis = (
    sessions::SessionsApi,
    agents::AgentsApi,
    messages::MessagesApi,
    multi_agents::MultiAgentsApi,
    storage::StorageApi,
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
            storage::StorageApi,
            health::HealthApi,
        ),
        "Session Backend",
        VERSION,
    )
    .description(
        "Storage for Strands agent sessions: sessions, agents, messages and multi-agent \
         state. Drop-in for the earlier Python Session Backend API. Every error body is \
         `{\"detail\": {\"error\", \"message\", \"request_id\"}}`; every response carries \
         `X-Request-Id`. Ids are percent-encoded in paths. Request bodies are JSON \
         (`Content-Type: application/json`, or none); optional fields may be left out \
         or sent as `null`.",
    )
}

/// Page-style paging (`page` from 1, `page_size`), both bounded by the
/// document, so their product always fits the database's integers.
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

    fn tail(self, total: u64) -> listing::PageTail {
        listing::PageTail { total, page: self.page, page_size: self.page_size }
    }
}

fn default_page() -> u64 {
    1
}

fn default_page_size() -> u64 {
    10
}

/// The paths of the document (and the few outside it) with the methods
/// each allows: for `Allow` headers and the route label of metrics.
#[derive(Clone, Debug)]
pub struct Routes(Vec<Route>);

#[derive(Clone, Debug)]
struct Route {
    template: String,
    segments: Vec<String>,
    allow: String,
}

impl Routes {
    /// The routes of the document (read once per process: it never changes).
    pub fn of_document() -> &'static Self {
        static ROUTES: std::sync::OnceLock<Routes> = std::sync::OnceLock::new();
        ROUTES.get_or_init(Self::read)
    }

    fn read() -> Self {
        let spec: serde_json::Value = serde_json::from_str(&service().spec()).unwrap_or_default();
        let mut routes: Vec<Route> = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, item)| {
                let methods: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(m, _)| m.to_ascii_uppercase())
                    .filter(|m| m.parse::<Method>().is_ok())
                    .collect();
                Route::new(path, methods)
            })
            .collect();
        for path in ["/openapi.json", "/docs", "/metrics"] {
            routes.push(Route::new(path, vec!["GET".into()]));
        }
        Self(routes)
    }

    /// The route `path` is on, matched segment by segment without copying.
    fn find(&self, path: &str) -> Option<&Route> {
        let path = path.trim_end_matches('/');
        self.0.iter().find(|route| {
            let mut given = path.split('/');
            route
                .segments
                .iter()
                .all(|t| given.next().is_some_and(|p| t == p || (t.starts_with('{') && !p.is_empty())))
                && given.next().is_none()
        })
    }

    /// The `Allow` value for `path`, if it is one of ours.
    pub fn allow(&self, path: &str) -> Option<&str> {
        self.find(path).map(|route| route.allow.as_str())
    }

    /// The document's template of `path` (`/api/v1/sessions/{session_id}`),
    /// if it is one of ours.
    pub fn template(&self, path: &str) -> Option<&str> {
        self.find(path).map(|route| route.template.as_str())
    }
}

impl Route {
    fn new(template: &str, methods: Vec<String>) -> Self {
        Self { template: template.to_owned(), segments: segments(template), allow: allow(methods) }
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/').split('/').map(str::to_owned).collect()
}

/// The `Allow` value for `methods`: `HEAD` wherever `GET` is (poem answers
/// it), `OPTIONS` everywhere, in a fixed order.
fn allow(mut methods: Vec<String>) -> String {
    const ORDER: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    if methods.iter().any(|m| m == "GET") {
        methods.push("HEAD".into());
    }
    methods.push("OPTIONS".into());
    methods.sort_by_key(|m| ORDER.iter().position(|o| o == m).unwrap_or(ORDER.len()));
    methods.join(", ")
}
