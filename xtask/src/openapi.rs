//! `cargo xtask openapi`: the OpenAPI document, committed as app/openapi.json.

use crate::run::{output, server_binary, workspace_root};

/// Where the document is committed.
pub const PATH: &str = "app/openapi.json";

pub fn run() -> Result<(), String> {
    let path = workspace_root().join(PATH);
    let document = output(&server_binary()?.display().to_string(), &["openapi".into()])?;
    std::fs::write(&path, document).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
