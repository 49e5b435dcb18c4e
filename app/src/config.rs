//! Configuration: built-in defaults ← optional TOML file ← environment.
//!
//! Environment variables are `SESSION_BACKEND_<SECTION>__<KEY>` (for example
//! `SESSION_BACKEND_SERVER__PORT`). The variables of the earlier Python
//! service work too (`DATABASE_URL`, `API_HOST`, `API_PORT`, `LOG_LEVEL`,
//! `LOG_FORMAT`, `POSTGRES_HOST/PORT/DB/USER/PASSWORD`); the prefixed form wins
//! when both are set. `DATABASE_URL_FILE` and `POSTGRES_PASSWORD_FILE` read a
//! secret from a file (Docker and Kubernetes secrets).

use std::{fmt, path::Path, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The environment variable naming a TOML configuration file.
pub const CONFIG_FILE_ENV: &str = "SESSION_BACKEND_CONFIG";

/// The SQLite database used when nothing else is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://session-backend.db?mode=rwc";

/// Variables of the earlier service and the setting each one feeds.
const LEGACY_ENV: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("DATABASE_URL_FILE", "database.url_file"),
    ("API_HOST", "server.host"),
    ("API_PORT", "server.port"),
    ("LOG_LEVEL", "log.level"),
    ("LOG_FORMAT", "log.format"),
    ("POSTGRES_HOST", "database.postgres.host"),
    ("POSTGRES_PORT", "database.postgres.port"),
    ("POSTGRES_DB", "database.postgres.db"),
    ("POSTGRES_USER", "database.postgres.user"),
    ("POSTGRES_PASSWORD", "database.postgres.password"),
    ("POSTGRES_PASSWORD_FILE", "database.postgres.password_file"),
];

/// The whole configuration of the service.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
}

/// The HTTP listener and request handling.
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8001,
            body_limit_bytes: 16 * 1024 * 1024,
            request_timeout_ms: 10_000,
            shutdown_timeout_ms: 30_000,
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
            acquire_timeout_ms: 2_000,
            health_timeout_ms: 2_000,
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

/// A secret string: never printed, serialized as `***`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// A database URL whose password is masked whenever it is shown.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Which database system the URL names, if it is one we speak.
    pub fn backend(&self) -> Option<Backend> {
        if self.0.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if self.0.starts_with("postgres://") || self.0.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// The database systems the service runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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

impl Config {
    /// Reads defaults, the TOML file (if any) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::figment(file).extract::<Self>().map_err(describe)?.validated()
    }

    /// The layered sources, in increasing priority.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file.map(Path::to_path_buf).or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(Into::into));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let legacy =
            Env::raw().only(&LEGACY_ENV.iter().map(|(name, _)| *name).collect::<Vec<_>>()).map(|name| {
                LEGACY_ENV
                    .iter()
                    .find(|(legacy, _)| name == *legacy)
                    .map_or_else(|| name.as_str().to_owned(), |(_, key)| (*key).to_owned())
                    .into()
            });
        figment.merge(legacy).merge(Env::prefixed("SESSION_BACKEND_").ignore(&["CONFIG"]).split("__"))
    }

    fn validated(self) -> Result<Self, ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        if self.server.port == 0 {
            return fail("invalid server.port (API_PORT): 0 is not a usable port, use 1 to 65535".into());
        }
        if self.server.host.trim().is_empty() {
            return fail("invalid server.host (API_HOST): empty".into());
        }
        if self.server.body_limit_bytes == 0 {
            return fail("invalid server.body_limit_bytes: must be at least 1".into());
        }
        if self.database.max_connections == 0 {
            return fail("invalid database.max_connections: must be at least 1".into());
        }
        for (name, ms) in [
            ("server.request_timeout_ms", self.server.request_timeout_ms),
            ("database.acquire_timeout_ms", self.database.acquire_timeout_ms),
            ("database.health_timeout_ms", self.database.health_timeout_ms),
        ] {
            if ms == 0 {
                return fail(format!("invalid {name}: must be at least 1"));
            }
        }
        let url = self.database_url()?;
        match url.backend() {
            Some(Backend::Postgres) => {
                if let Err(e) = url::Url::parse(url.expose()) {
                    return fail(format!("invalid database.url (DATABASE_URL) `{url}`: {e}"));
                }
            }
            Some(Backend::Sqlite) => {}
            None => {
                return fail(format!(
                    "invalid database.url (DATABASE_URL) `{url}`: expected sqlite://… or postgres://…"
                ));
            }
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
            return read_secret_file("database.url_file (DATABASE_URL_FILE)", file).map(DatabaseUrl::new);
        }
        let Some(host) = &db.postgres.host else {
            return Ok(DatabaseUrl::new(DEFAULT_DATABASE_URL));
        };
        let pg = &db.postgres;
        let password = match (&pg.password, &pg.password_file) {
            (Some(secret), _) => Some(secret.expose().to_owned()),
            (None, Some(file)) => {
                Some(read_secret_file("database.postgres.password_file (POSTGRES_PASSWORD_FILE)", file)?)
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
            return Err(ConfigError(format!("invalid database.postgres.host (POSTGRES_HOST) `{host}`")));
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
}

/// One line naming the setting, where it can be set and what is wrong.
fn describe(err: figment::Error) -> ConfigError {
    let Some(err) = err.into_iter().next() else {
        return ConfigError("invalid configuration".into());
    };
    let key = err.path.join(".").to_ascii_lowercase();
    let mut sources: Vec<String> = LEGACY_ENV
        .iter()
        .filter(|(_, setting)| *setting == key)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    sources.push(format!("SESSION_BACKEND_{}", key.replace('.', "__").to_ascii_uppercase()));
    ConfigError(format!("invalid {key} ({}): {}", sources.join(" or "), err.kind))
}

fn read_secret_file(setting: &str, path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| ConfigError(format!("cannot read {setting} `{path}`: {e}")))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    fn to_figment(e: ConfigError) -> figment::Error {
        e.to_string().into()
    }

    fn load() -> figment::error::Result<Config> {
        Config::load(None).map_err(to_figment)
    }

    fn load_err() -> String {
        Config::load(None).expect_err("configuration should be refused").to_string()
    }

    #[test]
    fn defaults_are_sqlite_on_loopback_8001() {
        Jail::expect_with(|_| {
            let config = load()?;
            assert_eq!(config.listen_address(), "127.0.0.1:8001");
            assert_eq!(config.database_url().map_err(to_figment)?.expose(), DEFAULT_DATABASE_URL);
            assert_eq!(config.log.level, LogLevel::Info);
            assert_eq!(config.log.format, LogFormat::Text);
            assert!(config.database.auto_migrate);
            Ok(())
        });
    }

    #[test]
    fn legacy_variables_are_honoured_and_prefixed_ones_win() {
        Jail::expect_with(|jail| {
            jail.set_env("API_HOST", "0.0.0.0");
            jail.set_env("API_PORT", "9000");
            jail.set_env("LOG_LEVEL", "WARNING");
            jail.set_env("LOG_FORMAT", "json");
            jail.set_env("DATABASE_URL", "postgres://u:p@db/x");
            jail.set_env("SESSION_BACKEND_SERVER__PORT", "9100");
            let config = load()?;
            assert_eq!(config.listen_address(), "0.0.0.0:9100");
            assert_eq!(config.log.level, LogLevel::Warn);
            assert_eq!(config.log.format, LogFormat::Json);
            assert_eq!(config.database_url().map_err(to_figment)?.expose(), "postgres://u:p@db/x");
            Ok(())
        });
    }

    #[test]
    fn postgres_parts_build_a_url_and_files_hold_secrets() {
        Jail::expect_with(|jail| {
            jail.create_file("pw", "s3cr:t@\n")?;
            jail.set_env("POSTGRES_HOST", "db.internal");
            jail.set_env("POSTGRES_PORT", "6543");
            jail.set_env("POSTGRES_DB", "sessions");
            jail.set_env("POSTGRES_USER", "app");
            jail.set_env("POSTGRES_PASSWORD_FILE", "pw");
            let url = load()?.database_url().map_err(to_figment)?;
            assert_eq!(url.expose(), "postgres://app:s3cr%3At%40@db.internal:6543/sessions");
            assert_eq!(url.masked(), "postgres://app:***@db.internal:6543/sessions");
            Ok(())
        });
    }

    #[test]
    fn toml_file_is_read_and_environment_overrides_it() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "conf.toml",
                "[server]\nport = 7000\nbody_limit_bytes = 1024\n[database]\nauto_migrate = false\n",
            )?;
            jail.set_env(CONFIG_FILE_ENV, "conf.toml");
            jail.set_env("SESSION_BACKEND_SERVER__BODY_LIMIT_BYTES", "2048");
            let config = load()?;
            assert_eq!(config.server.port, 7000);
            assert_eq!(config.server.body_limit_bytes, 2048);
            assert!(!config.database.auto_migrate);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("LOG_LEVEL", "loud");
            assert!(load_err().contains("log.level"), "{}", load_err());
            jail.set_env("LOG_LEVEL", "info");
            jail.set_env("API_PORT", "0");
            assert!(load_err().contains("server.port"), "{}", load_err());
            jail.set_env("API_PORT", "70000");
            assert!(load_err().contains("server.port"), "{}", load_err());
            jail.set_env("API_PORT", "8001");
            jail.set_env("DATABASE_URL", "mysql://x");
            assert!(load_err().contains("database.url"), "{}", load_err());
            jail.set_env("DATABASE_URL", "postgres://[bad");
            assert!(load_err().contains("database.url"), "{}", load_err());
            Ok(())
        });
    }

    #[test]
    fn secrets_never_show() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://app:hunter2@db/x");
            let config = load()?;
            assert!(!config.to_masked_toml().contains("hunter2"));
            assert!(!format!("{config:?}").contains("hunter2"));
            Ok(())
        });
    }
}
