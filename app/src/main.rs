//! The `session-backend` command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's allocator: a request allocates and frees
/// hundreds of small values (rows, strings, buffers), which glibc spent a
/// quarter of a page read's CPU on, across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Allocator settings read only at process start, so `serve` starts itself
/// again once with the ones missing from its environment (the image sets
/// them all; an operator's own values are kept):
/// - mimalloc gives freed memory back to the system 50 ms after it is freed
///   (its default, a second or more, kept the benchmark's RSS three times
///   higher; 0 cost a quarter of the page reads);
/// - glibc's allocator, which SQLite still uses, would keep buffers of a few
///   MiB (a 16 MiB document on its way in) in per-thread arenas once freed:
///   allocations of 1 MiB and more go straight to the system and back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod tunables {
    use std::os::unix::process::CommandExt;

    const SETTINGS: [(&str, &str); 2] =
        [("MIMALLOC_PURGE_DELAY", "50"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")];

    pub fn apply() {
        let missing: Vec<_> = SETTINGS.iter().filter(|(name, _)| std::env::var_os(name).is_none()).collect();
        if missing.is_empty() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        // `exec` returns only when it fails; then carry on as we are.
        let failed = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(missing.iter().map(|(name, value)| (name, value)))
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
