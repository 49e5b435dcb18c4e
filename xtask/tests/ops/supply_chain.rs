//! The supply chain: cargo-deny over the whole dependency graph, with the
//! policy in `deny.toml` (licenses, bans, crates only from crates.io).
//! Advisories are not checked here: the RustSec database is a git
//! repository these machines cannot fetch (see SECURITY.md).
//!
//! `CARGO_DENY` names the program (CI installs a pinned one), else
//! `cargo-deny` on the PATH.

use crate::support::{have, root, text};

#[test]
fn dependencies_pass_cargo_deny() {
    let deny = std::env::var("CARGO_DENY").unwrap_or_else(|_| "cargo-deny".into());
    if !have(&deny, &["--version"]) {
        return;
    }
    let out = std::process::Command::new(&deny)
        .args(["--manifest-path", "Cargo.toml", "check", "licenses", "bans", "sources"])
        .current_dir(root())
        .output()
        .expect("cargo-deny runs");
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "cargo-deny refused the dependency graph:\n{report}");
    assert!(report.contains("bans ok, licenses ok, sources ok"), "{report}");
}
