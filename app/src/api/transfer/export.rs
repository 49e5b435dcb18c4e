//! Writing a session's document from one snapshot into a [`Spool`]: the
//! snapshot is read as fast as the database gives it and closed before
//! the first byte is sent, so a slow download holds no connection.

use futures::{Stream, StreamExt};

use super::{
    document::{AgentRecord, FORMAT, MultiAgentRecord, SessionRecord},
    spool::Spool,
};
use crate::{api::messages::Message, db::Conn, error::Error, store::transfer::Snapshot};

/// The session's document.
pub async fn export(db: &Conn, tenant: &str, session_id: &str) -> Result<Spool, Error> {
    let snapshot = Snapshot::open(db, tenant, session_id).await?;
    let mut out = Spool::default();
    out.write(format!(r#"{{"format":"{FORMAT}","session":"#).as_bytes()).await?;
    out.write_json(&SessionRecord::from(snapshot.session())).await?;
    out.write(br#","agents":["#).await?;
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
    list(&mut out, snapshot.multi_agents().await?, MultiAgentRecord::from).await?;
    out.write(br#"],"complete":true}"#).await?;
    drop(agents); // it shares the snapshot, which closes once nothing does
    snapshot.close().await?;
    Ok(out)
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
