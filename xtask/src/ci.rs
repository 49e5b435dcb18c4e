//! `cargo xtask ci`: layers, formatting, lints, tests. `.ci/run` prepares the
//! machine (PostgreSQL, Docker, images, helm) and then runs exactly this.

use crate::run::{cargo, cmd, cmd_env};

/// The README's test command.
pub const TEST_COMMAND: &[&str] = &["test", "--workspace"];

/// The PostgreSQL half of the API suite once more, through a
/// transaction-mode pooler: what `POOLER_URL` names (`.ci/pgbouncer.sh`).
/// `--workspace`, as the test command, so the test binary built for it
/// serves again.
pub const POOLED_TESTS: &[&str] = &[
    "test",
    "--workspace",
    "--test",
    "api",
    "--",
    "::postgres::",
    "outage::postgres",
    "leases::postgres",
    "startup::",
    "--skip",
    "testcontainers",
];

pub fn run() -> Result<(), String> {
    let cargo = cargo();
    timed("layers", crate::layers::run)?;
    timed("fmt", || cmd(&cargo, &["fmt", "--all", "--check"]))?;
    timed("clippy", || cmd(&cargo, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    timed("tests", || cmd_env(&cargo, TEST_COMMAND, &[("TEST_POOLER_URL", None)]))?;
    match std::env::var("POOLER_URL") {
        Ok(url) => timed("tests through a pooler", || {
            cmd_env(&cargo, POOLED_TESTS, &[("TEST_POOLER_URL", Some(&url))])
        }),
        Err(_) => {
            eprintln!("[ci] tests through a pooler: not run, POOLER_URL is unset (.ci/run sets it)");
            Ok(())
        }
    }
}

/// Runs one step and says how long it took, whether or not it passed.
fn timed(step: &str, run: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let started = std::time::Instant::now();
    let result = run();
    eprintln!(
        "[ci] {step}: {:.0} s ({})",
        started.elapsed().as_secs_f64(),
        if result.is_ok() { "ok" } else { "failed" }
    );
    result
}
