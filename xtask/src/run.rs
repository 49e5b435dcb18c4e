//! Running programs: echo the command, fail with a clear message.

use std::{path::PathBuf, process::Command};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Runs `program args…` in the workspace root; an error names the command.
pub fn cmd(program: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    eprintln!("$ {shown}");
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run `{program}` ({e}); is it installed and on PATH?"))?;
    if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
}
