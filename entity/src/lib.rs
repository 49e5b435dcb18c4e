//! sea-orm entities of the session backend: one module per table.
//!
//! These are storage shapes only; the HTTP layer exposes its own DTOs.
//! Opaque JSON columns hold the document's text (see the migration docs).

pub mod agent;
pub mod message;
pub mod multi_agent;
pub mod session;
