//! Importing a session's document as it streams in. Three parts run at
//! once, joined by small bounded channels: the body is read (within its
//! size and stall limits), the document is parsed on a blocking thread
//! ([`reader`]), and its parts are staged in the database a batch at a
//! time ([`Staging`]). Once the document has been read whole and found
//! sound, one short transaction switches the staged rows in.

use std::time::Duration;

use bytes::Bytes;
use entity::session;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::{
    document::SessionRecord,
    reader::{self, PENDING, Part, Pieces, Unread},
};
use crate::{
    db::Conn,
    drain::{DRAIN_LIMIT, discard},
    error::Error,
    store::{
        sessions::{self, NewSession},
        transfer::Staging,
    },
};

/// What an import may be.
#[derive(Clone, Copy, Debug)]
pub struct ImportLimits {
    /// The most bytes of the document (413 past it).
    pub max_bytes: u64,
    /// The most bytes one member (a message, a state) may take.
    pub member_bytes: u64,
    /// The longest the whole import may take (408 past it).
    pub lifetime: Duration,
}

/// Imports the document `body` as a session of `tenant`; the session.
pub async fn import<S>(
    db: &Conn,
    tenant: &str,
    body: S,
    limits: ImportLimits,
) -> Result<session::Model, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send,
{
    // Fused: what is left of it may be read again once the pump has ended.
    let mut body = std::pin::pin!(body.fuse());
    let staging = match Staging::open(db, limits.lifetime).await {
        Ok(staging) => staging,
        Err(e) => {
            discard(body, DRAIN_LIMIT).await;
            return Err(e);
        }
    };
    let (pieces, pieces_in) = mpsc::channel(4);
    let (parts_out, mut parts) = mpsc::channel(2);
    let member_bytes = limits.member_bytes;
    let reader =
        tokio::task::spawn_blocking(move || reader::read(Pieces::new(pieces_in), parts_out, member_bytes));
    let pump = async {
        let mut received = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece?;
            received += piece.len() as u64;
            if received > limits.max_bytes {
                return Err(Error::PayloadTooLarge(usize::try_from(limits.max_bytes).unwrap_or(usize::MAX)));
            }
            if pieces.send(piece).await.is_err() {
                // The reader has stopped: the document is refused.
                break;
            }
        }
        drop(pieces);
        Ok(())
    };
    let staged_by = &staging;
    // Owns the receiving end: once the stage is over (or given up), the
    // reader's next part finds no one to take it, and the reader stops.
    let stage = async move {
        let staging = staged_by;
        let mut record = None;
        while let Some(part) = parts.recv().await {
            match part {
                Part::Session(session) => {
                    // Refused early what the switch would refuse at the end.
                    if sessions::get(db, tenant, session.session_id.as_str()).await.is_ok() {
                        return Err(taken(&session));
                    }
                    record = Some(session);
                }
                Part::Pending => staging.placeholder(PENDING).await?,
                Part::Agent { agent, adopts } => staging.agent(agent, adopts.then_some(PENDING)).await?,
                Part::Messages(messages) => staging.messages(messages).await?,
                Part::MultiAgent(state) => staging.multi_agent(state).await?,
            }
        }
        Ok(record)
    };
    let staged = match tokio::time::timeout(limits.lifetime, async { tokio::try_join!(pump, stage) }).await {
        Ok(staged) => staged,
        Err(_) => Err(Error::RequestTimeout(format!(
            "the import did not finish within {} ms (storage.transfer_timeout_ms); nothing was imported",
            limits.lifetime.as_millis()
        ))),
    };
    let read = reader.await.map_err(|_| Error::Internal);
    let record = match (staged, read) {
        (Ok(((), Some(record))), Ok(Ok(()))) => record,
        (Err(e), _) | (Ok(_), Err(e)) => return refuse(staging, body, e).await,
        (Ok(_), Ok(Err(Unread::Malformed(problem)))) => {
            return refuse(staging, body, Error::Validation(problem)).await;
        }
        (Ok(_), Ok(Err(Unread::Stopped) | Ok(()))) => {
            return refuse(staging, body, Error::Validation("the document ended early".into())).await;
        }
    };
    let new = NewSession {
        session_id: record.session_id.into_string(),
        session_type: record.session_type.into_string(),
        metadata: record.metadata.0,
        created_at: Some(record.created_at.0),
        updated_at: Some(record.updated_at.0),
        ttl_seconds: record.ttl_seconds.0,
    };
    staging.switch(tenant, new).await
}

fn taken(session: &SessionRecord) -> Error {
    Error::Conflict(format!("session `{}` already exists", session.session_id.as_str()))
}

/// Gives the staging up, reads what the client is still sending (so it
/// receives the answer rather than a reset), and answers `e`.
async fn refuse<S>(staging: Staging, body: S, e: Error) -> Result<session::Model, Error>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    staging.discard().await;
    discard(body, DRAIN_LIMIT).await;
    Err(e)
}
