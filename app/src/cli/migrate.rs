//! `session-backend migrate up|down|status|fresh`.

use clap::Subcommand;
use migration::{MigrationStatus, Migrator, MigratorTrait};
use session_backend::{config::Config, db::Database};

/// Schema actions.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Apply every pending migration (safe with several replicas: on
    /// PostgreSQL they take turns under an advisory lock).
    Up,
    /// Roll back the latest migrations. Their tables and data are dropped.
    Down {
        /// How many migrations to roll back.
        #[arg(long, default_value_t = 1)]
        steps: u32,
        /// Confirm that data may be lost.
        #[arg(long)]
        yes: bool,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Roll back every migration of this service and apply them again:
    /// an empty schema. Only the service's own tables are touched.
    Fresh {
        /// Confirm that all data is lost.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs `action` against the configured database.
pub async fn run(config: &Config, action: Action) -> Result<(), String> {
    let db = Database::connect(config).await.map_err(|e| e.to_string())?;
    let conn = db.orm();
    let failed = |e: sea_orm::DbErr| format!("migration failed: {e}");
    match action {
        Action::Up => {
            db.migrate_up().await.map_err(failed)?;
            println!("schema is up to date");
        }
        Action::Down { steps, yes } => {
            confirm(yes, "rolling back drops tables and their data")?;
            Migrator::down(conn, Some(steps)).await.map_err(failed)?;
            println!("rolled back {steps} migration(s)");
        }
        Action::Status => {
            for migration in Migrator::get_migration_with_status(conn).await.map_err(failed)? {
                let status = match migration.status() {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => "pending",
                };
                println!("{status:8} {}", migration.name());
            }
        }
        Action::Fresh { yes } => {
            confirm(yes, "fresh deletes every session, agent and message")?;
            Migrator::reset(conn).await.map_err(failed)?;
            db.migrate_up().await.map_err(failed)?;
            println!("schema re-created, empty");
        }
    }
    db.close().await;
    Ok(())
}

fn confirm(yes: bool, why: &str) -> Result<(), String> {
    if yes { Ok(()) } else { Err(format!("{why}; add --yes to confirm")) }
}
