//! Moving in and out of the layout the SDK's `FileSessionManager` writes:
//!
//! ```text
//! DIR/session_<sid>/session.json
//! DIR/session_<sid>/agents/agent_<aid>/agent.json
//! DIR/session_<sid>/agents/agent_<aid>/messages/message_<n>.json
//! DIR/session_<sid>/multi_agents/multi_agent_<id>/multi_agent.json
//! ```
//!
//! Each file is the SDK's `to_dict()` (a multi-agent file its
//! `serialize_state()`). An import keeps timestamps and never changes what
//! is already stored, so running it twice changes nothing; an export writes
//! the same layout back, documents exactly as stored.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use entity::{JsonText, agent, message, multi_agent, session};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    api::validate,
    config::Config,
    db::{Conn, Database},
    error::Error,
    store::{
        self, ChildKey,
        agents::NewAgent,
        children,
        messages::{AgentKey, Appended, NewMessage},
        sessions::NewSession,
    },
};

/// `import file-sessions`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The directory `FileSessionManager` wrote (its `storage_dir`).
    pub dir: PathBuf,
    /// Read and check everything, count what would be created, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first file that cannot be imported (by default it is
    /// reported with its path and skipped, with what lies below it).
    #[arg(long)]
    pub strict: bool,
    /// The tenant the sessions are imported for (the tenant of an API key;
    /// `default` is the tenant of every request while keys are off).
    #[arg(long, default_value = store::DEFAULT_TENANT, value_parser = tenant)]
    pub tenant: String,
}

/// `export file-sessions`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The directory to write (created if missing; files there are replaced).
    pub dir: PathBuf,
    /// Export only this session.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Whose sessions to export (see `import --tenant`).
    #[arg(long, default_value = store::DEFAULT_TENANT, value_parser = tenant)]
    pub tenant: String,
}

fn tenant(name: &str) -> Result<String, String> {
    crate::auth::keys::check_tenant(name).map(|()| name.to_owned())
}

/// How many of a kind of row were created and how many were there already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: u64,
    pub present: u64,
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Default)]
pub struct Imported {
    pub sessions: Tally,
    pub agents: Tally,
    pub messages: Tally,
    pub multi_agents: Tally,
    /// Files that could not be imported: path and why.
    pub skipped: Vec<String>,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, tally) in [
            ("sessions", self.sessions),
            ("agents", self.agents),
            ("messages", self.messages),
            ("multi-agent states", self.multi_agents),
        ] {
            writeln!(f, "{name}: {} created, {} already present", tally.created, tally.present)?;
        }
        write!(f, "files skipped: {}", self.skipped.len())
    }
}

#[derive(Deserialize)]
struct SessionFile {
    session_id: String,
    session_type: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct AgentFile {
    agent_id: String,
    state: Box<RawValue>,
    conversation_manager_state: Box<RawValue>,
    #[serde(rename = "_internal_state")]
    internal_state: Option<Box<RawValue>>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct MessageFile {
    message: Box<RawValue>,
    message_id: i64,
    redact_message: Option<Box<RawValue>>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

/// A problem with one file: its path and what is wrong.
struct Bad(String);

fn bad(path: &Path, problem: impl fmt::Display) -> Bad {
    Bad(format!("{}: {problem}", path.display()))
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Bad> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e))?;
    serde_json::from_str(&text).map_err(|e| bad(path, format!("not what FileSessionManager writes: {e}")))
}

fn object(path: &Path, field: &str, raw: &RawValue) -> Result<JsonText, Bad> {
    let text = JsonText::parse(raw.get().to_owned()).map_err(|e| bad(path, format!("{field}: {e}")))?;
    if text.is_object() { Ok(text) } else { Err(bad(path, format!("{field} must be a JSON object"))) }
}

fn timestamp(path: &Path, field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Bad> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
                .map_err(|e| bad(path, format!("{field} `{v}` is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

fn id(path: &Path, what: &str, value: &str) -> Result<(), Bad> {
    validate::id(value).map_err(|problem| bad(path, format!("{what} `{value}`: {problem}")))
}

/// The entries of `dir` whose names start with `prefix`, sorted by the
/// rest of the name (numerically when `numeric`); missing dir = none.
fn entries(dir: &Path, prefix: &str, numeric: bool) -> Vec<(String, PathBuf)> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(String, PathBuf)> = read
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(prefix).map(|rest| (rest.to_owned(), e.path()))
        })
        .collect();
    if numeric {
        found.sort_by_key(|(rest, _)| rest.trim_end_matches(".json").parse::<i64>().unwrap_or(i64::MAX));
    } else {
        found.sort();
    }
    found
}

/// Counts an insert that may find its row already there.
fn tally(tally: &mut Tally, result: Result<bool, Error>, path: &Path) -> Result<(), Bad> {
    match result {
        Ok(true) => tally.created += 1,
        Ok(false) | Err(Error::Conflict(_)) => tally.present += 1,
        Err(err) => return Err(bad(path, err)),
    }
    Ok(())
}

/// Imports `args.dir` into the configured database.
pub async fn import(config: &Config, args: &ImportArgs) -> Result<Imported, String> {
    if !args.dir.is_dir() {
        return Err(format!("{}: not a directory", args.dir.display()));
    }
    let db = Database::connect(config).await.map_err(|e| e.to_string())?;
    db.prepare(config.database.auto_migrate).await.map_err(|e| e.to_string())?;
    let mut done = Imported::default();
    let importer = Importer { db: db.conn(), dry_run: args.dry_run, tenant: &args.tenant };
    for (_, session_dir) in entries(&args.dir, "session_", false) {
        let result = importer.session(&session_dir, &mut done, args.strict).await;
        if let Err(Bad(problem)) = result {
            if args.strict {
                return Err(problem);
            }
            done.skipped.push(problem);
        }
    }
    db.close().await;
    Ok(done)
}

struct Importer<'a> {
    db: &'a Conn,
    dry_run: bool,
    tenant: &'a str,
}

impl Importer<'_> {
    /// Reports a problem below a session: fatal when `strict`, else skipped.
    fn skip(&self, done: &mut Imported, strict: bool, result: Result<(), Bad>) -> Result<(), Bad> {
        match result {
            Err(problem) if !strict => {
                done.skipped.push(problem.0);
                Ok(())
            }
            other => other,
        }
    }

    async fn session(&self, dir: &Path, done: &mut Imported, strict: bool) -> Result<(), Bad> {
        let path = dir.join("session.json");
        let file: SessionFile = read(&path)?;
        id(&path, "session_id", &file.session_id)?;
        let session_type = file.session_type.unwrap_or_else(|| "AGENT".into());
        validate::session_type(&session_type).map_err(|p| bad(&path, format!("session_type: {p}")))?;
        let new = NewSession {
            session_id: file.session_id.clone(),
            session_type,
            metadata: JsonText::parse("{}".into()).map_err(|e| bad(&path, e))?,
            created_at: timestamp(&path, "created_at", file.created_at.as_deref())?,
            updated_at: timestamp(&path, "updated_at", file.updated_at.as_deref())?,
            // The SDK's files know no TTL: imported sessions are kept.
            ttl_seconds: 0,
        };
        let result = if self.dry_run {
            self.exists(store::sessions::get(self.db, self.tenant, &file.session_id).await)
        } else {
            store::sessions::create(self.db, self.tenant, new).await.map(|_| true)
        };
        tally(&mut done.sessions, result, &path)?;
        let sid = file.session_id.as_str();
        for (_, agent_dir) in entries(&dir.join("agents"), "agent_", false) {
            let result = self.agent(sid, &agent_dir, done, strict).await;
            self.skip(done, strict, result)?;
        }
        for (_, state_dir) in entries(&dir.join("multi_agents"), "multi_agent_", false) {
            let result = self.multi_agent(sid, &state_dir, done).await;
            self.skip(done, strict, result)?;
        }
        Ok(())
    }

    /// `Ok(false)` when `found` found the row, `Ok(true)` when it would be created.
    fn exists<T>(&self, found: Result<T, Error>) -> Result<bool, Error> {
        match found {
            Ok(_) => Ok(false),
            Err(Error::NotFound(_)) => Ok(true),
            Err(err) => Err(err),
        }
    }

    async fn agent(&self, sid: &str, dir: &Path, done: &mut Imported, strict: bool) -> Result<(), Bad> {
        let path = dir.join("agent.json");
        let file: AgentFile = read(&path)?;
        id(&path, "agent_id", &file.agent_id)?;
        let internal = match &file.internal_state {
            Some(raw) => object(&path, "_internal_state", raw)?,
            None => JsonText::parse("{}".into()).map_err(|e| bad(&path, e))?,
        };
        let new = NewAgent {
            state: object(&path, "state", &file.state)?,
            conversation_manager_state: object(
                &path,
                "conversation_manager_state",
                &file.conversation_manager_state,
            )?,
            internal_state: internal,
            created_at: timestamp(&path, "created_at", file.created_at.as_deref())?,
            updated_at: timestamp(&path, "updated_at", file.updated_at.as_deref())?,
        };
        let key = ChildKey { tenant: self.tenant, session_id: sid, id: &file.agent_id };
        let result = if self.dry_run {
            self.exists(children::get::<agent::Entity>(self.db, key).await)
        } else {
            store::agents::create(self.db, key, new).await.map(|_| true)
        };
        tally(&mut done.agents, result, &path)?;
        let agent = AgentKey { tenant: self.tenant, session_id: sid, agent_id: &file.agent_id };
        for (_, message_path) in entries(&dir.join("messages"), "message_", true) {
            let result = self.message(agent, &message_path, done).await;
            self.skip(done, strict, result)?;
        }
        Ok(())
    }

    async fn message(&self, agent: AgentKey<'_>, path: &Path, done: &mut Imported) -> Result<(), Bad> {
        let file: MessageFile = read(path)?;
        if file.message_id < 0 {
            return Err(bad(path, "message_id must not be negative"));
        }
        let new = NewMessage {
            message_id: file.message_id,
            message: object(path, "message", &file.message)?,
            redact_message: file
                .redact_message
                .as_deref()
                .map(|r| object(path, "redact_message", r))
                .transpose()?,
            created_at: timestamp(path, "created_at", file.created_at.as_deref())?,
            updated_at: timestamp(path, "updated_at", file.updated_at.as_deref())?,
        };
        let result = if self.dry_run {
            self.exists(store::messages::get(self.db, agent, file.message_id).await)
        } else {
            match store::messages::append(self.db, agent, new).await {
                Ok(Appended::Created(_)) => Ok(true),
                Ok(Appended::Replayed(_)) => Ok(false),
                // Another message under this id: the stored one stays.
                Err(Error::Conflict(why)) => return Err(bad(path, why)),
                Err(err) => Err(err),
            }
        };
        tally(&mut done.messages, result, path)
    }

    async fn multi_agent(&self, sid: &str, dir: &Path, done: &mut Imported) -> Result<(), Bad> {
        let path = dir.join("multi_agent.json");
        let raw: Box<RawValue> = read(&path)?;
        let state = object(&path, "the state", &raw)?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let multi_agent_id = name.strip_prefix("multi_agent_").unwrap_or(&name).to_owned();
        id(&path, "multi-agent id", &multi_agent_id)?;
        let key = ChildKey { tenant: self.tenant, session_id: sid, id: &multi_agent_id };
        let result = if self.dry_run {
            self.exists(children::get::<multi_agent::Entity>(self.db, key).await)
        } else {
            store::multi_agents::create(self.db, key, state).await.map(|_| true)
        };
        tally(&mut done.multi_agents, result, &path)
    }
}

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
    let sessions = sessions.order_by_asc(session::Column::SessionId).all(conn).await.map_err(err)?;
    if let (Some(id), true) = (&args.session, sessions.is_empty()) {
        return Err(format!("session `{id}` not found"));
    }
    let mut done = Exported::default();
    for s in sessions {
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
            .all(conn)
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
        }
        let states = multi_agent::Entity::find()
            .filter(multi_agent::Column::TenantId.eq(tenant))
            .filter(multi_agent::Column::SessionId.eq(s.session_id.as_str()))
            .all(conn)
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
            .all(conn)
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
