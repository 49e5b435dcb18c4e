//! The contract's own rules, below everything else: what an id, a
//! `session_type`, a message, a tenant and an API key may be, the default
//! tenant and the longest TTL. No I/O, no HTTP, no database: `config`,
//! `store`, `api` and `ops` all check input against these.

pub mod hosts;
pub mod keys;
pub mod rules;

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The tenant of every request when authentication is off.
pub const DEFAULT_TENANT: &str = "default";

/// The longest TTL: 100 years (so `expires_at` always fits 64 bits).
pub const MAX_TTL_SECONDS: u64 = 100 * 365 * 24 * 3600;
