//! Project automation, run as `cargo xtask <task>`. One module per task;
//! commands run without a shell.

mod ci;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tasks for developers and CI.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// What CI checks, minus the machine set-up: `cargo fmt --check`,
    /// `cargo clippy -D warnings` and the test suite (`cargo test --workspace`).
    Ci,
}

fn main() -> ExitCode {
    let result = match Xtask::parse().task {
        Task::Ci => ci::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
