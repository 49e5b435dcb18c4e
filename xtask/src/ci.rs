//! `cargo xtask ci`: layers, formatting, lints, tests. `.ci/run` prepares the
//! machine (PostgreSQL, Docker, images, helm) and then runs exactly this.

use crate::run::{cargo, cmd};

/// The README's test command.
pub const TEST_COMMAND: &[&str] = &["test", "--workspace"];

pub fn run() -> Result<(), String> {
    let cargo = cargo();
    timed("layers", crate::layers::run)?;
    timed("fmt", || cmd(&cargo, &["fmt", "--all", "--check"]))?;
    timed("clippy", || cmd(&cargo, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    timed("tests", || cmd(&cargo, TEST_COMMAND))
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
