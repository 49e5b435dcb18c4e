//! The Python client (`clients/python`) against this build of the binary:
//! lint, strict types, a wheel, and its pytest suite (any unclosed client
//! failing it), which drives the real Strands SDK
//! through the client against the server on SQLite and, with
//! `TEST_DATABASE_URL`, PostgreSQL; with `POOLER_URL` as well, a fleet of
//! three replicas behind PgBouncer restarted in turn (`tests/test_fleet.py`).
//!
//! `PYTHON_CLIENT_PYTHON` names the Python of a virtualenv holding the
//! client and its test tools (`.ci/run` makes one from
//! `clients/python/ci-requirements.txt`). Without it this test says so and
//! passes, unless `REQUIRE_PYTHON_CLIENT=1` (CI).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python")
}

fn python() -> Option<String> {
    match std::env::var("PYTHON_CLIENT_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            assert!(
                std::env::var("REQUIRE_PYTHON_CLIENT").as_deref() != Ok("1"),
                "REQUIRE_PYTHON_CLIENT=1 but PYTHON_CLIENT_PYTHON is not set"
            );
            eprintln!(
                "skipping: set PYTHON_CLIENT_PYTHON to a virtualenv's python with the client installed"
            );
            None
        }
    }
}

/// Runs `python args…` in the client's directory; panics with its output on failure.
fn run(python: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(python)
        .args(args)
        .current_dir(client_dir())
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "`python {}` failed:\n{text}", args.join(" "));
    text
}

#[test]
fn python_client_lints_builds_and_passes_its_tests_with_the_real_sdk() {
    let Some(python) = python() else { return };
    run(&python, &["-m", "ruff", "check", "."], &[]);
    run(&python, &["-m", "ruff", "format", "--check", "."], &[]);
    // Strict, over the package and its tests (pyproject.toml's [tool.mypy]).
    run(&python, &["-m", "mypy"], &[]);
    // The server wheel's module and packer, in the same style.
    run(&python, &["-m", "ruff", "check", "../server"], &[]);
    run(&python, &["-m", "ruff", "format", "--check", "../server"], &[]);
    run(&python, &["-m", "mypy", "--strict", "../server"], &[]);
    let dist = tempfile::tempdir().expect("dist dir");
    let outdir = dist.path().display().to_string();
    run(&python, &["-m", "build", "--no-isolation", "--wheel", "--outdir", &outdir, "."], &[]);
    let wheels: Vec<_> = std::fs::read_dir(dist.path())
        .expect("dist")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "one wheel built");
    let version = env!("CARGO_PKG_VERSION");
    let name = wheels[0].file_name().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("strands_session_backend-{version}-")), "{name}");
    let listing = run(
        &python,
        &[
            "-c",
            "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
            &wheels[0].path().display().to_string(),
        ],
        &[],
    );
    assert!(listing.contains("strands_session_backend/py.typed"), "{listing}");
    let report = run(
        &python,
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-s",
            // A client left unclosed warns only from `__del__`: make that fail.
            "-W",
            "error::ResourceWarning",
            "-W",
            "error::pytest.PytestUnraisableExceptionWarning",
            "tests",
        ],
        &[("SESSION_BACKEND_BIN", env!("CARGO_BIN_EXE_session-backend"))],
    );
    eprintln!("{report}");
    if std::env::var("REQUIRE_POSTGRES").as_deref() == Ok("1") {
        // The PostgreSQL tests and the fleet behind PgBouncer ran, none skipped.
        assert!(!report.contains("skipped"), "{report}");
    }
}
