//! Configuration: built-in defaults ← optional TOML file ← environment.
//!
//! Environment variables are `SESSION_BACKEND_<SECTION>__<KEY>` (for example
//! `SESSION_BACKEND_SERVER__PORT`); the earlier Python service's names work
//! too and lose to the prefixed form (see [`env`]). `DATABASE_URL_FILE` and
//! `POSTGRES_PASSWORD_FILE` read a secret from a file ([`secret`]).

mod env;
mod logging;
mod secret;
mod sections;
#[cfg(test)]
mod tests;

use std::{path::Path, time::Duration};

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

pub use self::{
    logging::{LogConfig, LogFormat, LogLevel},
    secret::{Backend, DatabaseUrl, Secret},
    sections::{
        AuthConfig, DatabaseConfig, MetricsConfig, Pooler, PostgresParts, RateLimitConfig, RetentionConfig,
        ServerConfig, StorageConfig, TextList,
    },
};

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
            ("server.import_limit_bytes", self.server.import_limit_bytes),
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
        let max_ttl = crate::domain::MAX_TTL_SECONDS;
        for (key, ttl) in [
            ("retention.default_ttl_seconds", self.retention.default_ttl_seconds),
            ("retention.snapshot_ttl_seconds", self.retention.snapshot_ttl_seconds),
            ("retention.snapshot_history_ttl_seconds", self.retention.snapshot_history_ttl_seconds),
        ] {
            if ttl > max_ttl {
                return fail(key, &format!("at most {max_ttl} (100 years)"));
            }
        }
        if self.retention.sweep_batch > 10_000 {
            return fail("retention.sweep_batch", "at most 10000");
        }
        if self.storage.search_values_bytes > 256 * 1024 * 1024 {
            return fail("storage.search_values_bytes", "at most 268435456 (256 MiB)");
        }
        if self.storage.transfer_timeout_ms > 86_400_000 {
            return fail("storage.transfer_timeout_ms", "at most 86400000 (a day)");
        }
        for (setting, keys) in [("auth.keys", &self.auth.keys), ("metrics.keys", &self.metrics.keys)] {
            if let Err(problem) = keys.key_set(setting) {
                return Err(ConfigError(format!("invalid {problem}")));
            }
        }
        if let Err(problem) = self.server.host_patterns() {
            return Err(ConfigError(problem));
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
            Some(Backend::Sqlite) if db.pooler == Pooler::Transaction => {
                return fail("database.pooler", "`transaction` is for PostgreSQL; database.url is SQLite");
            }
            Some(Backend::Sqlite) => {}
            None => return fail("database.url", &format!("`{url}`: expected sqlite://… or postgres://…")),
        }
        if db.pooler == Pooler::Transaction && !self.has_direct_url() {
            return fail(
                "database.pooler",
                "`transaction` needs the database past the pooler, for migrations and backups: \
                 set database.direct_url (or database.postgres.direct_host)",
            );
        }
        let direct = self.direct_database_url()?;
        if direct.backend() != url.backend() {
            return fail(
                "database.direct_url",
                &format!("`{direct}` is not the same kind of database as `{url}`"),
            );
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
        match &db.postgres.host {
            Some(host) => self.postgres_url_at(host, db.postgres.port, "database.postgres.host"),
            None => Ok(DatabaseUrl::new(DEFAULT_DATABASE_URL)),
        }
    }

    /// A PostgreSQL URL from the `postgres` parts, at `host:port`.
    fn postgres_url_at(&self, host: &str, port: u16, setting: &str) -> Result<DatabaseUrl, ConfigError> {
        let pg = &self.database.postgres;
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
            && url.set_port(Some(port)).is_ok()
            && url.set_username(&pg.user).is_ok()
            && url.set_password(password.as_deref()).is_ok();
        if !parts_ok {
            return Err(ConfigError(format!("invalid {} `{host}`", env::describe(setting))));
        }
        url.set_path(&pg.db);
        Ok(DatabaseUrl::new(url.to_string()))
    }

    /// The URL of the database itself, past any pooler: `direct_url`,
    /// else `direct_url_file`, else the `postgres` parts at `direct_host`,
    /// else [`Self::database_url`].
    pub fn direct_database_url(&self) -> Result<DatabaseUrl, ConfigError> {
        let db = &self.database;
        if let Some(url) = &db.direct_url {
            return Ok(url.clone());
        }
        if let Some(file) = &db.direct_url_file {
            return secret::read_file(&env::describe("database.direct_url_file"), file).map(DatabaseUrl::new);
        }
        if let Some(host) = &db.postgres.direct_host {
            return self.postgres_url_at(host, db.postgres.direct_port, "database.postgres.direct_host");
        }
        self.database_url()
    }

    /// Whether a URL of the database past the pooler is configured.
    fn has_direct_url(&self) -> bool {
        let db = &self.database;
        db.direct_url.is_some() || db.direct_url_file.is_some() || db.postgres.direct_host.is_some()
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
    ConfigError(format!("invalid {}: {}", env::describe(&key), err.kind))
}
