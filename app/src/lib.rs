//! Session Backend: storage for Strands agent sessions behind an HTTP API,
//! on SQLite (default) or PostgreSQL.
//!
//! The library builds the whole server so that tests run it in-process:
//! [`Server::start`] connects, migrates and binds; [`Server::run`] serves
//! until the shutdown future resolves, then drains in-flight requests.
//! [`ops`] holds backup, restore and the FileSessionManager import/export
//! the binary's commands run.
//!
//! # Layers
//!
//! The modules below are declared in layers, bottom first, and every
//! import points down: a module uses its own layer (without cycles) or the
//! ones above it in this file, never the ones below. `cargo xtask layers`
//! reads this file and the sources and fails on any other import.

// layer: domain — the contract's rules and constants; no I/O
pub mod domain;
// layer: config — settings from defaults, files and the environment
pub mod config;
// layer: observability — request ids and traces
mod request_id;
pub mod telemetry;
// layer: database — connections, pools, statements, error classification
pub mod db;
// layer: errors — the one error type and its envelope
mod error;
// layer: metrics — what the service counts
mod metrics;
// layer: store — every SQL decision
mod store;
// layer: operations — backup, restore, file sessions (commands, not HTTP)
pub mod ops;
// layer: http — bodies, authentication, handlers, middleware
mod api;
pub mod auth;
mod drain;
mod middleware;
// layer: server — connections, shutdown, background tasks
mod server;

pub use crate::{
    domain::VERSION,
    server::{Server, StartError},
};

/// The OpenAPI document as JSON, as a server with API keys serves it.
pub fn openapi_json() -> String {
    api::document(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_openapi_document_is_current() {
        let committed = include_str!("../openapi.json");
        assert!(
            committed == format!("{}\n", super::openapi_json()),
            "app/openapi.json is stale: run `cargo xtask openapi` and commit the result"
        );
    }
}
