//! Project automation, run as `cargo xtask <task>`. One module per task;
//! external programs run without a shell.

mod bench;
mod ci;
mod deploy;
mod image;
mod layers;
mod openapi;
mod release;
mod run;
mod wheel;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tasks for developers, operators and CI.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Benchmark the release binary on PostgreSQL and SQLite beside pgbench
    /// running the same SQL work; prints one table (see BENCHMARKS.md).
    Bench(bench::Args),
    /// What CI checks, minus the machine set-up: `cargo xtask layers`, `cargo fmt --check`,
    /// `cargo clippy -D warnings` and the test suite (`cargo test --workspace`).
    Ci,
    /// Build the release binary and the container image, tagged with the
    /// crate version and the git commit.
    Image(image::Args),
    /// Install or upgrade the Helm release (`--dry-run`: render and validate
    /// the manifests instead of touching a cluster).
    Deploy(deploy::Args),
    /// Back up a database (PostgreSQL: pg_dump custom format; SQLite: an
    /// online copy) with a manifest of row counts and a sha256: runs
    /// `session-backend backup` with these arguments (`--help` for them).
    #[command(disable_help_flag = true)]
    Backup(Forwarded),
    /// Restore a backup: verify its checksum, refuse a non-empty target
    /// without --force, restore, migrate, and check the row counts: runs
    /// `session-backend restore` with these arguments (`--help` for them).
    #[command(disable_help_flag = true)]
    Restore(Forwarded),
    /// Check that every import of the server crate points down its layers
    /// (declared in app/src/lib.rs), and that xtask does not depend on it.
    Layers,
    /// Write the OpenAPI document to app/openapi.json (a test fails when the
    /// committed file is stale).
    Openapi,
    /// Build the `session-backend` wheel (the release binary for glibc 2.17,
    /// with cargo-zigbuild) and the Strands client's wheel into target/dist/.
    Wheel(wheel::Args),
}

/// Arguments passed on to the server binary as they are.
#[derive(Debug, clap::Args)]
struct Forwarded {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let result = match Xtask::parse().task {
        Task::Bench(args) => run::enter_workspace().and_then(|()| bench::run(&args)),
        Task::Ci => run::enter_workspace().and_then(|()| ci::run()),
        Task::Image(args) => run::enter_workspace().and_then(|()| image::run(&args)),
        Task::Deploy(args) => run::enter_workspace().and_then(|()| deploy::run(&args)),
        // Backup and restore read paths as given, from where they are run.
        Task::Backup(forwarded) => run::server_command("backup", &forwarded.args),
        Task::Restore(forwarded) => run::server_command("restore", &forwarded.args),
        Task::Layers => run::enter_workspace().and_then(|()| layers::run()),
        Task::Openapi => openapi::run(),
        Task::Wheel(args) => run::enter_workspace().and_then(|()| wheel::run(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
