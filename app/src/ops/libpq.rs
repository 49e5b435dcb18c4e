//! The PostgreSQL client tools (`pg_dump`, `pg_restore`) pointed at a
//! database exactly as the server reaches it: the URL is read by the same
//! driver code the server connects with, and every part is handed over as
//! a libpq environment variable, never re-encoded into a URL or shown on a
//! command line. So a password written raw (`postgres://u:a+b&c@host/db`)
//! or percent-encoded reaches `pg_dump` as the server reads it.

use std::str::FromStr;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};
use url::Url;

/// `(name, value)` pairs of libpq variables (`PGHOST`, `PGPASSWORD`, …)
/// for `url`.
pub fn environment(url: &str) -> Result<Vec<(&'static str, String)>, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    let parsed = Url::parse(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    let mut env = vec![
        (
            "PGHOST",
            options.get_socket().map_or_else(|| options.get_host().to_owned(), |s| s.display().to_string()),
        ),
        ("PGPORT", options.get_port().to_string()),
        ("PGUSER", options.get_username().to_owned()),
        ("PGSSLMODE", ssl_mode(options.get_ssl_mode()).to_owned()),
    ];
    if let Some(database) = options.get_database() {
        env.push(("PGDATABASE", database.to_owned()));
    }
    if let Some(options) = options.get_options() {
        env.push(("PGOPTIONS", options.to_owned()));
    }
    if let Some(name) = options.get_application_name() {
        env.push(("PGAPPNAME", name.to_owned()));
    }
    // The driver keeps the password to itself: read it the way it does,
    // a `password` parameter winning over the percent-decoded user info.
    let mut password = parsed.password().map(percent_decode).transpose()?;
    for (key, value) in parsed.query_pairs() {
        let name = match key.as_ref() {
            "password" => {
                password = Some(value.into_owned());
                continue;
            }
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => "PGSSLROOTCERT",
            "sslcert" | "ssl-cert" => "PGSSLCERT",
            "sslkey" | "ssl-key" => "PGSSLKEY",
            _ => continue,
        };
        env.push((name, value.into_owned()));
    }
    if let Some(password) = password {
        env.push(("PGPASSWORD", password));
    }
    Ok(env)
}

fn ssl_mode(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// `%XX` escapes decoded, nothing else (`+` stays `+`), as the driver does.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the password in the URL is not UTF-8 once decoded".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(env: &[(&str, String)], name: &str) -> Option<String> {
        env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn passwords_arrive_as_the_server_reads_them() {
        for (url, password) in [
            ("postgres://u:a+b&c@db.internal:6543/sessions", "a+b&c"),
            ("postgres://u:a%2Bb%26c@db.internal:6543/sessions", "a+b&c"),
            ("postgres://u:p%40ss%3Aw%2Frd%25@db/x", "p@ss:w/rd%"),
            ("postgres://u@db/x?password=from%20query", "from query"),
        ] {
            let env = environment(url).expect("url");
            assert_eq!(get(&env, "PGPASSWORD").as_deref(), Some(password), "{url}");
        }
        let env = environment("postgres://app:pw@db.internal:6543/sessions?options=-c%20search_path%3Dt1")
            .expect("url");
        assert_eq!(get(&env, "PGHOST").as_deref(), Some("db.internal"));
        assert_eq!(get(&env, "PGPORT").as_deref(), Some("6543"));
        assert_eq!(get(&env, "PGUSER").as_deref(), Some("app"));
        assert_eq!(get(&env, "PGDATABASE").as_deref(), Some("sessions"));
        assert_eq!(get(&env, "PGOPTIONS").as_deref(), Some("-c search_path=t1"));
        assert_eq!(get(&env, "PGPASSWORD").as_deref(), Some("pw"));
    }
}
