//! Running programs without a shell: each command is echoed, named when
//! it fails, and a missing tool is said plainly. Tasks run from the
//! workspace root; the server's own commands run through its binary.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

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

/// Fails with install advice unless `tool` runs (`probe` is e.g. `--version`).
pub fn require(tool: &str, probe: &[&str], advice: &str) -> Result<(), String> {
    match Command::new(tool).args(probe).stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("`{tool}` is not installed or not on PATH; {advice}")),
    }
}

/// Runs `program args…`.
pub fn cmd(program: &str, args: &[&str]) -> Result<(), String> {
    cmd_owned(program, &args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

/// Like [`cmd`], with owned arguments.
pub fn cmd_owned(program: &str, args: &[String]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    eprintln!("$ {shown}");
    let status = Command::new(program).args(args).status().map_err(|e| cannot_run(program, &e))?;
    if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
}

/// Like [`cmd`], with environment variables set (`Some`) or removed (`None`).
pub fn cmd_env(program: &str, args: &[&str], env: &[(&str, Option<&str>)]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    eprintln!("$ {shown}");
    let mut command = Command::new(program);
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let status = command.args(args).status().map_err(|e| cannot_run(program, &e))?;
    if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
}

/// Runs `program args…` and returns its standard output.
pub fn output(program: &str, args: &[String]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| cannot_run(program, &e))?;
    if !out.status.success() {
        return Err(format!("`{program} {}` failed ({})", args.join(" "), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cannot_run(program: &str, err: &std::io::Error) -> String {
    format!("cannot run `{program}` ({err}); is it installed?")
}

/// The server binary: `SESSION_BACKEND_BIN` if set, else the workspace's
/// debug build, built (or brought up to date) first.
pub fn server_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SESSION_BACKEND_BIN") {
        return Ok(bin.into());
    }
    let manifest = workspace_root().join("Cargo.toml").display().to_string();
    let build = ["build", "--quiet", "--manifest-path", &manifest, "-p", "session-backend"];
    cmd(&cargo(), &build)?;
    Ok(workspace_root().join("target/debug/session-backend"))
}

/// Runs the server binary's `command` with `args`, from the directory
/// `cargo xtask` was run in (so paths mean what they say). The arguments
/// are not echoed: a database URL among them may hold a password.
pub fn server_command(command: &str, args: &[String]) -> Result<(), String> {
    let binary = server_binary()?;
    eprintln!("$ {} {command} …", binary.display());
    let status = Command::new(&binary)
        .arg(command)
        .args(args)
        .status()
        .map_err(|e| cannot_run(&binary.display().to_string(), &e))?;
    if status.success() { Ok(()) } else { Err(format!("`session-backend {command}` failed ({status})")) }
}
