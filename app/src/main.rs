//! The `session-backend` command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if args.serves() {
        tunables::apply();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// glibc's allocator, left to itself, serves buffers of a few MiB from
/// per-thread arenas and keeps them there once freed: a server that takes
/// 16 MiB bodies would stay hundreds of MiB larger than what it uses. This
/// tunable sends allocations of 1 MiB and more straight to the system (and
/// back on free). glibc reads it only at start, so
/// `serve` starts itself again once with it, unless `GLIBC_TUNABLES` is
/// already set (the image sets it; an operator's own choice is kept).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod tunables {
    use std::os::unix::process::CommandExt;

    const TUNABLES: &str = "glibc.malloc.mmap_threshold=1048576";

    pub fn apply() {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        // `exec` returns only when it fails; then carry on as we are.
        let failed = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", TUNABLES)
            .exec();
        eprintln!(
            "warning: could not restart with the allocator settings ({failed}); continuing without them"
        );
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod tunables {
    pub fn apply() {}
}
