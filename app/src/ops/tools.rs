//! Running the external programs backups need: say plainly when one is
//! missing, name the command when it fails, keep secrets (passed as
//! environment variables) out of every message.

use std::{
    path::Path,
    process::{Command, Stdio},
};

/// Fails with install advice unless `tool` runs (`probe` is e.g. `--version`).
pub fn require(tool: &str, probe: &[&str], advice: &str) -> Result<(), String> {
    match Command::new(tool).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("`{tool}` is not installed or not on PATH; {advice}")),
    }
}

/// The PostgreSQL client tools, or advice on getting them.
pub fn require_postgres_client(tool: &str) -> Result<(), String> {
    require(
        tool,
        &["--version"],
        "install the PostgreSQL client (apt-get install postgresql-client); the container image does not \
         ship it, so back up an in-cluster database with --release, or run this where the client is",
    )
}

fn shown(program: &str, args: &[String]) -> String {
    format!("{program} {}", args.join(" "))
}

/// Runs `program args…` with extra (unshown) environment variables.
pub fn run(program: &str, args: &[String], env: &[(&str, String)]) -> Result<(), String> {
    let shown = shown(program, args);
    eprintln!("$ {shown}");
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .map_err(|e| format!("cannot run `{program}` ({e}); is it installed?"))?;
    if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
}

/// Runs a command and returns its standard output.
pub fn output(program: &str, args: &[String]) -> Result<String, String> {
    let shown = shown(program, args);
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{program}` ({e}); is it installed?"))?;
    if !out.status.success() {
        return Err(format!("`{shown}` failed ({})", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command with its standard output written to `path`.
pub fn output_to_file(program: &str, args: &[String], path: &Path) -> Result<(), String> {
    let shown = shown(program, args);
    eprintln!("$ {shown} > {}", path.display());
    let file = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let status = Command::new(program)
        .args(args)
        .stdout(file)
        .status()
        .map_err(|e| format!("cannot run `{program}` ({e}); is it installed?"))?;
    if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
}
