//! The Python client (`clients/python`) against this build of the binary:
//! lint, strict types, a wheel, and its pytest suite (any unclosed client
//! failing it), which drives the real Strands SDK
//! through the client against the server on SQLite and, with
//! `TEST_DATABASE_URL`, PostgreSQL; with `POOLER_URL` as well, a fleet of
//! three replicas behind PgBouncer restarted in turn (`tests/test_fleet.py`).
//!
//! `PYTHON_CLIENT_PYTHON` names the Python of a virtualenv holding the
//! client and its test tools (`.ci/run` makes one from
//! `clients/python/ci-requirements.txt`), `PYTHON_CLIENT_OLDEST_PYTHON` one
//! with the oldest SDK the client supports
//! (`clients/python/oldest-requirements.txt`), which runs the message-log
//! tests. Without them these tests say so and pass, unless
//! `REQUIRE_PYTHON_CLIENT=1` (CI).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python")
}

/// The Python `variable` names; `None` (said) when unset, unless `REQUIRE_PYTHON_CLIENT=1`.
fn python_in(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(python) => Some(python),
        Err(_) => {
            assert!(
                std::env::var("REQUIRE_PYTHON_CLIENT").as_deref() != Ok("1"),
                "REQUIRE_PYTHON_CLIENT=1 but {variable} is not set"
            );
            eprintln!("skipping: set {variable} to a virtualenv's python with the client installed");
            None
        }
    }
}

fn python() -> Option<String> {
    python_in("PYTHON_CLIENT_PYTHON")
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
    // The PostgreSQL tests and the fleet behind PgBouncer ran, none skipped.
    assert_none_skipped(&report);
}

/// Under `REQUIRE_POSTGRES=1`, pytest's summary line names no skipped test.
fn assert_none_skipped(report: &str) {
    if std::env::var("REQUIRE_POSTGRES").as_deref() == Ok("1") {
        let summary = report.lines().rev().find(|line| line.contains(" passed")).unwrap_or_default();
        assert!(!summary.contains("skipped"), "{report}");
    }
}

/// The tests of the message log (repository, session manager, multi-agent
/// state, leases, the bundled server): what the oldest supported SDK has.
const MESSAGE_LOG_TESTS: &[&str] = &[
    "tests/test_repository.py",
    "tests/test_agent.py",
    "tests/test_multi_agent.py",
    "tests/test_lease.py",
    "tests/test_server.py",
];

#[test]
fn python_client_works_with_the_oldest_supported_sdk() {
    let Some(python) = python_in("PYTHON_CLIENT_OLDEST_PYTHON") else { return };
    let metadata = "import importlib.metadata as m; print(m.version('strands-agents'))";
    let sdk = run(&python, &["-c", metadata], &[]);
    let requirements = std::fs::read_to_string(client_dir().join("oldest-requirements.txt")).expect("pins");
    assert!(requirements.contains(&format!("strands-agents=={}", sdk.trim())), "SDK {sdk}");
    // What needs a newer SDK says so when asked for, and nothing else breaks.
    let storage = "import strands_session_backend as s\ntry:\n    s.SessionBackendStorage\nexcept ImportError as e:\n    print(e)";
    assert!(run(&python, &["-c", storage], &[]).contains("strands-agents 1.48 or newer"));
    let mut args = vec!["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::ResourceWarning"];
    args.extend(MESSAGE_LOG_TESTS);
    let report = run(&python, &args, &[("SESSION_BACKEND_BIN", env!("CARGO_BIN_EXE_session-backend"))]);
    eprintln!("{report}");
    assert_none_skipped(&report);
}
