//! The HTTP API: one `OpenApi` struct per resource, DTOs with explicit
//! names, typed responses. Handlers read their input through the types of
//! [`fields`] (which carry the contract's rules), call the store, translate.

mod agents;
mod console;
mod document;
mod errors;
mod fields;
mod fork;
mod health;
mod leases;
mod listing;
mod messages;
mod multi_agents;
mod payload;
mod sessions;
mod state;
mod storage;
mod transfer;
mod versioned;

use poem_openapi::{OpenApi, OpenApiService, Tags};

pub use self::{
    console::{CONSOLE_FILE_PATH, CONSOLE_PATH, console_routes},
    document::{document, endpoint as document_endpoint, swagger_ui},
    state::AppState,
};
use crate::domain::VERSION;

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
    /// One writer per session: leases with fencing tokens.
    Leases,
    /// Byte values under keys, for the SDK's `Storage` (snapshots).
    Storage,
    /// Probes and counters; never behind authentication.
    Health,
}

/// The tenant routes that take JSON bodies: sessions and what is under them.
pub type TenantApis =
    (sessions::SessionsApi, agents::AgentsApi, messages::MessagesApi, multi_agents::MultiAgentsApi);

/// Every API of the service.
pub type Apis = (
    TenantApis,
    fork::ForkApi,
    transfer::TransferApi,
    leases::LeasesApi,
    storage::StorageApi,
    health::HealthApi,
);

/// The lease routes, to be mounted (at [`LEASE_PATH`]) under
/// authentication, body limits and the request deadline, but not the rate
/// limit.
pub fn lease_routes() -> OpenApiService<leases::LeasesApi, ()> {
    routes(leases::LeasesApi)
}

pub use self::leases::PATH as LEASE_PATH;

/// The tenant routes with JSON bodies, to be mounted (at `/api`) under
/// authentication, body limits and the request deadline.
pub fn tenant_routes() -> OpenApiService<TenantApis, ()> {
    routes(tenant_apis())
}

fn tenant_apis() -> TenantApis {
    (sessions::SessionsApi, agents::AgentsApi, messages::MessagesApi, multi_agents::MultiAgentsApi)
}

/// The fork route, to be mounted (at [`FORK_PATH`]) under authentication
/// and body limits; its time is bounded by `storage.transfer_timeout_ms`
/// (it copies snapshot blobs), not by the request deadline.
pub fn fork_routes() -> OpenApiService<fork::ForkApi, ()> {
    routes(fork::ForkApi)
}

pub use self::fork::PATH as FORK_PATH;

/// Export and import, to be mounted (at their two paths) under
/// authentication; their bodies stream, and their time is bounded by
/// `storage.transfer_timeout_ms`, not by the request deadline.
pub fn transfer_routes() -> OpenApiService<transfer::TransferApi, ()> {
    routes(transfer::TransferApi)
}

pub use self::transfer::{EXPORT_PATH, IMPORT_PATH};

/// The blob store's routes, to be mounted (at `/api/v1/storage`) under
/// authentication; their bodies stream.
pub fn storage_routes() -> OpenApiService<storage::StorageApi, ()> {
    routes(storage::StorageApi)
}

/// The probes, open to anyone (at `/health`).
pub fn health_routes() -> OpenApiService<health::HealthApi, ()> {
    routes(health::HealthApi)
}

fn routes<T: OpenApi>(apis: T) -> OpenApiService<T, ()> {
    OpenApiService::new(apis, "Session Backend", VERSION)
}

/// Every route, for the document they are described by.
pub fn service() -> OpenApiService<Apis, ()> {
    routes((
        tenant_apis(),
        fork::ForkApi,
        transfer::TransferApi,
        leases::LeasesApi,
        storage::StorageApi,
        health::HealthApi,
    ))
    .description(
        "Storage for Strands agent sessions: sessions, agents, messages and multi-agent \
         state. Drop-in for the earlier Python Session Backend API. Every error body is \
         `{\"detail\": {\"error\", \"message\", \"request_id\"}}`; every response carries \
         `X-Request-Id`. Ids are percent-encoded in paths. Request bodies are JSON \
         (`Content-Type: application/json`, or none); optional fields may be left out \
         or sent as `null`.\n\n\
         Clients: for Python, [strands-session-backend](https://pypi.org/project/strands-session-backend/) \
         (`pip install strands-session-backend`: the SDK's session manager, repository and \
         `Storage`; `[server]` adds [session-backend](https://pypi.org/project/session-backend/), \
         this service as one binary). Start with **Sessions**; the probes are under **Health**.",
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

/// The paths of the routes (and the few mounted beside them) with the
/// methods each allows: for `Allow` headers and the route label of metrics.
#[derive(Clone, Debug)]
pub struct Routes(Vec<Route>);

#[derive(Clone, Debug)]
struct Route {
    template: String,
    segments: Vec<String>,
    allow: String,
}

impl Routes {
    /// The routes of every API, as their declarations say (templates and
    /// methods), and `others`, each answering `GET`.
    pub fn new(others: &[&str]) -> Self {
        let declared = Apis::meta().into_iter().flat_map(|api| api.paths).map(|path| {
            let methods: Vec<String> =
                path.operations.iter().map(|op| op.method.as_str().to_owned()).collect();
            (path.path, methods)
        });
        let others = others.iter().map(|path| (path.to_string(), vec!["GET".to_owned()]));
        Self(declared.chain(others).map(|(path, methods)| Route::new(&path, methods)).collect())
    }

    /// The route `path` is on, matched segment by segment without copying:
    /// of several, the one with the most literal segments
    /// (`/api/v1/sessions/import` rather than `/api/v1/sessions/{session_id}`).
    fn find(&self, path: &str) -> Option<&Route> {
        let path = path.trim_end_matches('/');
        let literal = |route: &Route| route.segments.iter().filter(|t| !t.starts_with('{')).count();
        self.0
            .iter()
            .filter(|route| {
                let mut given = path.split('/');
                route
                    .segments
                    .iter()
                    .all(|t| given.next().is_some_and(|p| t == p || (t.starts_with('{') && !p.is_empty())))
                    && given.next().is_none()
            })
            .rev()
            .max_by_key(|route| literal(route))
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
    methods.dedup();
    methods.join(", ")
}
