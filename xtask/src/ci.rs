//! `cargo xtask ci`: formatting, lints, tests. `.ci/run` prepares the
//! machine (PostgreSQL, Docker, images, helm) and then runs exactly this.

use crate::run::{cargo, cmd};

/// The README's test command.
pub const TEST_COMMAND: &[&str] = &["test", "--workspace"];

pub fn run() -> Result<(), String> {
    let cargo = cargo();
    cmd(&cargo, &["fmt", "--all", "--check"])?;
    cmd(&cargo, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    cmd(&cargo, TEST_COMMAND)
}
