//! The one release binary: what the wheel and the image package and the
//! bench measures, built once per commit into `target/dist/`. Where
//! cargo-zigbuild is installed (`CARGO_ZIGBUILD`, or on the PATH) it is
//! linked against glibc 2.17, so it runs on every Linux the wheel's
//! `manylinux_2_17` tag names (Amazon Linux 2 and 2023, Lambda, Ubuntu 18.04
//! and later); without it, `cargo build --release` links against this
//! machine's glibc and the wheel is refused.

use std::path::PathBuf;

use crate::run::{cargo, cmd, workspace_root};

/// The oldest glibc the zigbuild binary runs on.
pub const GLIBC: &str = "2.17";

/// Where the release binary and the wheels go.
pub fn dist_dir() -> PathBuf {
    workspace_root().join("target/dist")
}

/// Whether the release binary is built for [`GLIBC`] (cargo-zigbuild is there).
pub fn portable() -> bool {
    zigbuild().is_some()
}

/// Builds the release binary (a no-op when it is up to date) and copies it
/// to `target/dist/session-backend`; that path.
pub fn binary() -> Result<PathBuf, String> {
    let root = workspace_root();
    let built = match zigbuild() {
        Some(zigbuild) => {
            let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
            let versioned = format!("{target}.{GLIBC}");
            let args = ["zigbuild", "--release", "--locked", "-p", "session-backend", "--target", &versioned];
            cmd(&zigbuild, &args)?;
            root.join(format!("target/{target}/release/session-backend"))
        }
        None => {
            cmd(&cargo(), &["build", "--release", "--locked", "-p", "session-backend"])?;
            root.join("target/release/session-backend")
        }
    };
    let dist = dist_dir();
    std::fs::create_dir_all(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    // Copied under another name, then renamed: a build reading the old
    // copy (the image's, say) never sees a half-written one.
    let binary = dist.join("session-backend");
    let partial = dist.join(format!(".session-backend.{}", std::process::id()));
    std::fs::copy(&built, &partial).map_err(|e| format!("copying {}: {e}", built.display()))?;
    std::fs::rename(&partial, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    Ok(binary)
}

/// cargo-zigbuild: `CARGO_ZIGBUILD`, else `cargo-zigbuild` if on the PATH.
fn zigbuild() -> Option<String> {
    if let Some(path) = std::env::var_os("CARGO_ZIGBUILD").filter(|p| !p.is_empty()) {
        return Some(path.to_string_lossy().into_owned());
    }
    let on_path = std::process::Command::new("cargo-zigbuild").arg("--version").output();
    on_path.is_ok_and(|o| o.status.success()).then(|| "cargo-zigbuild".to_owned())
}
