//! Backups: a dump plus its manifest.
//!
//! - PostgreSQL by URL: `pg_dump --format=custom` of the snapshot that the
//!   row counts were taken in (an exported snapshot), so the manifest
//!   describes exactly the dump.
//! - SQLite by URL: `VACUUM INTO`, an online, consistent copy; the counts
//!   are read from the copy.
//! - A Helm release in a cluster: `kubectl exec` into its PostgreSQL pod
//!   (found by the chart's labels), the dump streamed to a local file.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use sea_orm::{ConnectionTrait, IsolationLevel, Statement, TransactionTrait};

use super::{
    libpq,
    manifest::{self, Manifest},
    progress::{self, Progress},
    tools,
};
use crate::{
    config::{Backend, Config},
    db::{self, Database, Db, TableCounts},
};

/// Backup options.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The database to back up (`postgres://…` or `sqlite://…`).
    #[arg(long, required_unless_present = "release", conflicts_with = "release")]
    pub database_url: Option<String>,
    /// Back up the in-cluster PostgreSQL of this Helm release instead.
    #[arg(long)]
    pub release: Option<String>,
    /// Namespace of the release.
    #[arg(long, default_value = "session-backend")]
    pub namespace: String,
    /// PostgreSQL pod of the release [default: the release's pod labelled
    /// app.kubernetes.io/component=postgresql].
    #[arg(long)]
    pub pod: Option<String>,
    /// Directory for the dump and its manifest (created if missing).
    #[arg(long, default_value = "backups")]
    pub output: PathBuf,
    /// Base name of the files [default: session-backend-<UTC timestamp>].
    #[arg(long)]
    pub name: Option<String>,
}

/// Takes the backup `args` describe.
pub async fn run(args: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    let name = args.name.clone().unwrap_or_else(|| format!("session-backend-{}", manifest::stamp()));
    let started = Instant::now();
    let progress = Progress::start("backing up");
    let dumped = progress::watch_growth(&progress, &args.output, &name, async {
        match (&args.database_url, &args.release) {
            (Some(url), _) => from_url(url, &args.output, &name).await,
            // kubectl blocks: on a thread of its own, so the progress moves.
            (None, Some(release)) => {
                let (release, args, name) = (release.clone(), args.clone(), name.clone());
                tokio::task::spawn_blocking(move || from_release(&release, &args, &name))
                    .await
                    .map_err(|e| e.to_string())?
            }
            (None, None) => Err("give --database-url or --release".into()),
        }
    })
    .await;
    let (file, mut manifest) = dumped?;
    progress.set(|| "checking the sha256".into());
    let (sha256, bytes) = manifest::digest(&file)?;
    manifest.sha256 = sha256;
    manifest.bytes = bytes;
    manifest.seconds = started.elapsed().as_secs_f64();
    let path = manifest.write(&args.output, &name)?;
    progress.finish();
    eprintln!(
        "backed up {} rows in {:.2} s to {} ({bytes} bytes); manifest {}",
        manifest.tables.values().sum::<u64>(),
        manifest.seconds,
        file.display(),
        path.display()
    );
    Ok(())
}

fn empty_manifest(backend: &str, source: String, file: &Path) -> Manifest {
    Manifest {
        format: 1,
        created_at: chrono::Utc::now().to_rfc3339(),
        backend: backend.into(),
        source,
        schema_version: None,
        tables: TableCounts::default(),
        file: file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        bytes: 0,
        sha256: String::new(),
        seconds: 0.0,
    }
}

async fn from_url(url: &str, dir: &Path, name: &str) -> Result<(PathBuf, Manifest), String> {
    let config = Config::for_database(url);
    let target = config.direct_database_url().map_err(|e| e.to_string())?;
    let backend = target.backend().ok_or_else(|| format!("unsupported database URL `{target}`"))?;
    if backend == Backend::Sqlite && !manifest::sqlite_path(url).exists() {
        return Err(format!("no SQLite database at {}", manifest::sqlite_path(url).display()));
    }
    let db = Database::connect(&config).await.map_err(|e| e.to_string())?;
    let schema_version = db.schema_version().await.map_err(|e| e.to_string())?;
    let result = match backend {
        Backend::Postgres => postgres_dump(&db, url, dir, name).await,
        Backend::Sqlite => sqlite_copy(&db, dir, name).await,
    };
    db.close().await;
    let (file, tables) = result?;
    let mut manifest = empty_manifest(backend.name(), target.masked(), &file);
    manifest.schema_version = schema_version;
    manifest.tables = tables;
    Ok((file, manifest))
}

async fn postgres_dump(
    db: &Database,
    url: &str,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, TableCounts), String> {
    tools::require_postgres_client("pg_dump")?;
    let env = libpq::environment(url)?;
    let file = dir.join(format!("{name}.dump"));
    let err = |e: sea_orm::DbErr| e.to_string();
    // Counts and dump see one snapshot: export it from a repeatable-read
    // transaction that stays open while pg_dump runs.
    let txn = db.orm().begin_with_config(Some(IsolationLevel::RepeatableRead), None).await.map_err(err)?;
    let row = txn
        .query_one_raw(Statement::from_string(txn.get_database_backend(), "SELECT pg_export_snapshot()"))
        .await
        .map_err(err)?
        .ok_or("no snapshot id")?;
    let snapshot: String = row.try_get_by_index(0).map_err(err)?;
    let tables = Database::table_counts(&txn).await.map_err(err)?;
    let mut dump = vec![
        "--format=custom".to_owned(),
        "--no-owner".into(),
        "--no-privileges".into(),
        format!("--snapshot={snapshot}"),
        format!("--file={}", file.display()),
    ];
    if let Some(schema) = manifest::postgres_schema(url) {
        dump.push(format!("--schema={schema}"));
    }
    tokio::task::spawn_blocking(move || tools::run("pg_dump", &dump, &env))
        .await
        .map_err(|e| e.to_string())??;
    txn.commit().await.map_err(err)?;
    Ok((file, tables))
}

async fn sqlite_copy(db: &Database, dir: &Path, name: &str) -> Result<(PathBuf, TableCounts), String> {
    let file = dir.join(format!("{name}.sqlite"));
    if file.exists() {
        return Err(format!("{} already exists", file.display()));
    }
    let target = file.display().to_string().replace('\'', "''");
    db.conn().execute_unprepared(&format!("VACUUM INTO '{target}'")).await.map_err(|e| e.to_string())?;
    // Count what the copy holds, not what the live file holds by now.
    let copy = Database::connect(&Config::for_database(&format!("sqlite://{}", file.display())))
        .await
        .map_err(|e| e.to_string())?;
    let tables = Database::table_counts(&copy.conn().reads()).await.map_err(|e| e.to_string());
    copy.close().await;
    Ok((file, tables?))
}

/// The chart's labels of a release's PostgreSQL pod; they hold whatever
/// `fullnameOverride` or `nameOverride` say.
fn postgres_pod_selector(release: &str) -> String {
    format!("app.kubernetes.io/instance={release},app.kubernetes.io/component=postgresql")
}

/// Streams `pg_dump` out of the release's PostgreSQL pod.
fn from_release(release: &str, args: &Args, name: &str) -> Result<(PathBuf, Manifest), String> {
    tools::require("kubectl", &["version", "--client"], "install kubectl")?;
    let pod = match &args.pod {
        Some(pod) => pod.clone(),
        None => {
            let selector = postgres_pod_selector(release);
            let found = tools::output(
                "kubectl",
                &[
                    "get",
                    "pods",
                    "-n",
                    &args.namespace,
                    "-l",
                    &selector,
                    "-o",
                    "jsonpath={.items[0].metadata.name}",
                ]
                .map(String::from),
            )?;
            let found = found.trim().to_owned();
            if found.is_empty() {
                return Err(format!(
                    "no pod labelled {selector} in namespace {}; is the release's PostgreSQL in the cluster? \
                     (otherwise pass --pod or back up with --database-url)",
                    args.namespace
                ));
            }
            found
        }
    };
    let file = args.output.join(format!("{name}.dump"));
    let exec = |script: &str| -> Vec<String> {
        ["exec", "-n", &args.namespace, &pod, "-c", "postgresql", "--", "sh", "-c", script]
            .map(String::from)
            .into()
    };
    tools::output_to_file(
        "kubectl",
        &exec(r#"pg_dump --format=custom --no-owner --no-privileges -U "$POSTGRES_USER" -d "$POSTGRES_DB""#),
        &file,
    )?;
    let counts_sql = db::TABLES
        .iter()
        .map(|t| format!("(SELECT COUNT(*) FROM {t})"))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    let psql = |sql: &str| format!(r#"psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tA -c "{sql}""#);
    let counts = tools::output("kubectl", &exec(&psql(&format!("SELECT {counts_sql}"))))?;
    let version = tools::output(
        "kubectl",
        &exec(&psql("SELECT version FROM seaql_migrations ORDER BY version DESC LIMIT 1")),
    )?;
    let mut manifest =
        empty_manifest("postgres", format!("release {release} in namespace {}", args.namespace), &file);
    manifest.schema_version = Some(version.trim().to_owned()).filter(|v| !v.is_empty());
    for (table, n) in db::TABLES.iter().zip(counts.trim().split(',')) {
        let n = n.trim().parse().map_err(|_| format!("unexpected count output: {counts:?}"))?;
        manifest.tables.insert((*table).to_owned(), n);
    }
    Ok((file, manifest))
}
