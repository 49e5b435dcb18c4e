//! Commands: `serve` (default), `migrate`, `openapi`, `healthcheck`, `config`,
//! `keys`, `backup`, `restore`, `import`, `export`, `sessions`.

mod healthcheck;
mod keys;
mod migrate;
mod sessions;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use session_backend::{
    Server,
    config::{Config, Loaded},
    ops, telemetry,
};

/// Session storage for Strands agents: one binary, SQLite or PostgreSQL.
///
/// Configuration comes from built-in defaults, an optional TOML file and the
/// environment (`SESSION_BACKEND_<SECTION>__<KEY>`, or the earlier service's
/// `DATABASE_URL`, `API_HOST`, `API_PORT`, `LOG_LEVEL`, `LOG_FORMAT`,
/// `POSTGRES_*`). See `session-backend config` for the effective values.
#[derive(Debug, Parser)]
#[command(name = "session-backend", version)]
pub struct Cli {
    /// TOML configuration file (also `SESSION_BACKEND_CONFIG`).
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default): migrates unless `auto_migrate` is
    /// false, drains in-flight requests on SIGTERM/SIGINT and exits 0.
    Serve(ServeArgs),
    /// Inspect or change the database schema.
    Migrate {
        #[command(subcommand)]
        action: migrate::Action,
    },
    /// Print the OpenAPI document (JSON) to standard output.
    Openapi,
    /// Probe a running server; exit 0 when it answers 200, else 1. For
    /// container health checks in images without curl.
    Healthcheck(healthcheck::Args),
    /// Print the effective configuration as TOML, secrets masked.
    Config,
    /// Mint API keys.
    Keys {
        #[command(subcommand)]
        action: keys::Action,
    },
    /// Back up a database (PostgreSQL: pg_dump custom format; SQLite: an
    /// online copy) with a manifest of row counts and a sha256.
    Backup(ops::backup::Args),
    /// Restore a backup: verify its checksum, refuse a non-empty target
    /// without --force, restore, migrate, and check the row counts.
    Restore(ops::restore::Args),
    /// Import sessions from another store into the configured database.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Export sessions from the configured database to another store.
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Read, export, import, fork and delete a running service's sessions
    /// through its API.
    Sessions(sessions::Args),
}

#[derive(Debug, Default, clap::Args)]
struct ServeArgs {
    /// Listen on this port instead of `server.port`; 0 lets the system
    /// choose one, which the line on standard output then names.
    #[arg(long)]
    port: Option<u16>,
    /// Listen on this address instead of `server.host`.
    #[arg(long)]
    host: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ImportSource {
    /// What the SDK's `FileSessionManager` wrote: sessions, agents,
    /// messages and multi-agent states, timestamps kept. Rows already
    /// stored are left as they are, so a second run changes nothing.
    FileSessions(ops::file_sessions::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum ExportTarget {
    /// The SDK's `FileSessionManager` layout, which it can resume from.
    FileSessions(ops::file_sessions::ExportArgs),
}

impl Cli {
    /// Whether this runs the server (the default command).
    pub fn serves(&self) -> bool {
        matches!(self.command, None | Some(Command::Serve(_)))
    }
}

/// Runs the chosen command; `Err` is one line for standard error.
pub async fn run(cli: Cli) -> Result<ExitCode, String> {
    let load = || Config::load(cli.config.as_deref()).map_err(|e| e.to_string());
    match cli.command.unwrap_or_else(|| Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            let mut loaded = load()?;
            if let Some(port) = args.port {
                loaded.config.server.port = port;
            }
            if let Some(host) = args.host {
                loaded.config.server.host = host;
            }
            let telemetry = telemetry::init(&loaded.config.log, true);
            let served = serve(announced(loaded)).await;
            telemetry.shutdown();
            served.map(|()| ExitCode::SUCCESS)
        }
        Command::Migrate { action } => {
            migrate::run(&logging(load()?), action).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", session_backend::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck(args) => Ok(healthcheck::run(&load()?.config, &args).await),
        Command::Config => {
            let loaded = load()?;
            if let Some(warning) = loaded.warning {
                eprintln!("warning: {warning}");
            }
            print!("{}", loaded.config.to_masked_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { action } => keys::run(&action).map(|()| ExitCode::SUCCESS),
        Command::Backup(args) => ops::backup::run(&args).await.map(|()| ExitCode::SUCCESS),
        Command::Restore(args) => ops::restore::run(&args).await.map(|()| ExitCode::SUCCESS),
        Command::Import { source: ImportSource::FileSessions(args) } => {
            let imported = ops::file_sessions::import(&logging(load()?), &args).await?;
            for problem in &imported.skipped {
                eprintln!("skipped {problem}");
            }
            let verb = if args.dry_run { "dry run, nothing written" } else { "imported" };
            println!("{verb}\n{imported}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Sessions(args) => sessions::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Export { target: ExportTarget::FileSessions(args) } => {
            let exported = ops::file_sessions::export(&logging(load()?), &args).await?;
            println!("{exported} to {}", args.dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Starts logging (traces are for `serve`) and says, once, what the
/// configuration ignored.
fn logging(loaded: Loaded) -> Config {
    telemetry::init(&loaded.config.log, false);
    announced(loaded)
}

/// Logs, once, what the configuration ignored.
fn announced(loaded: Loaded) -> Config {
    if let Some(warning) = loaded.warning {
        tracing::warn!("{warning}");
    }
    loaded.config
}

async fn serve(config: Config) -> Result<(), String> {
    let url = config.database_url().map_err(|e| e.to_string())?;
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    announce(server.local_addr());
    tracing::info!(
        address = %server.local_addr(),
        database = %url,
        version = session_backend::VERSION,
        "serving; Swagger UI at http://{}/docs",
        server.local_addr()
    );
    server.run(shutdown_signal()).await.map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Says where the server listens, as the one line it writes to standard
/// output (logs go to standard error): with port 0, how a program that
/// started it learns the port the system chose. A closed output is no error.
fn announce(address: std::net::SocketAddr) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "session-backend listening on http://{address}");
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => drop(interrupt.await),
        }
    }
    #[cfg(not(unix))]
    drop(interrupt.await);
    tracing::info!("shutdown requested; draining in-flight requests");
}
