//! The environment as a configuration source: `SESSION_BACKEND_<SECTION>__<KEY>`
//! variables and the earlier service's names (`API_PORT`, `POSTGRES_*`, …),
//! both mapped onto the same settings.
//!
//! Values are read as the setting's type needs them: text settings (hosts,
//! names, passwords, URLs) keep exactly what was written, so
//! `POSTGRES_PASSWORD=123456` or `="quoted"` reach the database unchanged;
//! numbers and switches are parsed. Variables that carry our prefix but name
//! no setting, such as the service links Kubernetes injects for a release
//! named `session-backend`, are collected for one warning, never an error;
//! so are port variables holding a service link (`POSTGRES_PORT=tcp://…`,
//! what Kubernetes and Docker links inject for a service named `postgres`).

use figment::value::Value;

/// The prefix of this service's own variables.
pub const PREFIX: &str = "SESSION_BACKEND_";

/// A setting the environment can set.
pub(super) struct Setting {
    /// Dotted path in the configuration, e.g. `server.port`.
    pub key: &'static str,
    /// The earlier service's variable for it, if any.
    pub legacy: Option<&'static str>,
    /// Read verbatim as text rather than parsed.
    pub text: bool,
}

const fn text(key: &'static str, legacy: Option<&'static str>) -> Setting {
    Setting { key, legacy, text: true }
}

const fn parsed(key: &'static str, legacy: Option<&'static str>) -> Setting {
    Setting { key, legacy, text: false }
}

/// Every setting of [`super::Config`] (a test keeps this list complete).
pub(super) const SETTINGS: &[Setting] = &[
    text("server.host", Some("API_HOST")),
    parsed("server.port", Some("API_PORT")),
    parsed("server.body_limit_bytes", None),
    parsed("server.request_timeout_ms", None),
    parsed("server.shutdown_timeout_ms", None),
    parsed("server.header_timeout_ms", None),
    parsed("server.body_timeout_ms", None),
    parsed("server.idle_timeout_ms", None),
    parsed("server.write_timeout_ms", None),
    parsed("server.max_connections", None),
    parsed("server.large_bodies_in_flight_bytes", None),
    parsed("server.import_limit_bytes", None),
    text("server.allowed_hosts", None),
    text("database.url", Some("DATABASE_URL")),
    text("database.url_file", Some("DATABASE_URL_FILE")),
    text("database.pooler", None),
    text("database.direct_url", None),
    text("database.direct_url_file", None),
    text("database.postgres.host", Some("POSTGRES_HOST")),
    parsed("database.postgres.port", Some("POSTGRES_PORT")),
    text("database.postgres.db", Some("POSTGRES_DB")),
    text("database.postgres.user", Some("POSTGRES_USER")),
    text("database.postgres.password", Some("POSTGRES_PASSWORD")),
    text("database.postgres.password_file", Some("POSTGRES_PASSWORD_FILE")),
    text("database.postgres.direct_host", None),
    parsed("database.postgres.direct_port", None),
    parsed("database.max_connections", None),
    parsed("database.acquire_timeout_ms", None),
    parsed("database.health_timeout_ms", None),
    parsed("database.statement_timeout_ms", None),
    parsed("database.lock_timeout_ms", None),
    parsed("database.auto_migrate", None),
    parsed("storage.max_value_bytes", None),
    parsed("storage.search_index_bytes", None),
    parsed("storage.search_values_bytes", None),
    parsed("storage.transfer_timeout_ms", None),
    text("auth.keys", None),
    text("auth.keys_file", None),
    parsed("auth.reload_interval_ms", None),
    parsed("rate_limit.requests_per_second", None),
    parsed("rate_limit.burst", None),
    parsed("retention.default_ttl_seconds", None),
    parsed("retention.sweep_interval_ms", None),
    parsed("retention.sweep_batch", None),
    parsed("retention.snapshot_ttl_seconds", None),
    parsed("retention.snapshot_history_ttl_seconds", None),
    parsed("metrics.public", None),
    text("metrics.keys", None),
    text("metrics.keys_file", None),
    text("log.level", Some("LOG_LEVEL")),
    text("log.format", Some("LOG_FORMAT")),
];

/// `SESSION_BACKEND_SERVER__PORT` for `server.port`.
pub(super) fn prefixed_name(key: &str) -> String {
    format!("{PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// "`server.port` (API_PORT or SESSION_BACKEND_SERVER__PORT)": a setting
/// and the variables that set it, for messages.
pub fn describe(key: &str) -> String {
    let setting = SETTINGS.iter().find(|s| s.key == key);
    let mut names: Vec<String> = setting.and_then(|s| s.legacy).map(str::to_owned).into_iter().collect();
    if setting.is_some() {
        names.push(prefixed_name(key));
    }
    if names.is_empty() { key.to_owned() } else { format!("{key} ({})", names.join(" or ")) }
}

/// What the environment sets: `(key, value)` pairs in increasing priority
/// (the earlier service's names first, then ours), and the prefixed
/// variables that name no setting.
pub(super) fn read(
    vars: impl IntoIterator<Item = (String, String)>,
) -> (Vec<(&'static str, Value)>, Vec<String>) {
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let mut values = Vec::new();
    let mut unknown = Vec::new();
    let legacy = SETTINGS
        .iter()
        .filter_map(|s| s.legacy.and_then(|legacy| vars.iter().find(|(n, _)| n == legacy)).map(|v| (s, v)));
    let prefixed = vars.iter().filter_map(|var| {
        let rest = var.0.strip_prefix(PREFIX).filter(|rest| *rest != "CONFIG")?;
        let key = rest.to_ascii_lowercase().replace("__", ".");
        match SETTINGS.iter().find(|s| s.key == key) {
            Some(setting) => Some((setting, var)),
            None => {
                unknown.push(var.0.clone());
                None
            }
        }
    });
    for (setting, (name, raw)) in legacy.collect::<Vec<_>>().into_iter().chain(prefixed.collect::<Vec<_>>()) {
        if setting.key.ends_with("port") && raw.contains("://") {
            unknown.push(name.clone());
        } else {
            values.push((setting.key, value(setting, raw)));
        }
    }
    unknown.sort();
    (values, unknown)
}

fn value(setting: &Setting, raw: &str) -> Value {
    if setting.text {
        Value::from(raw.to_owned())
    } else {
        match raw.parse::<Value>() {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

/// The one warning about unknown prefixed variables, if there are any.
pub fn unknown_warning(unknown: &[String]) -> Option<String> {
    if unknown.is_empty() {
        return None;
    }
    let service_links =
        unknown.iter().any(|n| n.ends_with("_SERVICE_HOST") || n.contains("_PORT_") || n.ends_with("_PORT"));
    let hint = if service_links {
        "; these look like Kubernetes service links (set `enableServiceLinks: false` on the pod)"
    } else {
        "; check their spelling against `session-backend config` and the README"
    };
    Some(format!("ignoring environment variables that name no setting: {}{hint}", unknown.join(", ")))
}
