//! Restores: checksum, emptiness guard, restore, migrate, and row counts
//! that must equal the manifest's.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use super::{
    libpq,
    manifest::{self, Manifest},
    progress::Progress,
    tools,
};
use crate::{
    config::{Backend, Config},
    db::{Database, Db, TableCounts},
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

/// Restores the backup `args` name.
pub async fn run(args: &Args) -> Result<(), String> {
    let manifest = Manifest::read(&args.manifest)?;
    let dump = args
        .manifest
        .parent()
        .map(|dir| dir.join(&manifest.file))
        .unwrap_or_else(|| manifest.file.clone().into());
    let dump = std::path::absolute(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let progress = Progress::start("restoring");
    progress.set(|| "checking the sha256".into());
    let (sha256, _) = manifest::digest(&dump)?;
    if sha256 != manifest.sha256 {
        return Err(format!(
            "{} does not match its manifest (sha256 {sha256}, expected {}): the dump is corrupted or not this backup's; nothing was changed",
            dump.display(),
            manifest.sha256
        ));
    }
    let config = Config::for_database(&args.database_url);
    let target = config.direct_database_url().map_err(|e| e.to_string())?;
    let backend = target.backend().ok_or_else(|| format!("unsupported database URL `{target}`"))?;
    if backend.name() != manifest.backend {
        return Err(format!("this is a {} backup; the target is {}", manifest.backend, backend.name()));
    }
    let started = Instant::now();
    let existing = {
        let db = Database::connect(&config).await.map_err(|e| e.to_string())?;
        let counts = Database::table_counts(&db.conn().reads()).await.map_err(|e| e.to_string());
        if backend == Backend::Sqlite {
            // Fold the write-ahead log into the file, so nothing of the old
            // database is left beside it once the new copy replaces it.
            db.conn()
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .map_err(|e| e.to_string())?;
        }
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
    progress.set(|| format!("restoring {}", super::progress::size(manifest.bytes)));
    match backend {
        Backend::Postgres => {
            tools::require_postgres_client("pg_restore")?;
            let restore = [
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--dbname=",
            ]
            .map(String::from)
            .into_iter()
            .chain([dump.display().to_string()])
            .collect::<Vec<_>>();
            let env = libpq::environment(&args.database_url)?;
            tokio::task::spawn_blocking(move || tools::run("pg_restore", &restore, &env))
                .await
                .map_err(|e| e.to_string())??;
        }
        Backend::Sqlite => replace_file(&dump, &manifest::sqlite_path(&args.database_url))?,
    }
    progress.set(|| "migrating and counting rows".into());
    let db = Database::connect(&config).await.map_err(|e| e.to_string())?;
    db.migrate_up().await.map_err(|e| format!("migrating the restored database: {e}"))?;
    let restored = Database::table_counts(&db.conn().reads()).await.map_err(|e| e.to_string());
    db.close().await;
    let restored = restored?;
    if restored != manifest.tables {
        return Err(format!(
            "restored row counts ({}) differ from the manifest ({})",
            describe(&restored),
            describe(&manifest.tables)
        ));
    }
    progress.finish();
    eprintln!("restored {} in {:.2} s: {}", target, started.elapsed().as_secs_f64(), describe(&restored));
    Ok(())
}

/// Puts a copy of `source` at `target` without ever leaving `target`
/// missing or half written: the copy is completed and synced beside it,
/// then renamed over it in one step.
fn replace_file(source: &Path, target: &Path) -> Result<(), String> {
    let partial = PathBuf::from(format!("{}.restoring-{}", target.display(), std::process::id()));
    let copied = (|| {
        let mut from = std::fs::File::open(source)?;
        let mut to = std::fs::File::create(&partial)?;
        std::io::copy(&mut from, &mut to)?;
        to.flush()?;
        to.sync_all()
    })();
    if let Err(e) = copied {
        drop(std::fs::remove_file(&partial));
        return Err(format!("cannot write {}: {e}; {} was not changed", partial.display(), target.display()));
    }
    // The old database's log and index belong to the old file.
    for suffix in ["-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", target.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
        }
    }
    std::fs::rename(&partial, target).map_err(|e| {
        drop(std::fs::remove_file(&partial));
        format!("cannot move the restored copy into place at {}: {e}", target.display())
    })
}

fn describe(counts: &TableCounts) -> String {
    counts.iter().map(|(t, n)| format!("{t}: {n}")).collect::<Vec<_>>().join(", ")
}
