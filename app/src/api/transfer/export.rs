//! Writing a session's document from one snapshot into a [`Spool`]: the
//! snapshot is read as fast as the database gives it and closed before
//! the first byte is sent, so a slow download holds no connection. A
//! blob's value is written a chunk at a time, as base64 pieces small
//! enough for an import to read each as one member.

use base64::Engine;
use futures::{Stream, StreamExt};

use super::document::{AgentRecord, FORMAT, MultiAgentRecord, SessionRecord};
use crate::{
    api::messages::Message,
    db::Conn,
    error::Error,
    store::{snapshots, spool::Spool, transfer::Snapshot},
};

/// The session's document; no base64 piece of a blob's value is longer
/// than `member_bytes` (the most an import reads as one member).
pub async fn export(db: &Conn, tenant: &str, session_id: &str, member_bytes: usize) -> Result<Spool, Error> {
    let snapshot = Snapshot::open(db, tenant, session_id).await?;
    let mut out = Spool::default();
    out.write(format!(r#"{{"format":"{FORMAT}","session_id":"#).as_bytes()).await?;
    out.write_json(&snapshot.session_id()).await?;
    out.write(br#","session":"#).await?;
    out.write_json(&snapshot.session().map(SessionRecord::from)).await?;
    out.write(br#","agents":["#).await?;
    if snapshot.session().is_some() {
        let mut agents = Box::pin(snapshot.agents().await?);
        let mut first = true;
        while let Some(agent) = agents.next().await {
            let agent = agent?;
            let agent_id = agent.agent_id.clone();
            if !std::mem::take(&mut first) {
                out.write(b",").await?;
            }
            // The agent with an empty `messages`, written up to its `[`.
            let head = serde_json::to_vec(&AgentRecord::from(agent)).map_err(|_| Error::Internal)?;
            out.write(head.strip_suffix(b"]}").ok_or(Error::Internal)?).await?;
            list(&mut out, snapshot.messages(&agent_id).await?, Message::from).await?;
            out.write(b"]}").await?;
        }
        out.write(br#"],"multi_agents":["#).await?;
        // The agents' streams share the snapshot, which closes once nothing does.
        drop(agents);
        list(&mut out, snapshot.multi_agents().await?, MultiAgentRecord::from).await?;
    } else {
        out.write(br#"],"multi_agents":["#).await?;
    }
    out.write(br#"],"blobs":["#).await?;
    write_blobs(&mut out, &snapshot, piece_bytes(member_bytes)).await?;
    out.write(br#"],"complete":true}"#).await?;
    snapshot.close().await?;
    Ok(out)
}

/// Raw bytes per base64 piece: a multiple of 3 (so only the last piece
/// of a value is padded) whose encoding, quoted, fits `member_bytes`.
fn piece_bytes(member_bytes: usize) -> usize {
    (member_bytes.saturating_sub(16) / 4 * 3).clamp(3, 48 * 1024)
}

/// Writes the session's blobs, each `{"key", "data": [pieces]}`.
async fn write_blobs(out: &mut Spool, snapshot: &Snapshot, piece: usize) -> Result<(), Error> {
    let prefix = snapshots::prefix(snapshot.session_id());
    let mut after: Option<String> = None;
    let mut first = true;
    loop {
        let (page, next) = snapshot.blobs(after.as_deref()).await?;
        for (key, head) in &page {
            if !std::mem::take(&mut first) {
                out.write(b",").await?;
            }
            out.write(br#"{"key":"#).await?;
            out.write_json(&key.strip_prefix(&prefix).ok_or(Error::Internal)?).await?;
            out.write(br#","data":["#).await?;
            let mut pending = Vec::new();
            let mut first_piece = true;
            for seq in 0..head.chunks() {
                pending.extend_from_slice(&snapshot.chunk(key, head.version, seq).await?);
                let whole = pending.len() / piece * piece;
                for bytes in pending[..whole].chunks(piece) {
                    write_piece(out, bytes, &mut first_piece).await?;
                }
                pending.drain(..whole);
            }
            if !pending.is_empty() {
                write_piece(out, &pending, &mut first_piece).await?;
            }
            out.write(b"]}").await?;
        }
        match next {
            Some(key) => after = Some(key),
            None => return Ok(()),
        }
    }
}

/// Writes `bytes` as one quoted base64 piece.
async fn write_piece(out: &mut Spool, bytes: &[u8], first: &mut bool) -> Result<(), Error> {
    let mut text = String::with_capacity(bytes.len() / 3 * 4 + 8);
    if !std::mem::take(first) {
        text.push(',');
    }
    text.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut text);
    text.push('"');
    out.write(text.as_bytes()).await
}

/// Writes the rows of `rows` as records, comma-separated.
async fn list<M, R: serde::Serialize>(
    out: &mut Spool,
    rows: impl Stream<Item = Result<M, Error>>,
    record: impl Fn(M) -> R,
) -> Result<(), Error> {
    let mut rows = std::pin::pin!(rows);
    let mut first = true;
    while let Some(row) = rows.next().await {
        if !std::mem::take(&mut first) {
            out.write(b",").await?;
        }
        out.write_json(&record(row?)).await?;
    }
    Ok(())
}
