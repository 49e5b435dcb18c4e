//! `cargo xtask restore`: checksum, emptiness guard, restore, migrate, and
//! row counts that must equal the manifest's.

use std::{path::PathBuf, time::Instant};

use session_backend::{config::Backend, db::Database};

use crate::{
    manifest::{self, Manifest},
    run::{block_on, cmd_with_env, require},
};

/// Restore options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup's `<name>.manifest.json` (the dump lies beside it).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The database to restore into (`postgres://…` or `sqlite://…`; for a
    /// cluster, port-forward its PostgreSQL first). A SQLite target must not
    /// be in use by a running server.
    #[arg(long)]
    pub database_url: String,
    /// Replace the data of a target that is not empty.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let manifest = Manifest::read(&args.manifest)?;
    let dump = args
        .manifest
        .parent()
        .map(|dir| dir.join(&manifest.file))
        .unwrap_or_else(|| manifest.file.clone().into());
    let dump = std::path::absolute(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let (sha256, _) = manifest::digest(&dump)?;
    if sha256 != manifest.sha256 {
        return Err(format!(
            "{} does not match its manifest (sha256 {sha256}, expected {}): the dump is corrupted or not this backup's; nothing was changed",
            dump.display(),
            manifest.sha256
        ));
    }
    block_on(restore(args, &manifest, dump))?
}

async fn restore(args: &Args, manifest: &Manifest, dump: PathBuf) -> Result<(), String> {
    let config = manifest::config_for(&args.database_url);
    let target = config.database_url().map_err(|e| e.to_string())?;
    let backend = target.backend().ok_or_else(|| format!("unsupported database URL `{target}`"))?;
    if manifest::backend_name(backend) != manifest.backend {
        return Err(format!(
            "this is a {} backup; the target is {}",
            manifest.backend,
            manifest::backend_name(backend)
        ));
    }
    let started = Instant::now();
    let existing = {
        let db = Database::connect(&config).await.map_err(|e| e.to_string())?;
        let counts = Database::table_counts(db.conn()).await.map_err(|e| e.to_string());
        db.close().await;
        counts?
    };
    let rows: u64 = existing.values().sum();
    if rows > 0 && !args.force {
        return Err(format!(
            "the target {target} is not empty ({}); add --force to replace its data; nothing was changed",
            describe(&existing)
        ));
    }
    match backend {
        Backend::Postgres => {
            require(
                "pg_restore",
                &["--version"],
                "install the PostgreSQL client (apt-get install postgresql-client)",
            )?;
            let (libpq_url, password) = manifest::libpq_target(&args.database_url);
            cmd_with_env(
                "pg_restore",
                &[
                    "--clean".into(),
                    "--if-exists".into(),
                    "--no-owner".into(),
                    "--no-privileges".into(),
                    "--single-transaction".into(),
                    "--exit-on-error".into(),
                    format!("--dbname={libpq_url}"),
                    dump.display().to_string(),
                ],
                &password.map(|p| vec![("PGPASSWORD", p)]).unwrap_or_default(),
            )?;
        }
        Backend::Sqlite => {
            let path = manifest::sqlite_path(&args.database_url);
            for suffix in ["", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                if file.exists() {
                    std::fs::remove_file(&file)
                        .map_err(|e| format!("cannot replace {}: {e}", file.display()))?;
                }
            }
            std::fs::copy(&dump, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    let db = Database::connect(&config).await.map_err(|e| e.to_string())?;
    db.migrate_up().await.map_err(|e| format!("migrating the restored database: {e}"))?;
    let restored = Database::table_counts(db.conn()).await.map_err(|e| e.to_string());
    db.close().await;
    let restored = restored?;
    if restored != manifest.tables {
        return Err(format!(
            "restored row counts ({}) differ from the manifest ({})",
            describe(&restored),
            describe(&manifest.tables)
        ));
    }
    eprintln!("restored {} in {:.2} s: {}", target, started.elapsed().as_secs_f64(), describe(&restored));
    Ok(())
}

fn describe(counts: &session_backend::db::TableCounts) -> String {
    counts.iter().map(|(t, n)| format!("{t}: {n}")).collect::<Vec<_>>().join(", ")
}
