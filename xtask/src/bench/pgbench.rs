//! The database alone: pgbench (`-M prepared`, or `extended` through a pooler; the same concurrency and
//! time) running the SQL work the server does for an append and for a
//! page read, against the rows the benchmark seeded. The statements are
//! written out here after the ones the store issues (app/src/store):
//! the append is one `INSERT … SELECT … WHERE <session alive, its lease
//! letting the write through, its row locked FOR KEY SHARE> ON CONFLICT DO
//! NOTHING`, the page one `SELECT` of 100 rows with the agent's count,
//! which reads the page only if its documents fit in a listing chunk
//! (app/src/store/listing.rs). Values the server binds are literals here.

use std::{path::Path, time::Duration};

use crate::run::output;

/// The condition every statement on rows under the session carries.
const ALIVE: &str = "EXISTS (SELECT 1 FROM sessions WHERE sessions.tenant_id = 'default' \
     AND sessions.session_id = 'bench' AND (sessions.expires_at IS NULL OR sessions.expires_at > 0))";

/// The condition every write of the session's tree carries (a write
/// without a lease token: no lease may be live).
const WRITABLE: &str = "EXISTS (SELECT 1 FROM sessions WHERE sessions.tenant_id = 'default' \
     AND sessions.session_id = 'bench' AND (sessions.expires_at IS NULL OR sessions.expires_at > 0) \
     AND (sessions.lease_token IS NULL OR sessions.lease_expires_at <= 0) FOR KEY SHARE)";

/// The pgbench script of a server scenario, if it has one.
pub fn script(scenario: super::Scenario) -> Option<String> {
    let text = "Message of the benchmark: a sentence or two of the kind a user or an assistant writes in a chat turn.";
    let document = format!(r#"{{"role": "user", "content": [{{"text": "{text}"}}]}}"#);
    match scenario {
        super::Scenario::Append => Some(format!(
            "\\set id random(1000000, 2000000000)\n\
             INSERT INTO messages (tenant_id, session_id, agent_id, message_id, message, redact_message, created_at, updated_at) \
             SELECT 'default', 'bench', 'pgbench', :id, '{document}', NULL, now(), now() WHERE {WRITABLE} \
             ON CONFLICT (tenant_id, session_id, agent_id, message_id) DO NOTHING;\n"
        )),
        super::Scenario::Page => {
            let agent =
                format!("tenant_id = 'default' AND session_id = 'bench' AND agent_id = 'page' AND {ALIVE}");
            Some(format!(
                "SELECT message_id, message, redact_message, created_at, updated_at, \
                 '' AS tenant_id, '' AS session_id, '' AS agent_id, \
                 (SELECT COUNT(message_id) FROM messages WHERE {agent}) AS count_0 \
                 FROM messages WHERE {agent} \
                 AND (SELECT COALESCE(SUM(row_bytes), 0) FROM (SELECT COALESCE(octet_length(message), 0) \
                 + COALESCE(octet_length(redact_message), 0) AS row_bytes FROM messages WHERE {agent} \
                 ORDER BY message_id LIMIT 100 OFFSET 0) AS page) < 4194304 \
                 ORDER BY message_id LIMIT 100 OFFSET 0;\n"
            ))
        }
        _ => None,
    }
}

/// Runs `script` on `database_url` (a URI libpq reads, schema in its
/// options, or a pooler's, schema in its role's settings); transactions per
/// second. Through a transaction-mode pooler the statements go unnamed
/// (`-M extended`: parse, bind and execute in one round trip), since a
/// prepared one would be left on a server connection others share.
pub fn tps(
    database_url: &str,
    pooled: bool,
    script: &str,
    concurrency: usize,
    duration: Duration,
    dir: &Path,
) -> Result<f64, String> {
    let file = dir.join("pgbench.sql");
    std::fs::write(&file, script).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let args: Vec<String> = vec![
        "-n".into(),
        "-M".into(),
        if pooled { "extended" } else { "prepared" }.into(),
        "-c".into(),
        concurrency.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        duration.as_secs().max(1).to_string(),
        "-f".into(),
        file.display().to_string(),
        database_url.into(),
    ];
    let report = output("pgbench", &args)?;
    report
        .lines()
        .find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench's report:\n{report}"))
}
