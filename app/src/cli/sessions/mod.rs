//! `session-backend sessions list|show|export|import|fork|delete`: a
//! running service's sessions from the terminal, through its HTTP API
//! (`--url`, `--api-key`, or `SESSION_BACKEND_URL` and
//! `SESSION_BACKEND_API_KEY`, as the Python and TypeScript clients read).
//! Text for people, `--json` for scripts; progress for long transfers on
//! a terminal only.

mod client;
mod transcript;

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
};

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use session_backend::ops::progress::{self, Progress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::{
    client::{Client, key_path, segment, with_query},
    transcript::{Style, Transcript, visible},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service (also `SESSION_BACKEND_URL`).
    #[arg(long, env = "SESSION_BACKEND_URL", default_value = "http://127.0.0.1:8001", global = true)]
    url: String,
    /// The API key, when the service needs one (also `SESSION_BACKEND_API_KEY`).
    #[arg(long, env = "SESSION_BACKEND_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Print the API's JSON instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// The sessions, newest first, a page at a time; then the snapshot
    /// sessions (kept by SnapshotSessionManager as blobs).
    List(ListArgs),
    /// A session's agents and conversations as a transcript (or a snapshot
    /// session's latest snapshots).
    Show {
        session_id: String,
        /// Only this agent.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Write a session as one JSON document (`POST /sessions/import` takes it back).
    Export {
        session_id: String,
        /// Where to write it (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Make a session from a document `export` wrote (`-`: standard input).
    Import { file: PathBuf },
    /// Copy a session (its snapshots too) under a new id, or cut one agent's history after a message.
    Fork {
        session_id: String,
        new_session_id: String,
        /// The agent whose history is cut (with --up-to).
        #[arg(long, requires = "up_to")]
        agent: Option<String>,
        /// Keep that agent's messages up to this id.
        #[arg(long, requires = "agent")]
        up_to: Option<u64>,
    },
    /// Delete a session, everything under it and its snapshots.
    Delete {
        session_id: String,
        /// Do not ask (needed when standard input is not a terminal).
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Ids starting with this.
    #[arg(long)]
    id_prefix: Option<String>,
    /// Sessions of this type.
    #[arg(long = "type")]
    session_type: Option<String>,
    /// Created at or after this time (RFC 3339).
    #[arg(long)]
    created_after: Option<String>,
    /// Updated at or after this time (RFC 3339).
    #[arg(long)]
    updated_after: Option<String>,
    #[arg(long, default_value_t = 1)]
    page: u64,
    #[arg(long, default_value_t = 50)]
    page_size: u64,
}

const SESSIONS: &str = "/api/v1/sessions";

/// What a write to a closed standard output (`… | head`) fails with: the
/// reader has all it wanted, so the command ends quietly.
const CLOSED: &str = "standard output was closed";

/// The error of a failed write of the output.
fn written(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CLOSED.to_owned()
    } else {
        format!("writing the output: {e}")
    }
}

/// Runs one `sessions` command.
pub async fn run(args: Args) -> Result<(), String> {
    match act(args).await {
        Err(problem) if problem == CLOSED => Ok(()),
        done => done,
    }
}

async fn act(args: Args) -> Result<(), String> {
    let client = Client::new(&args.url, args.api_key.clone())?;
    let style = Style::detect();
    match args.action {
        Action::List(list) => self::list(&client, &list, args.json, style).await,
        Action::Show { session_id, agent } => {
            show(&client, &session_id, agent.as_deref(), args.json, style).await
        }
        Action::Export { session_id, output } => export(&client, &session_id, output).await,
        Action::Import { file } => import(&client, &file, args.json).await,
        Action::Fork { session_id, new_session_id, agent, up_to } => {
            let mut body = json!({"session_id": new_session_id});
            if let (Some(agent), Some(up_to)) = (agent, up_to) {
                body["agent_id"] = json!(agent);
                body["up_to_message_id"] = json!(up_to);
            }
            let path = format!("{SESSIONS}/{}/fork", segment(&session_id));
            let forked = client.json(Method::POST, &path, Some(&body)).await?;
            print(args.json, &forked, || {
                format!("forked {} into {}", visible(&session_id), visible(&new_session_id))
            })
        }
        Action::Delete { session_id, yes } => {
            if !yes
                && !confirm(&format!(
                    "Delete session `{session_id}`, everything under it and its snapshots?"
                ))?
            {
                return Err("not deleted".into());
            }
            client.json(Method::DELETE, &format!("{SESSIONS}/{}", segment(&session_id)), None).await?;
            print(args.json, &json!({"deleted": session_id}), || format!("deleted {}", visible(&session_id)))
        }
    }
}

/// Prints `value` as JSON, or `text()`.
fn print(as_json: bool, value: &Value, text: impl FnOnce() -> String) -> Result<(), String> {
    let out = if as_json { serde_json::to_string_pretty(value).unwrap_or_default() } else { text() };
    writeln!(std::io::stdout(), "{out}").map_err(written)
}

/// Asks on the terminal; refuses outright when nobody is there to answer.
fn confirm(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err("standard input is not a terminal: add --yes to delete without asking".into());
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| e.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

async fn list(client: &Client, args: &ListArgs, as_json: bool, style: Style) -> Result<(), String> {
    let query = [
        ("page", args.page.to_string()),
        ("page_size", args.page_size.to_string()),
        ("id_prefix", args.id_prefix.clone().unwrap_or_default()),
        ("session_type", args.session_type.clone().unwrap_or_default()),
        ("created_after", args.created_after.clone().unwrap_or_default()),
        ("updated_after", args.updated_after.clone().unwrap_or_default()),
    ];
    let mut page = client.json(Method::GET, &with_query(SESSIONS, &query), None).await?;
    let (snapshots, more) =
        names_under(client, "session/", args.id_prefix.as_deref().unwrap_or_default(), 50).await?;
    if as_json {
        page["snapshot_sessions"] = json!(snapshots);
        return print(true, &page, String::new);
    }
    let sessions = page["sessions"].as_array().cloned().unwrap_or_default();
    let total = page["total"].as_u64().unwrap_or_default();
    let pages = total.div_ceil(args.page_size).max(1);
    let mut out = std::io::stdout().lock();
    let mut lines =
        vec![style.bold(&format!("{total} sessions (page {} of {pages}), newest first", args.page))];
    let width =
        sessions.iter().filter_map(|s| s["session_id"].as_str()).map(str::len).max().unwrap_or(0).max(7);
    if !sessions.is_empty() {
        lines.push(
            style.dim(&format!("{:width$}  {:12}  {:32}  {}", "session", "type", "created", "updated")),
        );
    }
    for s in &sessions {
        let field = |name: &str| visible(s[name].as_str().unwrap_or_default());
        lines.push(format!(
            "{:width$}  {:12}  {:32}  {}",
            field("session_id"),
            field("session_type"),
            field("created_at"),
            field("updated_at")
        ));
    }
    if !snapshots.is_empty() {
        lines.push(String::new());
        lines.push(style.bold(&format!("snapshot sessions{}", if more { " (the first 50)" } else { "" })));
        lines.extend(snapshots.iter().map(|id| visible(id)));
    }
    writeln!(out, "{}", lines.join("\n")).map_err(written)
}

/// The names one level under `base` (`session/` → session ids, `…/agent/`
/// → agents) of the keys starting with `base` + `starting`, `count` at
/// most, one listing call each (the rest of a name's keys are skipped);
/// whether there are more.
async fn names_under(
    client: &Client,
    base: &str,
    starting: &str,
    count: usize,
) -> Result<(Vec<String>, bool), String> {
    let mut names = Vec::new();
    let mut after = String::new();
    loop {
        let query =
            [("prefix", format!("{base}{starting}")), ("start_after", after.clone()), ("limit", "1".into())];
        let page = client.json(Method::GET, &with_query("/api/v1/storage", &query), None).await?;
        let Some(key) = page["keys"].get(0).and_then(Value::as_str) else { return Ok((names, false)) };
        if names.len() == count {
            return Ok((names, true));
        }
        let name =
            key.strip_prefix(base).and_then(|rest| rest.split('/').next()).unwrap_or_default().to_owned();
        // `0` follows `/`: past every key under `base + name + /`.
        after = format!("{base}{name}0");
        names.push(name);
    }
}

async fn show(
    client: &Client,
    id: &str,
    only: Option<&str>,
    as_json: bool,
    style: Style,
) -> Result<(), String> {
    let path = format!("{SESSIONS}/{}", segment(id));
    let session = match client.json(Method::GET, &path, None).await {
        Ok(session) => session,
        Err(problem) if problem.starts_with("404") => {
            return show_snapshots(client, id, as_json, style).await;
        }
        Err(problem) => return Err(problem),
    };
    if as_json {
        // One consistent document: the export.
        return export(client, id, None).await;
    }
    let agents = all_pages(client, &format!("{path}/agents"), "agents").await?;
    if let Some(only) = only.filter(|only| !agents.iter().any(|a| a["agent_id"] == *only)) {
        return Err(format!("404 NotFoundError: session `{}` has no agent `{}`", visible(id), visible(only)));
    }
    let mut out = Transcript::new(std::io::stdout().lock(), style);
    let write = written;
    out.line(&style.bold(&format!("session {}", visible(id)))).map_err(write)?;
    out.line(&style.dim(&format!(
        "{} · created {} · updated {} · metadata {}",
        session["session_type"].as_str().unwrap_or_default(),
        session["created_at"].as_str().unwrap_or_default(),
        session["updated_at"].as_str().unwrap_or_default(),
        visible(&session["metadata"].to_string())
    )))
    .map_err(write)?;
    for agent in agents.iter().filter(|a| only.is_none_or(|o| a["agent_id"] == o)) {
        let agent_id = agent["agent_id"].as_str().unwrap_or_default();
        let messages = format!("{path}/agents/{}/messages", segment(agent_id));
        // By id, after the last one shown: a message deleted meanwhile
        // cannot shift the pages.
        let mut after: Option<i64> = None;
        let mut shown = 0;
        out.heading(&format!("agent {}", visible(agent_id))).map_err(write)?;
        loop {
            let from = after.map_or_else(|| "offset=0".to_owned(), |id| format!("after_message_id={id}"));
            let page = client.json(Method::GET, &format!("{messages}?{from}&limit=1000"), None).await?;
            let records = page["messages"].as_array().cloned().unwrap_or_default();
            for record in &records {
                let redacted = !record["redact_message"].is_null();
                let message = if redacted { &record["redact_message"] } else { &record["message"] };
                let id = record["message_id"].as_i64().unwrap_or_default();
                out.message(id, message, redacted, record["created_at"].as_str()).map_err(write)?;
                after = Some(id);
                shown += 1;
            }
            if records.len() < 1000 {
                break;
            }
        }
        out.line(&style.dim(&format!("({shown} messages)"))).map_err(write)?;
    }
    if only.is_none() {
        for state in all_pages(client, &format!("{path}/multi-agents"), "multi_agents").await? {
            out.heading(&format!(
                "multi-agent {}",
                visible(state["multi_agent_id"].as_str().unwrap_or_default())
            ))
            .map_err(write)?;
            out.line(&visible(&serde_json::to_string_pretty(&state["state"]).unwrap_or_default()))
                .map_err(write)?;
        }
    }
    out.flush().map_err(write)
}

/// Every item of a paged listing (`page`, `page_size`, `total`).
async fn all_pages(client: &Client, path: &str, field: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    for page in 1.. {
        let answer = client.json(Method::GET, &format!("{path}?page={page}&page_size=100"), None).await?;
        let got = answer[field].as_array().cloned().unwrap_or_default();
        let done =
            got.is_empty() || items.len() + got.len() >= answer["total"].as_u64().unwrap_or(0) as usize;
        items.extend(got);
        if done {
            break;
        }
    }
    Ok(items)
}

/// A snapshot session: the latest snapshot of each agent and orchestrator.
async fn show_snapshots(client: &Client, id: &str, as_json: bool, style: Style) -> Result<(), String> {
    let mut latest = Vec::new();
    for scope in ["agent", "multiAgent"] {
        let (owners, _) = names_under(client, &format!("session/{id}/scopes/{scope}/"), "", 1000).await?;
        for owner in owners {
            let key = format!("session/{id}/scopes/{scope}/{owner}/snapshots/snapshot_latest.json");
            let request = client.request(Method::GET, &format!("/api/v1/storage/{}", key_path(&key)));
            // An owner with history but no latest snapshot has nothing to show.
            let response = match client.send(request).await {
                Ok(response) => response,
                Err(problem) if problem.starts_with("404") => continue,
                Err(problem) => return Err(problem),
            };
            let bytes = response.bytes().await.map_err(|e| client.unreachable(&e))?;
            let snapshot: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            latest.push((scope, owner, key, snapshot));
        }
    }
    if latest.is_empty() {
        let id = visible(id);
        return Err(format!("404 NotFoundError: no session `{id}`, and no snapshots under session/{id}/"));
    }
    if as_json {
        let snapshots: Vec<Value> = latest
            .iter()
            .map(|(scope, owner, key, s)| json!({"scope": scope, "id": owner, "key": key, "snapshot": s}))
            .collect();
        return print(true, &json!({"session_id": id, "snapshots": snapshots}), String::new);
    }
    let mut out = Transcript::new(std::io::stdout().lock(), style);
    let write = written;
    out.line(&style.bold(&format!("snapshot session {}", visible(id)))).map_err(write)?;
    for (scope, owner, _, snapshot) in &latest {
        let taken = snapshot.get("created_at").or_else(|| snapshot.get("createdAt")).and_then(Value::as_str);
        out.heading(&format!(
            "{scope} {} (latest snapshot, {})",
            visible(owner),
            visible(taken.unwrap_or("time unknown"))
        ))
        .map_err(write)?;
        let data = &snapshot["data"];
        match data["messages"].as_array() {
            Some(messages) => {
                for (n, message) in messages.iter().enumerate() {
                    out.message(n as i64, message, false, None).map_err(write)?;
                }
            }
            None => {
                out.line(&visible(&serde_json::to_string_pretty(data).unwrap_or_default())).map_err(write)?
            }
        }
    }
    out.flush().map_err(write)
}

/// Streams the export to `output` (a temporary file renamed when whole)
/// or to standard output.
async fn export(client: &Client, id: &str, output: Option<PathBuf>) -> Result<(), String> {
    let response =
        client.send(client.request(Method::GET, &format!("{SESSIONS}/{}/export", segment(id)))).await?;
    let total = response.content_length();
    let to_file = output.filter(|p| p.as_os_str() != "-");
    // Progress would draw over a document going to the same terminal.
    let progress = if to_file.is_some() || !std::io::stdout().is_terminal() {
        Progress::start(&format!("exporting {}", visible(id)))
    } else {
        Progress::quiet()
    };
    let partial =
        to_file.as_ref().map(|p| PathBuf::from(format!("{}.partial-{}", p.display(), std::process::id())));
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &partial {
        // Conversations are private: the file is its user's alone.
        Some(path) => Box::new(
            tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let copied = async {
        let mut received = 0_u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| client.unreachable(&e))?;
            sink.write_all(&chunk).await.map_err(written)?;
            received += chunk.len() as u64;
            progress.set(|| match total {
                Some(total) => format!("{} of {}", progress::size(received), progress::size(total)),
                None => format!("{} received", progress::size(received)),
            });
        }
        sink.flush().await.map_err(written)
    }
    .await;
    progress.finish();
    match (copied, partial, to_file) {
        (Ok(()), Some(partial), Some(path)) => tokio::fs::rename(&partial, &path).await.map_err(|e| {
            drop(std::fs::remove_file(&partial));
            format!("{}: {e}", path.display())
        }),
        (Err(problem), Some(partial), _) => {
            drop(tokio::fs::remove_file(&partial).await);
            Err(problem)
        }
        (result, _, _) => result,
    }
}

/// Streams a document to `POST /sessions/import`, with progress.
async fn import(client: &Client, file: &std::path::Path, as_json: bool) -> Result<(), String> {
    let progress = Progress::start(&format!("importing {}", visible(&file.display().to_string())));
    let request = client
        .request(Method::POST, &format!("{SESSIONS}/import"))
        .header("content-type", "application/json");
    let (reader, total): (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Option<u64>) =
        if file.as_os_str() == "-" {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let opened = tokio::fs::File::open(file).await.map_err(|e| format!("{}: {e}", file.display()))?;
            let size = opened.metadata().await.map_err(|e| format!("{}: {e}", file.display()))?.len();
            (Box::new(opened), Some(size))
        };
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = sent.clone();
    let shown = std::sync::Arc::new(progress);
    let showing = shown.clone();
    let chunks = futures::stream::unfold(reader, |mut reader| async move {
        let mut buffer = vec![0; 64 * 1024];
        match reader.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(bytes::Bytes::from(buffer)), reader))
            }
            Err(e) => Some((Err(e), reader)),
        }
    });
    let body = chunks.inspect(move |chunk: &std::io::Result<bytes::Bytes>| {
        if let Ok(chunk) = chunk {
            let now = counted.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
                + chunk.len() as u64;
            showing.set(|| match total {
                Some(total) => format!("{} of {} sent", progress::size(now), progress::size(total)),
                None => format!("{} sent", progress::size(now)),
            });
        }
    });
    let mut request = request.body(reqwest::Body::wrap_stream(body));
    if let Some(total) = total {
        request = request.header("content-length", total);
    }
    let result = client.send(request).await;
    shown.finish();
    let created: Value = result?.json().await.map_err(|e| client.unreachable(&e))?;
    let id = created["session_id"].as_str().unwrap_or_default().to_owned();
    print(as_json, &created, || format!("imported {}", visible(&id)))
}
