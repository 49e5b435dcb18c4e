//! sea-orm entities of the session backend: one module per table.
//!
//! These are storage shapes only; the HTTP layer exposes its own DTOs.
//! Opaque JSON columns are [`JsonText`]: the document's text, kept verbatim.

pub mod agent;
mod json_text;
pub mod message;
pub mod multi_agent;
pub mod search_text;
pub mod session;

pub use json_text::JsonText;
