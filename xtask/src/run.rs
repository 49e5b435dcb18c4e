//! Running programs, through the service's own helpers (they echo the
//! command, name it when it fails and say plainly when a tool is missing),
//! from the workspace root.

use std::path::PathBuf;

pub use session_backend::ops::tools::{output, require};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Makes the workspace root the directory every command runs in.
pub fn enter_workspace() -> Result<(), String> {
    let root = workspace_root();
    std::env::set_current_dir(&root).map_err(|e| format!("cannot enter {}: {e}", root.display()))
}

/// `cargo`, as the one that runs us.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `program args…`.
pub fn cmd(program: &str, args: &[&str]) -> Result<(), String> {
    cmd_owned(program, &args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

/// Like [`cmd`], with owned arguments.
pub fn cmd_owned(program: &str, args: &[String]) -> Result<(), String> {
    session_backend::ops::tools::run(program, args, &[])
}

/// A current-thread runtime for the tasks that talk to a database.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    Ok(runtime.block_on(fut))
}
