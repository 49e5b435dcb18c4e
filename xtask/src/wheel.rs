//! `cargo xtask wheel`: the `session-backend` wheel (the release binary
//! as the `session-backend` command, and the module that finds it) and the
//! Strands client's wheel, into `target/dist/`. The server wheel is tagged
//! `manylinux_2_17`; `auditwheel show` must agree (`AUDITWHEEL`, else
//! `auditwheel` on the PATH; `REQUIRE_OPS_TOOLS=1` makes it required).

use crate::{
    release,
    run::{cmd, output, workspace_root},
};

/// Wheel options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Python that builds the client's wheel (it needs `build` and `hatchling`).
    #[arg(long, env = "PYTHON_CLIENT_PYTHON", default_value = "python3")]
    pub python: String,
}

pub fn run(args: &Args) -> Result<(), String> {
    if !release::portable() {
        return Err(format!(
            "the wheel needs a binary built for glibc {}: install cargo-zigbuild and ziglang \
             (`pip install cargo-zigbuild ziglang`) or set CARGO_ZIGBUILD",
            release::GLIBC
        ));
    }
    let binary = release::binary()?;
    let dist = release::dist_dir();
    let (version, platform) = (
        env!("CARGO_PKG_VERSION"),
        format!("manylinux_{}_{}", release::GLIBC.replace('.', "_"), std::env::consts::ARCH),
    );
    let script = workspace_root().join("clients/server/build_wheel.py");
    let wheel = output(
        &args.python,
        &[
            script.display().to_string(),
            "--binary".into(),
            binary.display().to_string(),
            "--version".into(),
            version.into(),
            "--platform".into(),
            platform.clone(),
            "--out".into(),
            dist.display().to_string(),
        ],
    )?;
    let wheel = wheel.trim();
    check_tag(wheel, &platform)?;
    let client = workspace_root().join("clients/python").display().to_string();
    let outdir = dist.display().to_string();
    cmd(&args.python, &["-m", "build", "--no-isolation", "--wheel", "--outdir", &outdir, &client])?;
    let size = std::fs::metadata(wheel).map(|m| m.len() as f64 / 1024.0 / 1024.0).unwrap_or(f64::NAN);
    eprintln!("built {wheel} ({size:.1} MiB) and the client's wheel in {outdir}");
    Ok(())
}

/// `auditwheel show` must find the wheel consistent with `platform`.
fn check_tag(wheel: &str, platform: &str) -> Result<(), String> {
    let auditwheel = std::env::var("AUDITWHEEL").unwrap_or_else(|_| "auditwheel".into());
    match output(&auditwheel, &["show".into(), wheel.into()]) {
        Ok(report) => {
            let report = report.split_whitespace().collect::<Vec<_>>().join(" ");
            if report.contains(&format!("\"{platform}\"")) && report.contains("consistent with") {
                eprintln!("auditwheel: {report}");
                Ok(())
            } else {
                Err(format!("auditwheel does not find {wheel} consistent with {platform}: {report}"))
            }
        }
        Err(e) if std::env::var("REQUIRE_OPS_TOOLS").as_deref() != Ok("1") => {
            eprintln!("auditwheel: not checked ({e})");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
