//! Reading the files of `FileSessionManager` into the store.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use chrono::{DateTime, SubsecRound, Utc};
use entity::{JsonText, agent, multi_agent};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    config::Config,
    db::{Conn, Database},
    domain::rules as validate,
    error::Error,
    ops::progress::Progress,
    store::{
        self, ChildKey,
        agents::NewAgent,
        children,
        leases::Fence,
        messages::{AgentKey, Appended, NewMessage},
        sessions::NewSession,
    },
};

use super::ImportArgs;

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
    let progress = Progress::start("importing");
    let sessions = entries(&args.dir, "session_", false);
    let total = sessions.len();
    for (n, (_, session_dir)) in sessions.into_iter().enumerate() {
        let messages = done.messages.created + done.messages.present;
        progress.set(|| format!("{n} of {total} sessions, {messages} messages"));
        let result = importer.session(&session_dir, &mut done, args.strict).await;
        if let Err(Bad(problem)) = result {
            if args.strict {
                return Err(problem);
            }
            done.skipped.push(problem);
        }
    }
    progress.finish();
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
            store::agents::create(self.db, key, new, Fence::default()).await.map(|_| true)
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
            match store::messages::append(self.db, agent, new, Fence::default()).await {
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
            store::multi_agents::create(self.db, key, state, Fence::default()).await.map(|_| true)
        };
        tally(&mut done.multi_agents, result, &path)
    }
}
