//! `cargo xtask deploy`: `helm upgrade --install --atomic --wait`, or with
//! `--dry-run` `helm template` plus offline schema validation.

use std::path::PathBuf;

use crate::run::{cmd_owned, output, require, workspace_root};

/// The chart, relative to the workspace root.
pub const CHART: &str = "deploy/helm/session-backend";

/// Which values file to layer over the chart's defaults.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Env {
    Development,
    Production,
}

/// Deployment options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment: picks values-<env>.yaml.
    #[arg(long, value_enum)]
    pub env: Env,
    /// Kubernetes namespace (created if missing).
    #[arg(long, default_value = "session-backend")]
    pub namespace: String,
    /// Helm release name.
    #[arg(long, default_value = "session-backend")]
    pub release: String,
    /// Extra values, as for `helm --set` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Extra values files (repeatable), applied after the environment's.
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Image tag to deploy (sessionBackend.image.tag).
    #[arg(long)]
    pub image_tag: Option<String>,
    /// Render with `helm template` and validate the manifests offline instead
    /// of touching a cluster; the manifests are written to target/deploy/.
    #[arg(long)]
    pub dry_run: bool,
    /// Command that validates the manifest file given as its last argument,
    /// words separated by spaces (e.g. `bash /path/to/k8s-validate.sh`)
    /// [default: kubeconform -strict -summary].
    #[arg(long, env = "K8S_VALIDATOR")]
    pub validator: Option<String>,
}

impl Env {
    fn name(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// `helm` arguments common to template and upgrade.
fn chart_args(args: &Args) -> Vec<String> {
    let mut out = vec![
        args.release.clone(),
        CHART.into(),
        "--namespace".into(),
        args.namespace.clone(),
        "--values".into(),
        format!("{CHART}/values-{}.yaml", args.env.name()),
    ];
    for file in &args.values {
        out.extend(["--values".into(), file.display().to_string()]);
    }
    for set in &args.set {
        out.extend(["--set".into(), set.clone()]);
    }
    if let Some(tag) = &args.image_tag {
        out.extend(["--set".into(), format!("sessionBackend.image.tag={tag}")]);
    }
    out
}

pub fn run(args: &Args) -> Result<(), String> {
    require("helm", &["version"], "install Helm (https://helm.sh/docs/intro/install/)")?;
    if args.dry_run {
        return dry_run(args);
    }
    require("kubectl", &["version", "--client"], "install kubectl to deploy to a cluster")?;
    let mut upgrade: Vec<String> =
        ["upgrade", "--install", "--atomic", "--wait", "--timeout", "10m", "--create-namespace"]
            .map(String::from)
            .into();
    upgrade.extend(chart_args(args));
    cmd_owned("helm", &upgrade)
}

fn dry_run(args: &Args) -> Result<(), String> {
    let mut template: Vec<String> = vec!["template".into()];
    template.extend(chart_args(args));
    let manifests = output("helm", &template)?;
    let dir = workspace_root().join("target/deploy");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}-{}.yaml", args.release, args.env.name()));
    std::fs::write(&path, &manifests).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let path_arg = path.display().to_string();
    match args.validator.as_deref().map(str::split_whitespace).map(Iterator::collect::<Vec<_>>) {
        Some(words) if !words.is_empty() => {
            let rest = words[1..].iter().map(|w| (*w).to_owned()).chain([path_arg]).collect::<Vec<_>>();
            cmd_owned(words[0], &rest)?;
        }
        _ => {
            require(
                "kubeconform",
                &["-v"],
                "install kubeconform, or name a validator with --validator / K8S_VALIDATOR",
            )?;
            cmd_owned("kubeconform", &["-strict".into(), "-summary".into(), path_arg])?;
        }
    }
    eprintln!("rendered and validated: {}", path.display());
    Ok(())
}
