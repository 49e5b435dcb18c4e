//! Writing the store out in `FileSessionManager`'s layout.

use std::{fmt, path::Path};

use chrono::{DateTime, SecondsFormat, Utc};
use entity::{JsonText, agent, message, multi_agent, session};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{
    config::Config,
    db::{Conn, Database, Db},
    ops::progress::Progress,
};

use super::ExportArgs;

/// What an export wrote.
#[derive(Debug, Default)]
pub struct Exported {
    pub sessions: u64,
    pub agents: u64,
    pub messages: u64,
    pub multi_agents: u64,
}

impl fmt::Display for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exported {} sessions, {} agents, {} messages, {} multi-agent states",
            self.sessions, self.agents, self.messages, self.multi_agents
        )
    }
}

/// Messages read per query while exporting.
const EXPORT_PAGE: u64 = 1000;

/// The SDK's timestamp form, Python's `isoformat()`:
/// `2026-11-22T10:00:00.123456+00:00`, without a fraction when it is zero.
fn iso(t: DateTime<Utc>) -> String {
    let precision =
        if t.timestamp_subsec_micros() == 0 { SecondsFormat::Secs } else { SecondsFormat::Micros };
    t.to_rfc3339_opts(precision, false)
}

fn text(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn write(path: &Path, body: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, body).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the configured database's sessions (or one) to `args.dir`.
pub async fn export(config: &Config, args: &ExportArgs) -> Result<Exported, String> {
    let db = Database::connect(config).await.map_err(|e| e.to_string())?;
    let conn = db.conn();
    let err = |e: sea_orm::DbErr| format!("reading the database: {e}");
    let tenant = args.tenant.as_str();
    let mut sessions = session::Entity::find().filter(session::Column::TenantId.eq(tenant));
    if let Some(id) = &args.session {
        sessions = sessions.filter(session::Column::SessionId.eq(id.as_str()));
    }
    let sessions = sessions.order_by_asc(session::Column::SessionId).all(&conn.reads()).await.map_err(err)?;
    if let (Some(id), true) = (&args.session, sessions.is_empty()) {
        return Err(format!("session `{id}` not found"));
    }
    let mut done = Exported::default();
    let progress = Progress::start("exporting");
    let total = sessions.len();
    for s in sessions {
        progress.set(|| format!("{} of {total} sessions, {} messages", done.sessions, done.messages));
        let dir = args.dir.join(format!("session_{}", s.session_id));
        let body = format!(
            r#"{{"session_id": {}, "session_type": {}, "created_at": {}, "updated_at": {}}}"#,
            text(&s.session_id),
            text(&s.session_type),
            text(&iso(s.created_at)),
            text(&iso(s.updated_at))
        );
        write(&dir.join("session.json"), &body)?;
        done.sessions += 1;
        let agents = agent::Entity::find()
            .filter(agent::Column::TenantId.eq(tenant))
            .filter(agent::Column::SessionId.eq(s.session_id.as_str()))
            .all(&conn.reads())
            .await
            .map_err(err)?;
        for a in agents {
            let agent_dir = dir.join("agents").join(format!("agent_{}", a.agent_id));
            let body = format!(
                r#"{{"agent_id": {}, "state": {}, "conversation_manager_state": {}, "_internal_state": {}, "created_at": {}, "updated_at": {}}}"#,
                text(&a.agent_id),
                a.state.as_str(),
                a.conversation_manager_state.as_str(),
                a.internal_state.as_str(),
                text(&iso(a.created_at)),
                text(&iso(a.updated_at))
            );
            write(&agent_dir.join("agent.json"), &body)?;
            done.agents += 1;
            done.messages += export_messages(conn, &a, &agent_dir.join("messages")).await?;
            progress.set(|| format!("{} of {total} sessions, {} messages", done.sessions, done.messages));
        }
        let states = multi_agent::Entity::find()
            .filter(multi_agent::Column::TenantId.eq(tenant))
            .filter(multi_agent::Column::SessionId.eq(s.session_id.as_str()))
            .all(&conn.reads())
            .await
            .map_err(err)?;
        for m in states {
            let path = dir
                .join("multi_agents")
                .join(format!("multi_agent_{}", m.multi_agent_id))
                .join("multi_agent.json");
            write(&path, m.state.as_str())?;
            done.multi_agents += 1;
        }
    }
    progress.finish();
    db.close().await;
    Ok(done)
}

/// Writes an agent's messages a page at a time; how many.
async fn export_messages(conn: &Conn, a: &agent::Model, dir: &Path) -> Result<u64, String> {
    let mut written = 0;
    let mut after = -1_i64;
    loop {
        let page = message::Entity::find()
            .filter(message::Column::TenantId.eq(a.tenant_id.as_str()))
            .filter(message::Column::SessionId.eq(a.session_id.as_str()))
            .filter(message::Column::AgentId.eq(a.agent_id.as_str()))
            .filter(message::Column::MessageId.gt(after))
            .order_by_asc(message::Column::MessageId)
            .limit(EXPORT_PAGE)
            .all(&conn.reads())
            .await
            .map_err(|e| format!("reading the database: {e}"))?;
        let Some(last) = page.last() else { return Ok(written) };
        after = last.message_id;
        for m in &page {
            let body = format!(
                r#"{{"message": {}, "message_id": {}, "redact_message": {}, "created_at": {}, "updated_at": {}}}"#,
                m.message.as_str(),
                m.message_id,
                m.redact_message.as_ref().map_or("null", JsonText::as_str),
                text(&iso(m.created_at)),
                text(&iso(m.updated_at))
            );
            write(&dir.join(format!("message_{}.json", m.message_id)), &body)?;
            written += 1;
        }
    }
}
