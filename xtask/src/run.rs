//! Running programs: echo the command, fail with a message that names it,
//! and say plainly when a tool is missing.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// `cargo`, as the one that runs us.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Fails with install advice unless `tool` answers `--version`-like `probe`.
pub fn require(tool: &str, probe: &[&str], advice: &str) -> Result<(), String> {
    match Command::new(tool).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("`{tool}` is not installed or not on PATH; {advice}")),
    }
}

fn shown(program: &str, args: &[String]) -> String {
    format!("{program} {}", args.join(" "))
}

fn command(program: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(workspace_root());
    cmd
}

/// Runs `program args…` in the workspace root.
pub fn cmd(program: &str, args: &[&str]) -> Result<(), String> {
    cmd_owned(program, &args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

/// Like [`cmd`], with owned arguments.
pub fn cmd_owned(program: &str, args: &[String]) -> Result<(), String> {
    let shown = shown(program, args);
    eprintln!("$ {shown}");
    let status = command(program, args)
        .status()
        .map_err(|e| format!("cannot run `{program}` ({e}); is it installed?"))?;
    if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
}

/// Runs a command and returns its standard output.
pub fn output(program: &str, args: &[String]) -> Result<String, String> {
    let shown = shown(program, args);
    let out = command(program, args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{program}` ({e}); is it installed?"))?;
    if !out.status.success() {
        return Err(format!("`{shown}` failed ({})", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A current-thread runtime for the tasks that talk to a database.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    Ok(runtime.block_on(fut))
}
