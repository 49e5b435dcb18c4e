//! `cargo xtask openapi`: the OpenAPI document, committed as app/openapi.json.

use crate::run::workspace_root;

/// Where the document is committed.
pub const PATH: &str = "app/openapi.json";

pub fn run() -> Result<(), String> {
    let path = workspace_root().join(PATH);
    let document = format!("{}\n", session_backend::openapi_json());
    std::fs::write(&path, document).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
