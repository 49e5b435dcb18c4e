//! Loading, layering and checking the configuration, with the environment
//! given explicitly (the process's own is never read here).

use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn load(pairs: &[(&str, &str)]) -> Loaded {
    Config::load_from(None, vars(pairs)).expect("configuration loads")
}

fn refused(pairs: &[(&str, &str)]) -> String {
    Config::load_from(None, vars(pairs)).expect_err("configuration should be refused").to_string()
}

fn url(loaded: &Loaded) -> String {
    loaded.config.database_url().expect("url").expose().to_owned()
}

#[test]
fn defaults_are_sqlite_on_loopback_8001() {
    let loaded = load(&[]);
    assert_eq!(loaded.config.listen_address(), "127.0.0.1:8001");
    assert_eq!(url(&loaded), DEFAULT_DATABASE_URL);
    assert_eq!(loaded.config.log.level, LogLevel::Info);
    assert_eq!(loaded.config.log.format, LogFormat::Text);
    assert!(loaded.config.database.auto_migrate);
    assert!(loaded.warning.is_none());
}

#[test]
fn legacy_variables_are_honoured_and_prefixed_ones_win() {
    let loaded = load(&[
        ("API_HOST", "0.0.0.0"),
        ("API_PORT", "9000"),
        ("LOG_LEVEL", "WARNING"),
        ("LOG_FORMAT", "json"),
        ("DATABASE_URL", "postgres://u:p@db/x"),
        ("SESSION_BACKEND_SERVER__PORT", "9100"),
    ]);
    assert_eq!(loaded.config.listen_address(), "0.0.0.0:9100");
    assert_eq!(loaded.config.log.level, LogLevel::Warn);
    assert_eq!(loaded.config.log.format, LogFormat::Json);
    assert_eq!(url(&loaded), "postgres://u:p@db/x");
}

#[test]
fn text_settings_keep_exactly_what_was_written() {
    for password in ["123456", "true", "\"quoted\"", "[1, 2]", "{a = 1}", "1e5", " spaced "] {
        let loaded = load(&[
            ("POSTGRES_HOST", "db.internal"),
            ("POSTGRES_DB", "2024"),
            ("POSTGRES_USER", "007"),
            ("POSTGRES_PASSWORD", password),
        ]);
        let pg = &loaded.config.database.postgres;
        assert_eq!(pg.password.as_ref().map(Secret::expose), Some(password));
        assert_eq!(pg.db, "2024");
        assert_eq!(pg.user, "007");
        let parsed = url::Url::parse(&url(&loaded)).expect("url");
        let sent = percent_decode(parsed.password().expect("password"));
        assert_eq!(sent, password, "password reaches the connection unchanged");
        assert_eq!(parsed.path(), "/2024");
    }
    let loaded = load(&[("SESSION_BACKEND_DATABASE__URL", "sqlite://1234")]);
    assert_eq!(url(&loaded), "sqlite://1234");
}

/// Decodes `%XX` escapes, as the PostgreSQL driver does with URL parts.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn kubernetes_service_links_warn_instead_of_stopping_start_up() {
    let loaded = load(&[
        ("SESSION_BACKEND_PORT", "tcp://10.96.0.12:8001"),
        ("SESSION_BACKEND_PORT_8001_TCP", "tcp://10.96.0.12:8001"),
        ("SESSION_BACKEND_SERVICE_HOST", "10.96.0.12"),
        ("SESSION_BACKEND_SERVICE_PORT", "8001"),
        ("SESSION_BACKEND_POSTGRESQL_PORT_5432_TCP_ADDR", "10.96.0.13"),
        ("POSTGRES_PORT", "tcp://10.96.0.14:5432"),
        ("SESSION_BACKEND_SERVER__PROT", "9000"),
        ("API_PORT", "8001"),
    ]);
    assert_eq!(loaded.config.server.port, 8001);
    assert_eq!(loaded.config.database.postgres.port, 5432, "a service link is no port");
    let warning = loaded.warning.expect("one warning");
    for name in [
        "SESSION_BACKEND_PORT",
        "SESSION_BACKEND_SERVICE_HOST",
        "SESSION_BACKEND_POSTGRESQL_PORT_5432_TCP_ADDR",
        "POSTGRES_PORT",
        "SESSION_BACKEND_SERVER__PROT",
    ] {
        assert!(warning.contains(name), "{name} not named in: {warning}");
    }
    assert!(warning.contains("enableServiceLinks"), "{warning}");
    assert!(!warning.contains('\n'));
}

#[test]
fn postgres_parts_build_a_url_and_files_hold_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cr:t@\n").expect("write");
    let loaded = load(&[
        ("POSTGRES_HOST", "db.internal"),
        ("POSTGRES_PORT", "6543"),
        ("POSTGRES_DB", "sessions"),
        ("POSTGRES_USER", "app"),
        ("POSTGRES_PASSWORD_FILE", pw.to_str().expect("path")),
    ]);
    let url = loaded.config.database_url().expect("url");
    assert_eq!(url.expose(), "postgres://app:s3cr%3At%40@db.internal:6543/sessions");
    assert_eq!(url.masked(), "postgres://app:***@db.internal:6543/sessions");
}

#[test]
fn toml_file_is_read_and_environment_overrides_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("conf.toml");
    std::fs::write(
        &file,
        "[server]\nport = 7000\nbody_limit_bytes = 1024\n[database]\nauto_migrate = false\n",
    )
    .expect("write");
    let loaded = load(&[
        (CONFIG_FILE_ENV, file.to_str().expect("path")),
        ("SESSION_BACKEND_SERVER__BODY_LIMIT_BYTES", "2048"),
    ]);
    assert_eq!(loaded.config.server.port, 7000);
    assert_eq!(loaded.config.server.body_limit_bytes, 2048);
    assert!(!loaded.config.database.auto_migrate);
}

#[test]
fn every_refusal_names_the_setting_and_both_variables() {
    for (name, value, named) in [
        ("LOG_LEVEL", "loud", "log.level (LOG_LEVEL or SESSION_BACKEND_LOG__LEVEL)"),
        ("API_PORT", "0", "server.port (API_PORT or SESSION_BACKEND_SERVER__PORT)"),
        ("API_PORT", "70000", "server.port (API_PORT or SESSION_BACKEND_SERVER__PORT)"),
        ("DATABASE_URL", "mysql://x", "database.url (DATABASE_URL or SESSION_BACKEND_DATABASE__URL)"),
        ("DATABASE_URL", "postgres://[bad", "database.url (DATABASE_URL or SESSION_BACKEND_DATABASE__URL)"),
        (
            "SESSION_BACKEND_SERVER__BODY_LIMIT_BYTES",
            "0",
            "server.body_limit_bytes (SESSION_BACKEND_SERVER__BODY_LIMIT_BYTES)",
        ),
        (
            "SESSION_BACKEND_SERVER__MAX_CONNECTIONS",
            "many",
            "server.max_connections (SESSION_BACKEND_SERVER__MAX_CONNECTIONS)",
        ),
        (
            "SESSION_BACKEND_DATABASE__STATEMENT_TIMEOUT_MS",
            "9000",
            "database.statement_timeout_ms (SESSION_BACKEND_DATABASE__STATEMENT_TIMEOUT_MS)",
        ),
        (
            "POSTGRES_PASSWORD_FILE",
            "/nonexistent/pw",
            "database.postgres.password_file (POSTGRES_PASSWORD_FILE or SESSION_BACKEND_DATABASE__POSTGRES__PASSWORD_FILE)",
        ),
    ] {
        let mut env = vec![(name, value)];
        if name == "POSTGRES_PASSWORD_FILE" {
            env.push(("POSTGRES_HOST", "db"));
        }
        let message = refused(&env);
        assert!(message.contains(named), "{name}={value}: {message}");
        assert!(!message.contains('\n'), "{message}");
    }
}

#[test]
fn secrets_never_show() {
    let loaded = load(&[("DATABASE_URL", "postgres://app:hunter2@db/x")]);
    assert!(!loaded.config.to_masked_toml().contains("hunter2"));
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
}

/// Every field of [`Config`] can be set from the environment, and every
/// name the environment module knows is a field.
#[test]
fn the_environment_knows_every_setting() {
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaves(&key, v, out);
                }
            }
            None => out.push(prefix.to_owned()),
        }
    }
    let mut fields = Vec::new();
    leaves("", &serde_json::to_value(Config::default()).expect("serializes"), &mut fields);
    let mut known: Vec<String> = env::SETTINGS.iter().map(|s| s.key.to_owned()).collect();
    fields.sort();
    known.sort();
    assert_eq!(fields, known);
}

#[test]
fn api_keys_come_from_a_list_or_one_variable() {
    let [a, b, c] = [(); 3].map(|()| crate::domain::keys::mint().expect("key"));
    assert!(!load(&[]).config.auth.enabled(), "off by default");
    let entries = format!("team-a {}, team-b {}\nteam-a {}", a.hash, b.hash, c.hash);
    let loaded = load(&[("SESSION_BACKEND_AUTH__KEYS", &entries)]);
    assert!(loaded.config.auth.enabled());
    let keys = loaded.config.auth.keys.key_set("auth.keys").expect("keys");
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.tenant_of(&b.key).as_deref(), Some("team-b"));
    assert!(load(&[("SESSION_BACKEND_AUTH__KEYS_FILE", "/run/secrets/keys")]).config.auth.enabled());

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, format!("[auth]\nkeys = [\"team-a {}\"]\n", a.hash)).expect("write");
    let loaded = Config::load_from(Some(&file), vars(&[])).expect("loads");
    assert_eq!(
        loaded.config.auth.keys.key_set("auth.keys").expect("keys").tenant_of(&a.key).as_deref(),
        Some("team-a")
    );

    let message = refused(&[("SESSION_BACKEND_AUTH__KEYS", "team-a sbk_not_a_hash")]);
    assert!(
        message.contains("auth.keys (SESSION_BACKEND_AUTH__KEYS)") && message.contains("not a key hash"),
        "{message}"
    );
    let message = refused(&[("SESSION_BACKEND_RATE_LIMIT__REQUESTS_PER_SECOND", "-1")]);
    assert!(message.contains("rate_limit.requests_per_second"), "{message}");
}

#[test]
fn retention_settings_are_bounded() {
    let loaded = load(&[
        ("SESSION_BACKEND_RETENTION__DEFAULT_TTL_SECONDS", "86400"),
        ("SESSION_BACKEND_RETENTION__SWEEP_INTERVAL_MS", "0"),
    ]);
    assert_eq!(loaded.config.retention.default_ttl_seconds, 86_400);
    assert_eq!(loaded.config.retention.sweep_interval_ms, 0);
    for (name, value) in [
        ("SESSION_BACKEND_RETENTION__DEFAULT_TTL_SECONDS", "3153600001"),
        ("SESSION_BACKEND_RETENTION__DEFAULT_TTL_SECONDS", "-1"),
        ("SESSION_BACKEND_RETENTION__SWEEP_BATCH", "0"),
        ("SESSION_BACKEND_RETENTION__SWEEP_BATCH", "10001"),
    ] {
        let message = refused(&[(name, value)]);
        assert!(
            message.contains(&name.trim_start_matches("SESSION_BACKEND_").replace("__", ".").to_lowercase()),
            "{message}"
        );
    }
}

#[test]
fn a_pooler_needs_the_database_past_it() {
    let pooled = [
        ("DATABASE_URL", "postgres://app:pw@pgbouncer:6432/s"),
        ("SESSION_BACKEND_DATABASE__POOLER", "transaction"),
    ];
    let refusal = refused(&pooled);
    assert!(refusal.contains("database.pooler") && refusal.contains("direct_url"), "{refusal}");
    let direct =
        [pooled[0], pooled[1], ("SESSION_BACKEND_DATABASE__DIRECT_URL", "postgres://app:pw@db:5432/s")];
    let loaded = load(&direct);
    assert_eq!(loaded.config.database.pooler, Pooler::Transaction);
    assert_eq!(loaded.config.direct_database_url().expect("direct").expose(), "postgres://app:pw@db:5432/s");
    assert_eq!(url(&loaded), "postgres://app:pw@pgbouncer:6432/s");
    let sqlite = refused(&[("DATABASE_URL", "sqlite://x.db"), pooled[1], direct[2]]);
    assert!(sqlite.contains("database.pooler"), "{sqlite}");
    assert!(
        refused(&[pooled[1], ("SESSION_BACKEND_DATABASE__POOLER", "session")]).contains("database.pooler")
    );
}

#[test]
fn the_chart_points_replicas_at_a_pooler_and_migrations_past_it() {
    // What the Helm chart sets with pooler.enabled: the parts lead to the
    // pooler, direct_host to the database, and an ordinary password stays whole.
    let loaded = load(&[
        ("POSTGRES_HOST", "pgbouncer"),
        ("POSTGRES_PORT", "6432"),
        ("POSTGRES_USER", "app"),
        ("POSTGRES_PASSWORD", "p@ss/w:rd"),
        ("SESSION_BACKEND_DATABASE__POOLER", "transaction"),
        ("SESSION_BACKEND_DATABASE__POSTGRES__DIRECT_HOST", "postgres"),
    ]);
    assert_eq!(url(&loaded), "postgres://app:p%40ss%2Fw%3Ard@pgbouncer:6432/session_backend");
    let direct = loaded.config.direct_database_url().expect("direct");
    assert_eq!(direct.expose(), "postgres://app:p%40ss%2Fw%3Ard@postgres:5432/session_backend");
}
