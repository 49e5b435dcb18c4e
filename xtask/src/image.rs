//! `cargo xtask image`: the release binary and the container image, tagged
//! `<repository>:<crate version>` and `<repository>:<git sha>`.

use crate::{
    release,
    run::{cmd, cmd_owned, output, require, workspace_root},
};

/// Image build options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runtime base image (glibc, libgcc, CA certificates).
    #[arg(long, default_value = "gcr.io/distroless/cc-debian12")]
    pub base_image: String,
    /// First-stage image: a Rust toolchain with --from-source, otherwise any
    /// small image with a POSIX shell [default: rust:1.95-slim-bookworm with
    /// --from-source, else gcr.io/distroless/cc-debian12:debug].
    #[arg(long)]
    pub builder_image: Option<String>,
    /// Compile inside Docker instead of packaging the local release build.
    #[arg(long)]
    pub from_source: bool,
    /// Image repository (name without tag), e.g. registry.example.com/session-backend.
    #[arg(long, default_value = "session-backend")]
    pub repository: String,
    /// Push both tags after building.
    #[arg(long)]
    pub push: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    require("docker", &["--version"], "install Docker (https://docs.docker.com/engine/install/)")?;
    let binary = if args.from_source {
        None
    } else {
        let binary = release::binary()?;
        let relative = binary.strip_prefix(workspace_root()).map_err(|e| e.to_string())?;
        Some(relative.display().to_string())
    };
    let builder = args.builder_image.clone().unwrap_or_else(|| {
        if args.from_source { "rust:1.95-slim-bookworm" } else { "gcr.io/distroless/cc-debian12:debug" }
            .into()
    });
    let tags = [
        format!("{}:{}", args.repository, env!("CARGO_PKG_VERSION")),
        format!("{}:{}", args.repository, git_sha()?),
    ];
    // --force-rm: a failed build leaves no container holding its half-made layer.
    let mut build: Vec<String> = ["build", "--force-rm", "-f", "deploy/Dockerfile"].map(String::from).into();
    for (name, value) in [
        ("BASE_IMAGE", args.base_image.as_str()),
        ("BUILDER_IMAGE", builder.as_str()),
        ("PREBUILT", if args.from_source { "false" } else { "true" }),
        ("BINARY", binary.as_deref().unwrap_or("target/release/session-backend")),
    ] {
        build.extend(["--build-arg".into(), format!("{name}={value}")]);
    }
    for tag in &tags {
        build.extend(["-t".into(), tag.clone()]);
    }
    build.push(".".into());
    cmd_owned("docker", &build)?;
    let size = output("docker", &["image", "inspect", "--format", "{{.Size}}", &tags[0]].map(String::from))?;
    let mib = size.trim().parse::<f64>().map(|b| b / 1024.0 / 1024.0).unwrap_or(f64::NAN);
    eprintln!("built {} ({mib:.1} MiB)", tags.join(", "));
    if args.push {
        for tag in &tags {
            cmd("docker", &["push", tag])?;
        }
    }
    Ok(())
}

/// The short commit id, with `-dirty` when the work tree has changes.
fn git_sha() -> Result<String, String> {
    let sha = output("git", &["rev-parse", "--short=12", "HEAD"].map(String::from))?.trim().to_owned();
    let dirty = !output("git", &["status", "--porcelain", "--untracked-files=no"].map(String::from))?
        .trim()
        .is_empty();
    Ok(if dirty { format!("{sha}-dirty") } else { sha })
}
