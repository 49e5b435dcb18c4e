//! Moving in and out of the layout the SDK's `FileSessionManager` writes:
//!
//! ```text
//! DIR/session_<sid>/session.json
//! DIR/session_<sid>/agents/agent_<aid>/agent.json
//! DIR/session_<sid>/agents/agent_<aid>/messages/message_<n>.json
//! DIR/session_<sid>/multi_agents/multi_agent_<id>/multi_agent.json
//! ```
//!
//! Each file is the SDK's `to_dict()` (a multi-agent file its
//! `serialize_state()`). An import keeps timestamps and never changes what
//! is already stored, so running it twice changes nothing; an export writes
//! the same layout back, documents exactly as stored.
//!
//! [`import`](import()) reads the files ([`mod@import`]); [`export`](export())
//! writes them ([`mod@export`]).

mod export;
mod import;

use std::path::PathBuf;

pub use self::{
    export::{Exported, export},
    import::{Imported, Tally, import},
};

/// `import file-sessions`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The directory `FileSessionManager` wrote (its `storage_dir`).
    pub dir: PathBuf,
    /// Read and check everything, count what would be created, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first file that cannot be imported (by default it is
    /// reported with its path and skipped, with what lies below it).
    #[arg(long)]
    pub strict: bool,
    /// The tenant the sessions are imported for (the tenant of an API key;
    /// `default` is the tenant of every request while keys are off).
    #[arg(long, default_value = crate::domain::DEFAULT_TENANT, value_parser = tenant)]
    pub tenant: String,
}

/// `export file-sessions`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The directory to write (created if missing; files there are replaced).
    pub dir: PathBuf,
    /// Export only this session.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Whose sessions to export (see `import --tenant`).
    #[arg(long, default_value = crate::domain::DEFAULT_TENANT, value_parser = tenant)]
    pub tenant: String,
}

fn tenant(name: &str) -> Result<String, String> {
    crate::domain::keys::check_tenant(name).map(|()| name.to_owned())
}
