//! The settings of each part of the service, with their defaults.

use serde::{Deserialize, Deserializer, Serialize};

use super::{DatabaseUrl, Secret, env};

/// `/metrics` (Prometheus) and the traffic figures of `/health/metrics`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve them to anyone, without a key.
    pub public: bool,
    /// Operators' metrics keys as `NAME HASH` entries (like `auth.keys`).
    pub keys: TextList,
    /// A file of `NAME HASH` lines, read again like `auth.keys_file`.
    pub keys_file: Option<String>,
}

impl MetricsConfig {
    /// Whether operators' metrics keys are configured.
    pub fn keyed(&self) -> bool {
        !self.keys.0.is_empty() || self.keys_file.is_some()
    }
}

/// Session retention (see [`crate::store::retention`]).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// TTL of sessions created without `ttl_seconds`; 0 keeps them forever.
    pub default_ttl_seconds: u64,
    /// How often the sweeper deletes lapsed sessions; 0 turns it off.
    pub sweep_interval_ms: u64,
    /// Sessions deleted per statement (each with everything under it).
    pub sweep_batch: u64,
    /// A snapshot session (blobs under `session/<id>/`, no session row) is
    /// deleted once nothing under it has been written for this long; 0
    /// keeps them forever.
    pub snapshot_ttl_seconds: u64,
    /// Snapshots under `…/immutable_history/` older than this are deleted
    /// (the latest snapshots stay); 0 keeps the history forever.
    pub snapshot_history_ttl_seconds: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            default_ttl_seconds: 0,
            sweep_interval_ms: 60_000,
            sweep_batch: 100,
            snapshot_ttl_seconds: 0,
            snapshot_history_ttl_seconds: 0,
        }
    }
}

/// API keys (see [`crate::auth`]). Authentication is on when `keys` or
/// `keys_file` is set, off (tenant `default` for everyone) otherwise.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `TENANT HASH` entries (in the environment: separated by `,` or newlines).
    pub keys: TextList,
    /// A file of `TENANT HASH` lines, read again when it changes and on SIGHUP.
    pub keys_file: Option<String>,
    /// How often the keys file is checked for changes.
    pub reload_interval_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { keys: TextList::default(), keys_file: None, reload_interval_ms: 2_000 }
    }
}

impl AuthConfig {
    /// Whether requests need a key.
    pub fn enabled(&self) -> bool {
        !self.keys.0.is_empty() || self.keys_file.is_some()
    }
}

/// Text entries, from a TOML list or one string of lines or commas
/// (`TENANT HASH` keys, host names).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct TextList(Vec<String>);

impl TextList {
    /// The entries, trimmed, empty ones left out.
    pub fn entries(&self) -> &[String] {
        &self.0
    }

    /// The entries of `setting` as a key set; an error names the bad entry.
    pub fn key_set(&self, setting: &str) -> Result<crate::domain::keys::KeySet, String> {
        crate::domain::keys::KeySet::parse(&self.0.join("\n"), &env::describe(setting))
    }
}

impl<S: Into<String>> FromIterator<S> for TextList {
    fn from_iter<I: IntoIterator<Item = S>>(entries: I) -> Self {
        Self(entries.into_iter().map(Into::into).collect())
    }
}

impl<'de> Deserialize<'de> for TextList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let entries = match Raw::deserialize(d)? {
            Raw::One(text) => text.split([',', '\n']).map(str::to_owned).collect(),
            Raw::Many(entries) => entries,
        };
        let entries: Vec<String> =
            entries.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
        Ok(Self(entries))
    }
}

/// A per-tenant request rate limit (token bucket), off by default.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests a tenant may make per second on average; 0 turns the limit off.
    pub requests_per_second: u32,
    /// How many it may make at once after a quiet spell; 0 means one second's worth.
    pub burst: u32,
}

/// The blob store behind `/api/v1/storage` (the SDK's `Storage`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Largest value; larger writes are answered 413 and store nothing.
    pub max_value_bytes: u64,
    /// How much of a text value the search index reads (its first bytes);
    /// 0 turns indexing off.
    pub search_index_bytes: usize,
    /// The most bytes of values one search answer carries
    /// (`with_values=true`); hits past it come without their value.
    pub search_values_bytes: u64,
    /// The longest a value's upload (408 after it, nothing stored) or
    /// download (cut off after it) may take; replaced values' chunks are
    /// kept a little longer than this for the downloads still running.
    /// Also bounds a session export's snapshot and a session import.
    pub transfer_timeout_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_value_bytes: 64 * 1024 * 1024,
            search_index_bytes: 64 * 1024 * 1024,
            search_values_bytes: 4 * 1024 * 1024,
            transfer_timeout_ms: 600_000,
        }
    }
}

/// The HTTP listener and what it allows clients.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// TCP port, 1 to 65535.
    pub port: u16,
    /// Largest accepted request body; larger ones are answered 413.
    pub body_limit_bytes: usize,
    /// An API request still running after this long is answered 503.
    pub request_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_timeout_ms: u64,
    /// A request's headers must be complete this long after its first byte.
    pub header_timeout_ms: u64,
    /// Longest pause while a request body arrives.
    pub body_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// Longest wait for a client to take more of a response.
    pub write_timeout_ms: u64,
    /// Open connections at most; further ones are closed at once.
    pub max_connections: usize,
    /// Bodies over 1 MiB are handled while their sizes add up to at most
    /// this; others wait their turn (up to `request_timeout_ms`), so memory
    /// stays bounded however many arrive at once.
    pub large_bodies_in_flight_bytes: usize,
    /// Largest session document `POST /api/v1/sessions/import` reads
    /// (it streams, so this bounds the database's work, not memory).
    pub import_limit_bytes: u64,
    /// While API keys are off, the `Host` names answered besides IP
    /// addresses, one-label names and the built-in ones: `name`, `.domain`
    /// or `*.domain` (it and every name under it) or `*` (any); see
    /// [`crate::domain::hosts`].
    pub allowed_hosts: TextList,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8001,
            body_limit_bytes: 16 * 1024 * 1024,
            request_timeout_ms: 10_000,
            shutdown_timeout_ms: 15_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_ms: 75_000,
            write_timeout_ms: 30_000,
            max_connections: 1024,
            large_bodies_in_flight_bytes: 16 * 1024 * 1024,
            import_limit_bytes: 1024 * 1024 * 1024,
            allowed_hosts: TextList::default(),
        }
    }
}

impl ServerConfig {
    /// `allowed_hosts` as patterns, or what is wrong with one.
    pub fn host_patterns(&self) -> Result<crate::domain::hosts::HostPatterns, String> {
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        crate::domain::hosts::HostPatterns::parse(self.allowed_hosts.entries(), in_cluster)
            .map_err(|problem| format!("invalid {}: {problem}", env::describe("server.allowed_hosts")))
    }
}

/// Where the data lives and how the pool behaves.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user:password@host:port/db`.
    pub url: Option<DatabaseUrl>,
    /// A file holding the URL (takes effect when `url` is unset).
    pub url_file: Option<String>,
    /// Parts of a PostgreSQL URL, used when no URL is given.
    pub postgres: PostgresParts,
    /// `transaction` when the URL leads to a transaction-mode pooler
    /// (PgBouncer, RDS Proxy, Supavisor…): statements then rely on no
    /// session state. Needs `direct_url` (or `postgres.direct_host`).
    pub pooler: Pooler,
    /// The database itself, past the pooler: migrations, the start-up
    /// schema check, backups and restores use it (default: `url`).
    pub direct_url: Option<DatabaseUrl>,
    /// A file holding `direct_url` (takes effect when it is unset).
    pub direct_url_file: Option<String>,
    /// Pool size (SQLite: readers share it, writes take turns).
    pub max_connections: u32,
    /// How long a request waits for a connection (or, on SQLite, for the
    /// write lock) before it is answered 503.
    pub acquire_timeout_ms: u64,
    /// Upper bound of `/health/db` and `/health/ready`.
    pub health_timeout_ms: u64,
    /// PostgreSQL `statement_timeout`: a statement running longer is
    /// cancelled (and its request answered 503, nothing written).
    pub statement_timeout_ms: u64,
    /// PostgreSQL `lock_timeout`: longest wait for a row or table lock.
    pub lock_timeout_ms: u64,
    /// Apply pending migrations at start; when false, refuse to start on an
    /// out-of-date schema.
    pub auto_migrate: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            postgres: PostgresParts::default(),
            pooler: Pooler::None,
            direct_url: None,
            direct_url_file: None,
            max_connections: 10,
            acquire_timeout_ms: 1_500,
            health_timeout_ms: 2_000,
            statement_timeout_ms: 5_000,
            lock_timeout_ms: 2_000,
            auto_migrate: true,
        }
    }
}

/// What stands between the service and PostgreSQL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// Nothing: connections are the service's own.
    #[default]
    None,
    /// A pooler that hands a server connection to a client for one
    /// transaction at a time.
    Transaction,
}

/// The earlier service's `POSTGRES_*` settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresParts {
    pub host: Option<String>,
    pub port: u16,
    pub db: String,
    pub user: String,
    pub password: Option<Secret>,
    pub password_file: Option<String>,
    /// When `host` is a pooler: the database's own host, for the direct
    /// URL built from the same parts.
    pub direct_host: Option<String>,
    /// The database's own port, with `direct_host`.
    pub direct_port: u16,
}

impl Default for PostgresParts {
    fn default() -> Self {
        Self {
            host: None,
            port: 5432,
            db: "session_backend".into(),
            user: "postgres".into(),
            password: None,
            password_file: None,
            direct_host: None,
            direct_port: 5432,
        }
    }
}
