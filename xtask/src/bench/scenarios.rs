//! What the benchmark asks of the server: the seed data, and one
//! operation per scenario (a turn or a restore counts as one).

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use hyper::Method;

use super::load::{Client, Measured, drive};

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Append one message (each connection to its own agent).
    Append,
    /// Read a 100-message page of a 200-message agent.
    Page,
    /// Read an agent.
    GetAgent,
    /// An agent turn: read the agent, append the user's and the
    /// assistant's messages, update the agent, read the last 100 messages.
    Turn,
    /// Restore an agent of 10,000 messages, following `next_offset`.
    Restore,
    /// Write a 256 KiB blob.
    BlobWrite,
    /// Read a 256 KiB blob.
    BlobRead,
    /// `GET /health`.
    Health,
    /// Write 1, 4 and 16 MiB snapshots with the search index on and off,
    /// and measure the index (a table of its own).
    SearchIndex,
}

impl Scenario {
    pub const ALL: [Self; 9] = [
        Self::Append,
        Self::Page,
        Self::GetAgent,
        Self::Turn,
        Self::Restore,
        Self::BlobWrite,
        Self::BlobRead,
        Self::Health,
        Self::SearchIndex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append one message",
            Self::Page => "read a 100-message page",
            Self::GetAgent => "get an agent",
            Self::Turn => "agent turn (5 requests)",
            Self::Restore => "restore 10,000 messages",
            Self::BlobWrite => "blob write 256 KiB",
            Self::BlobRead => "blob read 256 KiB",
            Self::Health => "GET /health",
            Self::SearchIndex => "search index of a snapshot",
        }
    }
}

const SESSION: &str = "/api/v1/sessions/bench";
const BLOB: usize = 256 * 1024;

/// A message of about the size of a short chat turn.
fn message(id: u64, role: &str) -> String {
    format!(
        r#"{{"message_id": {id}, "message": {{"role": "{role}", "content": [{{"text": "Message {id} of the benchmark: a sentence or two of the kind a user or an assistant writes in a chat turn."}}]}}}}"#
    )
}

fn agent(id: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"agent_id": "{id}", "state": {{"turns": 0}}, "conversation_manager_state": {{"__name__": "SlidingWindowConversationManager", "removed_message_count": 0}}}}"#
    ))
}

/// Adds `count` messages to `agent`, 1,000 per batch.
async fn fill(client: &mut Client, agent: &str, count: u64) -> Result<(), String> {
    for start in (0..count).step_by(1000) {
        let batch: Vec<String> = (start..count.min(start + 1000)).map(|id| message(id, "user")).collect();
        let body = format!(r#"{{"messages": [{}]}}"#, batch.join(","));
        client
            .expect(Method::POST, &format!("{SESSION}/agents/{agent}/messages/batch"), Some(body.into()), 201)
            .await?;
    }
    Ok(())
}

/// The session, agents, messages and blobs the scenarios use, through the API.
pub async fn seed(addr: SocketAddr, concurrency: usize) -> Result<(), String> {
    let mut client = Client::connect(addr).await?;
    client
        .expect(Method::POST, "/api/v1/sessions", Some(Bytes::from(r#"{"session_id": "bench"}"#)), 201)
        .await?;
    let mut agents: Vec<String> = vec!["page".into(), "restore".into(), "pgbench".into()];
    for i in 0..concurrency {
        agents.push(format!("append-{i}"));
        agents.push(format!("turn-{i}"));
    }
    for id in &agents {
        client.expect(Method::POST, &format!("{SESSION}/agents"), Some(agent(id)), 201).await?;
    }
    fill(&mut client, "page", 200).await?;
    fill(&mut client, "restore", 10_000).await?;
    client
        .expect(Method::PUT, "/api/v1/storage/bench/read", Some(Bytes::from(vec![b'r'; BLOB])), 204)
        .await?;
    Ok(())
}

/// Runs `scenario` for `duration` on `concurrency` connections.
pub async fn run(scenario: Scenario, addr: SocketAddr, concurrency: usize, duration: Duration) -> Measured {
    let blob = Bytes::from(vec![b'w'; BLOB]);
    match scenario {
        Scenario::Append => {
            drive(addr, concurrency, duration, |mut client, i, n| async move {
                let path = format!("{SESSION}/agents/append-{i}/messages");
                let result = client.expect(Method::POST, &path, Some(message(n, "user").into()), 201).await;
                (client, result.map(drop))
            })
            .await
        }
        Scenario::Page => {
            drive(addr, concurrency, duration, |mut client, _, _| async move {
                let path = format!("{SESSION}/agents/page/messages?offset=0&limit=100");
                let result = client.expect(Method::GET, &path, None, 200).await;
                (client, result.map(drop))
            })
            .await
        }
        Scenario::GetAgent => {
            drive(addr, concurrency, duration, |mut client, _, _| async move {
                let result = client.expect(Method::GET, &format!("{SESSION}/agents/page"), None, 200).await;
                (client, result.map(drop))
            })
            .await
        }
        Scenario::Turn => {
            drive(addr, concurrency, duration, |mut client, i, n| async move {
                let result = turn(&mut client, i, n).await;
                (client, result)
            })
            .await
        }
        Scenario::Restore => {
            drive(addr, concurrency, duration, |mut client, _, _| async move {
                let result = restore(&mut client).await;
                (client, result)
            })
            .await
        }
        Scenario::BlobWrite => {
            drive(addr, concurrency, duration, move |mut client, i, _| {
                let blob = blob.clone();
                async move {
                    let path = format!("/api/v1/storage/bench/write-{i}");
                    let result = client.expect(Method::PUT, &path, Some(blob), 204).await;
                    (client, result.map(drop))
                }
            })
            .await
        }
        Scenario::BlobRead => {
            drive(addr, concurrency, duration, |mut client, _, _| async move {
                let result = client.expect(Method::GET, "/api/v1/storage/bench/read", None, 200).await;
                let result = result.and_then(|body| {
                    if body.len() == BLOB { Ok(()) } else { Err(format!("a blob of {} bytes", body.len())) }
                });
                (client, result)
            })
            .await
        }
        Scenario::Health | Scenario::SearchIndex => {
            drive(addr, concurrency, duration, |mut client, _, _| async move {
                let result = client.expect(Method::GET, "/health", None, 200).await;
                (client, result.map(drop))
            })
            .await
        }
    }
}

/// One turn of agent `turn-{i}`, its `n`th.
async fn turn(client: &mut Client, i: usize, n: u64) -> Result<(), String> {
    let agent = format!("{SESSION}/agents/turn-{i}");
    client.expect(Method::GET, &agent, None, 200).await?;
    let messages = format!("{agent}/messages");
    client.expect(Method::POST, &messages, Some(message(2 * n, "user").into()), 201).await?;
    client.expect(Method::POST, &messages, Some(message(2 * n + 1, "assistant").into()), 201).await?;
    let state = format!(r#"{{"state": {{"turns": {}}}}}"#, n + 1);
    client.expect(Method::PUT, &agent, Some(state.into()), 200).await?;
    client.expect(Method::GET, &format!("{messages}?order=desc&limit=100"), None, 200).await?;
    Ok(())
}

/// Reads every message of the 10,000-message agent, following `next_offset`.
async fn restore(client: &mut Client) -> Result<(), String> {
    let mut offset = Some(0u64);
    let mut pages = 0;
    while let Some(at) = offset {
        let path = format!("{SESSION}/agents/restore/messages?offset={at}");
        let body = client.expect(Method::GET, &path, None, 200).await?;
        // The listing ends with `"next_offset":N}` or `"next_offset":null}`.
        let tail = String::from_utf8_lossy(&body[body.len().saturating_sub(64)..]).into_owned();
        let next =
            tail.rsplit_once("\"next_offset\":").map(|(_, v)| v.trim_end_matches('}').trim().to_owned());
        offset = next.and_then(|v| v.parse().ok());
        pages += 1;
        if pages > 100 {
            return Err("the restore did not end".into());
        }
    }
    Ok(())
}
