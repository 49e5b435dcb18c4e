//! Configuration: built-in defaults ← optional TOML file ← environment.
//!
//! Environment variables are `SESSION_BACKEND_<SECTION>__<KEY>` (for example
//! `SESSION_BACKEND_SERVER__PORT`); the earlier Python service's names work
//! too and lose to the prefixed form (see [`env`]). `DATABASE_URL_FILE` and
//! `POSTGRES_PASSWORD_FILE` read a secret from a file ([`secret`]).

mod env;
mod secret;
#[cfg(test)]
mod tests;

use std::{path::Path, time::Duration};

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use self::secret::{Backend, DatabaseUrl, Secret};

/// The environment variable naming a TOML configuration file.
pub const CONFIG_FILE_ENV: &str = "SESSION_BACKEND_CONFIG";

/// The SQLite database used when nothing else is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://session-backend.db?mode=rwc";

/// The whole configuration of the service.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub retention: RetentionConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

/// `/metrics` (Prometheus) and the traffic figures of `/health/metrics`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve them to anyone, without a key.
    pub public: bool,
    /// Operators' metrics keys as `NAME HASH` entries (like `auth.keys`).
    pub keys: KeyList,
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
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { default_ttl_seconds: 0, sweep_interval_ms: 60_000, sweep_batch: 100 }
    }
}

/// API keys (see [`crate::auth`]). Authentication is on when `keys` or
/// `keys_file` is set, off (tenant `default` for everyone) otherwise.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `TENANT HASH` entries (in the environment: separated by `,` or newlines).
    pub keys: KeyList,
    /// A file of `TENANT HASH` lines, read again when it changes and on SIGHUP.
    pub keys_file: Option<String>,
    /// How often the keys file is checked for changes.
    pub reload_interval_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { keys: KeyList::default(), keys_file: None, reload_interval_ms: 2_000 }
    }
}

impl AuthConfig {
    /// Whether requests need a key.
    pub fn enabled(&self) -> bool {
        !self.keys.0.is_empty() || self.keys_file.is_some()
    }
}

/// `TENANT HASH` entries, from a TOML list or one string.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct KeyList(Vec<String>);

impl KeyList {
    /// The entries of `setting` as a key set; an error names the bad entry.
    pub fn key_set(&self, setting: &str) -> Result<crate::auth::KeySet, String> {
        crate::auth::KeySet::parse(&self.0.join("\n"), &env::describe(setting))
    }
}

impl<S: Into<String>> FromIterator<S> for KeyList {
    fn from_iter<I: IntoIterator<Item = S>>(entries: I) -> Self {
        Self(entries.into_iter().map(Into::into).collect())
    }
}

impl<'de> Deserialize<'de> for KeyList {
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
    /// The longest a value's upload (408 after it, nothing stored) or
    /// download (cut off after it) may take; replaced values' chunks are
    /// kept a little longer than this for the downloads still running.
    pub transfer_timeout_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            max_value_bytes: 64 * 1024 * 1024,
            search_index_bytes: 64 * 1024 * 1024,
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
        }
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
            max_connections: 10,
            acquire_timeout_ms: 1_500,
            health_timeout_ms: 2_000,
            statement_timeout_ms: 5_000,
            lock_timeout_ms: 2_000,
            auto_migrate: true,
        }
    }
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
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

/// Log verbosity. Python's names (`WARNING`, `CRITICAL`) and any case work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The name `tracing` filters understand.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Ok(match raw.to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" | "critical" => Self::Error,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "unknown log level `{raw}`, expected one of trace, debug, info, warn, error"
                )));
            }
        })
    }
}

/// Log line format: `text` for people, `json` for machines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match raw.to_ascii_lowercase().as_str() {
            "text" | "console" | "pretty" | "plain" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(serde::de::Error::custom(format!(
                "unknown log format `{raw}`, expected `text` or `json`"
            ))),
        }
    }
}

/// Why the configuration cannot be used: one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A configuration problem described in words.
    pub fn from_message(message: String) -> Self {
        Self(message)
    }
}

/// A loaded configuration and what the operator should hear about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// At most one line: the environment variables that were ignored.
    pub warning: Option<String>,
}

impl Config {
    /// Reads defaults, the TOML file (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
        Self::load_from(
            file,
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Like [`Config::load`], with the environment given.
    pub fn load_from(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| vars.iter().find(|(name, _)| name == CONFIG_FILE_ENV).map(|(_, path)| path.into()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let (values, unknown) = env::read(vars);
        for (key, value) in values {
            figment = figment.merge(Serialized::default(key, value));
        }
        let config = figment.extract::<Self>().map_err(describe)?.validated()?;
        Ok(Loaded { config, warning: env::unknown_warning(&unknown) })
    }

    /// The defaults with `url` as the database: what tools and tests that
    /// only need a connection use.
    pub fn for_database(url: &str) -> Self {
        let mut config = Self::default();
        config.database.url = Some(DatabaseUrl::new(url));
        config
    }

    fn validated(self) -> Result<Self, ConfigError> {
        let fail =
            |key: &str, problem: &str| Err(ConfigError(format!("invalid {}: {problem}", env::describe(key))));
        if self.server.port == 0 {
            return fail("server.port", "0 is not a usable port, use 1 to 65535");
        }
        if self.server.host.trim().is_empty() {
            return fail("server.host", "empty");
        }
        for (key, n) in [
            ("server.body_limit_bytes", self.server.body_limit_bytes as u64),
            ("server.max_connections", self.server.max_connections as u64),
            ("server.large_bodies_in_flight_bytes", self.server.large_bodies_in_flight_bytes as u64),
            ("database.max_connections", u64::from(self.database.max_connections)),
            ("server.request_timeout_ms", self.server.request_timeout_ms),
            ("server.header_timeout_ms", self.server.header_timeout_ms),
            ("server.body_timeout_ms", self.server.body_timeout_ms),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
            ("server.write_timeout_ms", self.server.write_timeout_ms),
            ("database.acquire_timeout_ms", self.database.acquire_timeout_ms),
            ("database.health_timeout_ms", self.database.health_timeout_ms),
            ("database.statement_timeout_ms", self.database.statement_timeout_ms),
            ("database.lock_timeout_ms", self.database.lock_timeout_ms),
            ("auth.reload_interval_ms", self.auth.reload_interval_ms),
            ("retention.sweep_batch", self.retention.sweep_batch),
            ("storage.transfer_timeout_ms", self.storage.transfer_timeout_ms),
        ] {
            if n == 0 {
                return fail(key, "must be at least 1");
            }
        }
        // A request answered 503 by its deadline must not be written later:
        // the database gives up on the statement first.
        let db = &self.database;
        if db.acquire_timeout_ms.saturating_add(db.statement_timeout_ms) >= self.server.request_timeout_ms {
            return fail(
                "database.statement_timeout_ms",
                &format!(
                    "with database.acquire_timeout_ms ({} ms) it must stay below server.request_timeout_ms ({} ms)",
                    db.acquire_timeout_ms, self.server.request_timeout_ms
                ),
            );
        }
        let max_ttl = crate::store::retention::MAX_TTL_SECONDS;
        if self.retention.default_ttl_seconds > max_ttl {
            return fail("retention.default_ttl_seconds", &format!("at most {max_ttl} (100 years)"));
        }
        if self.retention.sweep_batch > 10_000 {
            return fail("retention.sweep_batch", "at most 10000");
        }
        if self.storage.transfer_timeout_ms > 86_400_000 {
            return fail("storage.transfer_timeout_ms", "at most 86400000 (a day)");
        }
        for (setting, keys) in [("auth.keys", &self.auth.keys), ("metrics.keys", &self.metrics.keys)] {
            if let Err(problem) = keys.key_set(setting) {
                return Err(ConfigError(format!("invalid {problem}")));
            }
        }
        for (setting, file) in
            [("auth.keys_file", &self.auth.keys_file), ("metrics.keys_file", &self.metrics.keys_file)]
        {
            if file.as_ref().is_some_and(|f| f.trim().is_empty()) {
                return fail(setting, "empty");
            }
        }
        let url = self.database_url()?;
        match url.backend() {
            Some(Backend::Postgres) => {
                if let Err(e) = url::Url::parse(url.expose()) {
                    return fail("database.url", &format!("`{url}`: {e}"));
                }
            }
            Some(Backend::Sqlite) => {}
            None => return fail("database.url", &format!("`{url}`: expected sqlite://… or postgres://…")),
        }
        Ok(self)
    }

    /// The database URL in effect: `url`, else `url_file`, else one built
    /// from the `postgres` parts when a host is given, else the SQLite default.
    pub fn database_url(&self) -> Result<DatabaseUrl, ConfigError> {
        let db = &self.database;
        if let Some(url) = &db.url {
            return Ok(url.clone());
        }
        if let Some(file) = &db.url_file {
            return secret::read_file(&env::describe("database.url_file"), file).map(DatabaseUrl::new);
        }
        let Some(host) = &db.postgres.host else {
            return Ok(DatabaseUrl::new(DEFAULT_DATABASE_URL));
        };
        let pg = &db.postgres;
        let password = match (&pg.password, &pg.password_file) {
            (Some(secret), _) => Some(secret.expose().to_owned()),
            (None, Some(file)) => {
                Some(secret::read_file(&env::describe("database.postgres.password_file"), file)?)
            }
            (None, None) => None,
        };
        let mut url = url::Url::parse("postgres://localhost")
            .map_err(|e| ConfigError(format!("building the PostgreSQL URL: {e}")))?;
        let parts_ok = url.set_host(Some(host)).is_ok()
            && url.set_port(Some(pg.port)).is_ok()
            && url.set_username(&pg.user).is_ok()
            && url.set_password(password.as_deref()).is_ok();
        if !parts_ok {
            return Err(ConfigError(format!("invalid {} `{host}`", env::describe("database.postgres.host"))));
        }
        url.set_path(&pg.db);
        Ok(DatabaseUrl::new(url.to_string()))
    }

    /// `host:port` for the listener.
    pub fn listen_address(&self) -> String {
        if self.server.host.contains(':') && !self.server.host.starts_with('[') {
            format!("[{}]:{}", self.server.host, self.server.port)
        } else {
            format!("{}:{}", self.server.host, self.server.port)
        }
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = self.database_url().ok();
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// `database.acquire_timeout_ms` as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.database.acquire_timeout_ms)
    }

    /// How long a blob transfer may take, and how long the chunks of a
    /// replaced value (or of an upload) are kept: the transfer bound plus
    /// what its last statement may take (waiting for a connection, then
    /// running), plus a second.
    pub fn blob_timing(&self) -> crate::store::blobs::Timing {
        let transfer = Duration::from_millis(self.storage.transfer_timeout_ms);
        let db = &self.database;
        let last_statement =
            Duration::from_millis(db.acquire_timeout_ms.saturating_add(db.statement_timeout_ms));
        crate::store::blobs::Timing { transfer, grace: transfer + last_statement + Duration::from_secs(1) }
    }
}

/// One line naming the setting, where it can be set and what is wrong.
fn describe(err: figment::Error) -> ConfigError {
    let Some(err) = err.into_iter().next() else {
        return ConfigError("invalid configuration".into());
    };
    let key = err.path.join(".").to_ascii_lowercase();
    ConfigError(format!("invalid {}: {}", env::describe(&key), err.kind))
}
