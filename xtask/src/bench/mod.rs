//! `cargo xtask bench`: builds the release binary, runs it on PostgreSQL
//! and on SQLite, seeds through the API, drives each scenario at a fixed
//! concurrency for a fixed time, runs pgbench with the same SQL work in
//! the same run, and prints one table. Measured, never asserted.

mod index;
mod load;
mod pgbench;
mod scenarios;
mod server;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub use self::scenarios::Scenario;
pub use db_backend::Backend;

use self::server::Process;
use crate::run::{output, workspace_root};

/// Benchmark options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The PostgreSQL server to use (a schema of its own is made and
    /// dropped) [default: TEST_DATABASE_URL, else postgres://postgres@localhost/postgres].
    #[arg(long)]
    pub database_url: Option<String>,
    /// Connections, each a closed loop.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Backends to run on: `postgres`, `sqlite`.
    #[arg(long, value_delimiter = ',', default_values = ["postgres", "sqlite"])]
    pub backends: Vec<Backend>,
    /// Scenarios to run [default: all].
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Use this binary instead of building the release one.
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Also run PostgreSQL through this transaction-mode pooler in front of
    /// the same server (e.g. `postgres://user:pw@127.0.0.1:6432/db`, as
    /// `.ci/pgbouncer.sh` starts one): the server with `database.pooler =
    /// transaction`, pgbench through the same pooler. The run's role and
    /// schema are made on the database URL (its role needs CREATEROLE).
    #[arg(long)]
    pub pooler_url: Option<String>,
}

/// What one pass of the run is served by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Target {
    backend: Backend,
    /// PostgreSQL reached through the pooler.
    pooled: bool,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pooled { write!(f, "{} via pooler", self.backend) } else { write!(f, "{}", self.backend) }
    }
}

/// One line of the table.
struct Row {
    target: Target,
    scenario: Scenario,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    cores: f64,
    /// Server CPU milliseconds per operation.
    server_cpu_ms: f64,
    /// PostgreSQL's CPU milliseconds per operation (its processes on this
    /// machine, over the same interval).
    postgres_cpu_ms: Option<f64>,
    peak_rss_mib: f64,
    pgbench_tps: Option<f64>,
}

pub fn run(args: &Args) -> Result<(), String> {
    let binary = match &args.binary {
        Some(binary) => std::fs::canonicalize(binary).map_err(|e| format!("{}: {e}", binary.display()))?,
        None => crate::release::binary()?,
    };
    let scenarios = if args.scenarios.is_empty() { Scenario::ALL.to_vec() } else { args.scenarios.clone() };
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut rows = Vec::new();
    let mut index_rows = Vec::new();
    let mut starts = Vec::new();
    let targets = args.backends.iter().flat_map(|&backend| {
        let pooled = backend == Backend::Postgres && args.pooler_url.is_some();
        [Target { backend, pooled: false }]
            .into_iter()
            .chain(pooled.then_some(Target { backend, pooled: true }))
    });
    for target in targets {
        let backend = target.backend;
        let database = Database::new(args, target, &dir)?;
        let server = Process::start(&binary, &database.url, &dir, &database.env)?;
        std::thread::sleep(Duration::from_secs(1));
        starts.push((target, server.first_ok, server.rss_mib()));
        let seeded = runtime.block_on(scenarios::seed(server.addr, args.concurrency));
        if let Err(e) = seeded {
            server.stop();
            database.remove();
            return Err(format!("seeding on {target}: {e}"));
        }
        for &scenario in &scenarios {
            eprintln!("{target}: {} …", scenario.name());
            if scenario == Scenario::SearchIndex {
                let budget = Duration::from_secs(args.seconds);
                let measured = index::measure(&runtime, &binary, &database, &dir, budget);
                index_rows.extend(measured?.into_iter().map(|row| (target, row)));
                continue;
            }
            if let Err(e) = database.settle() {
                eprintln!("  not vacuumed first: {e}");
            }
            server.reset_peak();
            let cpu = server.cpu();
            let postgres_cpu = (backend == Backend::Postgres).then(server::postgres_cpu).flatten();
            let duration = Duration::from_secs(args.seconds);
            let measured =
                runtime.block_on(scenarios::run(scenario, server.addr, args.concurrency, duration));
            let server_cpu = (server.cpu() - cpu).as_secs_f64();
            let postgres_cpu = postgres_cpu
                .zip(server::postgres_cpu())
                .map(|(was, is)| server::postgres_cpu_between(&was, &is).as_secs_f64());
            let cores = server_cpu / measured.elapsed.as_secs_f64();
            let operations = measured.count().max(1) as f64;
            if let Some(error) = &measured.first_error {
                eprintln!("  {} errors, the first: {error}", measured.errors);
            }
            let pgbench_tps = match (&database.pgbench, pgbench::script(scenario)) {
                (Some(url), Some(script)) => {
                    Some(pgbench::tps(url, target.pooled, &script, args.concurrency, duration, &dir)?)
                }
                _ => None,
            };
            rows.push(Row {
                target,
                scenario,
                per_second: measured.per_second(),
                p50_ms: measured.latency.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: measured.latency.value_at_quantile(0.99) as f64 / 1000.0,
                errors: measured.errors,
                cores,
                server_cpu_ms: server_cpu * 1000.0 / operations,
                postgres_cpu_ms: postgres_cpu.map(|cpu| cpu * 1000.0 / operations),
                peak_rss_mib: server.peak_rss_mib(),
                pgbench_tps,
            });
        }
        server.stop();
        database.remove();
    }
    print!("{}{}", table(&rows, &starts, args), index_table(&index_rows));
    Ok(())
}

/// Where one pass's data lives.
struct Database {
    /// What the server connects to.
    url: String,
    /// The server's environment besides the URL.
    env: Vec<(&'static str, String)>,
    /// What pgbench connects to (PostgreSQL only).
    pgbench: Option<String>,
    /// The server-level URL and the schema made for the run.
    schema: Option<(String, String)>,
    /// The schema is also a role's, made for the run (through a pooler,
    /// which passes no startup options, the role's default search path
    /// selects the schema).
    role: bool,
}

impl Database {
    fn new(args: &Args, target: Target, dir: &Path) -> Result<Self, String> {
        match target.backend {
            Backend::Sqlite => {
                let file = dir.join("bench.db");
                for suffix in ["", "-wal", "-shm"] {
                    drop(std::fs::remove_file(format!("{}{suffix}", file.display())));
                }
                let url = format!("sqlite://{}?mode=rwc", file.display());
                Ok(Self { url, env: Vec::new(), pgbench: None, schema: None, role: false })
            }
            Backend::Postgres => {
                let base = args
                    .database_url
                    .clone()
                    .or_else(|| std::env::var("TEST_DATABASE_URL").ok())
                    .unwrap_or_else(|| "postgres://postgres@localhost/postgres".into());
                let schema = format!("bench_{}", std::process::id());
                output("psql", &[base.clone(), "-qc".into(), format!("CREATE SCHEMA {schema}")])?;
                let schema_of_run = Some((base.clone(), schema.clone()));
                let Some(pooler) = args.pooler_url.as_ref().filter(|_| target.pooled) else {
                    let separator = if base.contains('?') { '&' } else { '?' };
                    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
                    let pgbench = Some(url.clone());
                    return Ok(Self { url, env: Vec::new(), pgbench, schema: schema_of_run, role: false });
                };
                let role = format!(
                    "CREATE ROLE {schema} LOGIN PASSWORD '{schema}'; \
                     GRANT USAGE, CREATE ON SCHEMA {schema} TO {schema}; \
                     ALTER ROLE {schema} SET search_path = {schema}"
                );
                output("psql", &[base.clone(), "-qc".into(), role])?;
                let (url, direct) = (with_login(pooler, &schema)?, with_login(&base, &schema)?);
                let env = vec![
                    ("SESSION_BACKEND_DATABASE__POOLER", "transaction".to_owned()),
                    ("SESSION_BACKEND_DATABASE__DIRECT_URL", direct),
                ];
                Ok(Self { url: url.clone(), env, pgbench: Some(url), schema: schema_of_run, role: true })
            }
        }
    }

    /// Vacuums and analyzes the run's tables (PostgreSQL), so that the rows
    /// one scenario wrote do not leave autovacuum running into the next.
    fn settle(&self) -> Result<(), String> {
        let Some((_, schema)) = &self.schema else { return Ok(()) };
        let listed = format!("SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'");
        let tables = output("psql", &[self.url.clone(), "-Atc".into(), listed])?;
        let tables: Vec<String> = tables.lines().map(|t| format!("{schema}.\"{t}\"")).collect();
        if tables.is_empty() {
            return Ok(());
        }
        output("psql", &[self.url.clone(), "-qc".into(), format!("VACUUM (ANALYZE) {}", tables.join(", "))])
            .map(drop)
    }

    /// The size of the search index (PostgreSQL: `blob_text` with its
    /// indexes, after a vacuum merges GIN's pending entries; SQLite: the
    /// pages of `blob_text`, its index and the FTS5 tables, by `dbstat`
    /// through the `sqlite3` program).
    fn index_bytes(&self) -> Result<u64, String> {
        let size = match &self.schema {
            Some(_) => {
                output("psql", &[self.url.clone(), "-qc".into(), "VACUUM blob_text".into()])?;
                let sql = "SELECT pg_total_relation_size('blob_text')";
                output("psql", &[self.url.clone(), "-Atc".into(), sql.into()])?
            }
            None => {
                let file = self.url.trim_start_matches("sqlite://").trim_end_matches("?mode=rwc").to_owned();
                let sql = "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('blob_text', 'idx_blob_text_version') \
                           OR name LIKE 'blob\\_words\\_%' ESCAPE '\\'";
                output("sqlite3", &[file, sql.into()])?
            }
        };
        size.trim().parse().map_err(|_| format!("unexpected size {size:?}"))
    }

    /// Drops what the run made.
    fn remove(self) {
        if let Some((base, schema)) = self.schema {
            drop(output("psql", &[base.clone(), "-qc".into(), format!("DROP SCHEMA {schema} CASCADE")]));
            if self.role {
                drop(output("psql", &[base, "-qc".into(), format!("DROP ROLE {schema}")]));
            }
        }
    }
}

/// `url` logging in as `role`, whose password is its name.
fn with_login(url: &str, role: &str) -> Result<String, String> {
    let mut url = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    url.set_username(role)
        .and_then(|()| url.set_password(Some(role)))
        .map_err(|()| "a URL without a host".to_owned())?;
    Ok(url.into())
}

fn index_table(rows: &[(Target, index::IndexRow)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n| backend | snapshot | write ms, indexed | write ms, not indexed | index size | index / value |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for (backend, row) in rows {
        let (size, share) = match row.index_bytes {
            Some(bytes) => (
                format!("{:.2} MiB", bytes as f64 / 1048576.0),
                format!("{:.2}", bytes as f64 / (row.mib << 20) as f64),
            ),
            None => ("n/a".into(), "n/a".into()),
        };
        out.push_str(&format!(
            "| {backend} | {} MiB | {:.0} | {:.0} | {size} | {share} |\n",
            row.mib, row.indexed_ms, row.unindexed_ms
        ));
    }
    out
}

fn table(rows: &[Row], starts: &[(Target, Duration, f64)], args: &Args) -> String {
    let mut out = format!(
        "\n{} connections, {} s per scenario\n\n\
         | backend | scenario | req/s | p50 ms | p99 ms | errors | server CPU (cores) | server CPU ms/op | PostgreSQL CPU ms/op | peak RSS MiB | pgbench tps | server/pgbench |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        args.concurrency, args.seconds
    );
    for row in rows {
        let (tps, ratio) = match row.pgbench_tps {
            Some(tps) => (format!("{tps:.0}"), format!("{:.2}", row.per_second / tps)),
            None => ("".into(), "".into()),
        };
        let postgres_cpu = row.postgres_cpu_ms.map(|ms| format!("{ms:.3}")).unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.2} | {:.3} | {postgres_cpu} | {:.1} | {tps} | {ratio} |\n",
            row.target,
            row.scenario.name(),
            row.per_second,
            row.p50_ms,
            row.p99_ms,
            row.errors,
            row.cores,
            row.server_cpu_ms,
            row.peak_rss_mib,
        ));
    }
    out.push_str("\n| backend | start → first 200 | idle RSS MiB |\n|---|---:|---:|\n");
    for (backend, first_ok, rss) in starts {
        out.push_str(&format!("| {backend} | {:.1} ms | {rss:.1} |\n", first_ok.as_secs_f64() * 1000.0));
    }
    out
}
