//! Importing a session's document as it streams in. Three parts run at
//! once, joined by small bounded channels: the body is read (within its
//! size and stall limits), the document is parsed on a blocking thread
//! ([`reader`]), and its parts are staged in the database a batch at a
//! time ([`Staging`], and its blobs a chunk at a time, [`Staged`]). Once
//! the document has been read whole and found sound, one short
//! transaction switches what was staged in.

use std::time::Duration;

use bytes::Bytes;
use entity::session;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::{
    document::SessionRecord,
    reader::{self, Bounds, PENDING, Part, Pieces, Unread},
};
use crate::{
    db::Conn,
    drain::{DRAIN_LIMIT, discard},
    error::Error,
    store::{
        blobs::{Staged, Timing},
        sessions::NewSession,
        snapshots,
        transfer::{Staging, refuse_taken},
    },
};

/// What an import may be.
#[derive(Clone, Copy, Debug)]
pub struct ImportLimits {
    /// The most bytes of the document (413 past it).
    pub max_bytes: u64,
    /// The most bytes one member (a message, a state) may take.
    pub member_bytes: u64,
    /// The most bytes of one blob's value, and how much of it is indexed.
    pub value_bytes: u64,
    pub index_bytes: usize,
    /// How long values take and are kept, as for the storage routes.
    pub timing: Timing,
    /// The longest the whole import may take (408 past it).
    pub lifetime: Duration,
}

/// What an import made.
pub enum Made {
    /// A session with a row.
    Session(session::Model),
    /// A session kept only as snapshot blobs: its id and how many.
    Blobs(String, u64),
}

/// Imports the document `body` as a session of `tenant`.
pub async fn import<S>(db: &Conn, tenant: &str, body: S, limits: ImportLimits) -> Result<Made, Error>
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
    let bounds = Bounds { member: limits.member_bytes, value: limits.value_bytes };
    let reader = tokio::task::spawn_blocking(move || reader::read(Pieces::new(pieces_in), parts_out, bounds));
    let mut blobs = Staged::new(db, tenant, limits.index_bytes, limits.timing);
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
    let staged_by = (&staging, &mut blobs);
    // Owns the receiving end: once the stage is over (or given up), the
    // reader's next part finds no one to take it, and the reader stops.
    let stage = async move {
        let (staging, blobs) = staged_by;
        let mut seen = Seen::default();
        while let Some(part) = parts.recv().await {
            match part {
                Part::SessionId(id) => {
                    // Refused early what the switch would refuse at the end.
                    refuse_taken(db, tenant, &id).await?;
                    blobs.under(snapshots::prefix(&id));
                    seen.id = Some(id);
                }
                Part::Session(session) => seen.record = Some(session),
                Part::Pending => staging.placeholder(PENDING).await?,
                Part::Agent { agent, adopts } => {
                    seen.rows = true;
                    staging.agent(agent, adopts.then_some(PENDING)).await?;
                }
                Part::Messages(messages) => staging.messages(messages).await?,
                Part::MultiAgent(state) => {
                    seen.rows = true;
                    staging.multi_agent(state).await?;
                }
                Part::Blob(key) => blobs.begin(&key).await?,
                Part::BlobData(piece) => blobs.feed(&piece).await?,
                Part::BlobEnd => blobs.end().await?,
            }
        }
        Ok(seen)
    };
    let staged = match tokio::time::timeout(limits.lifetime, async { tokio::try_join!(pump, stage) }).await {
        Ok(staged) => staged,
        Err(_) => Err(Error::RequestTimeout(format!(
            "the import did not finish within {} ms (storage.transfer_timeout_ms); nothing was imported",
            limits.lifetime.as_millis()
        ))),
    };
    let read = reader.await.map_err(|_| Error::Internal);
    let seen = match (staged, read) {
        (Ok(((), seen)), Ok(Ok(()))) => seen,
        (Err(e), _) | (Ok(_), Err(e)) => return refuse(staging, blobs, body, e).await,
        (Ok(_), Ok(Err(Unread::Malformed(problem)))) => {
            return refuse(staging, blobs, body, Error::Validation(problem)).await;
        }
        (Ok(_), Ok(Err(Unread::Stopped))) => {
            let e = Error::Validation("the document ended early".into());
            return refuse(staging, blobs, body, e).await;
        }
    };
    let (Some(id), record) = (seen.id, seen.record) else {
        // The reader reads no whole document without an id.
        return refuse(staging, blobs, body, Error::Internal).await;
    };
    let nothing = match &record {
        None if seen.rows => Some(
            "the document has no `session` (it is `null` or absent), so it can hold no agents or multi-agent states",
        ),
        None if blobs.count() == 0 => Some("the document has no `session` and no `blobs`: nothing to import"),
        _ => None,
    };
    if let Some(problem) = nothing {
        return refuse(staging, blobs, body, Error::Validation(problem.into())).await;
    }
    let new = record.map(|record| NewSession {
        session_id: record.session_id.into_string(),
        session_type: record.session_type.into_string(),
        metadata: record.metadata.0,
        created_at: Some(record.created_at.0),
        updated_at: Some(record.updated_at.0),
        ttl_seconds: record.ttl_seconds.0,
    });
    let switched = staging.switch(tenant, &id, new, &blobs).await;
    let count = blobs.count();
    match &switched {
        Ok(_) => blobs.settle(),
        Err(_) => blobs.discard().await,
    }
    Ok(match switched? {
        Some(session) => Made::Session(session),
        None => Made::Blobs(id, count),
    })
}

/// What the stage has taken of the document.
#[derive(Default)]
struct Seen {
    id: Option<String>,
    record: Option<SessionRecord>,
    /// Agents or multi-agent states were staged.
    rows: bool,
}

/// Gives the staging up, reads what the client is still sending (so it
/// receives the answer rather than a reset), and answers `e`.
async fn refuse<S>(staging: Staging, blobs: Staged, body: S, e: Error) -> Result<Made, Error>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    staging.discard().await;
    blobs.discard().await;
    discard(body, DRAIN_LIMIT).await;
    Err(e)
}
