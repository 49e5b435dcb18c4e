//! Request bodies and shutdown: whether the server is draining
//! ([`Draining`]), reading bodies within their time limits
//! ([`within_stall`]), and dropping the rest of one that will not be used,
//! so that a client still sending it receives the answer (401, 412, 413, …)
//! instead of a connection reset ([`discard`]), bounded in bytes and in time;
//! and what a body may be ([`BodyLimits`]), with the room large ones share.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::error::Error;

/// How much of an unused body is read before the connection is given up.
pub const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

/// How long reading an unused body may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads and drops up to `max_bytes` of `body`, for at most 10 s.
pub async fn discard<S, E>(body: S, max_bytes: u64)
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let mut body = std::pin::pin!(body);
    let read_all = async {
        let mut read = 0u64;
        while read <= max_bytes {
            match body.next().await {
                Some(Ok(piece)) => read += piece.len() as u64,
                _ => break,
            }
        }
    };
    drop(tokio::time::timeout(DRAIN_TIME, read_all).await);
}

/// The pieces of `body`, each arriving within `stall` of the last (within
/// a second once shutdown has begun): a body that stops arriving ends
/// with 408 `RequestTimeoutError`; one that cannot be read, with 422.
pub fn within_stall(
    body: poem::Body,
    stall: Duration,
    draining: Draining,
) -> impl Stream<Item = Result<Bytes, Error>> + Send {
    let pieces = body.into_bytes_stream();
    futures::stream::unfold(Some((pieces, draining)), move |state| async move {
        let (mut pieces, mut draining) = state?;
        loop {
            let limit = draining.stall_limit(stall);
            let next = tokio::select! {
                next = tokio::time::timeout(limit, pieces.next()) => next,
                // A shutdown shortens the limit: wait again with the new one.
                () = draining.started(), if !draining.is_draining() => continue,
            };
            return match next {
                Err(_) => {
                    let stalled = format!("the request body stopped arriving for {} ms", limit.as_millis());
                    Some((Err(Error::RequestTimeout(stalled)), None))
                }
                Ok(None) => None,
                Ok(Some(Err(e))) => {
                    Some((Err(Error::Validation(format!("cannot read the request body: {e}"))), None))
                }
                Ok(Some(Ok(piece))) => Some((Ok(piece), Some((pieces, draining)))),
            };
        }
    })
}

/// Whether the server is shutting down; cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Draining(watch::Receiver<bool>);

/// While shutting down, the longest a client may stall (mid-body, or not
/// reading its response): a stalled client must not hold the shutdown.
const DRAINING_STALL: Duration = Duration::from_secs(1);

impl Draining {
    /// Follows `shutdown`, which turns true when shutdown begins.
    pub fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self(shutdown)
    }

    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// The longest a client may stall: `normal`, or once shutdown has
    /// begun at most a second.
    pub fn stall_limit(&self, normal: Duration) -> Duration {
        if self.is_draining() { normal.min(DRAINING_STALL) } else { normal }
    }

    /// Resolves once shutdown has begun.
    pub async fn started(&mut self) {
        drop(self.0.wait_for(|draining| *draining).await);
    }
}

/// What a request body may be.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    /// Larger bodies are answered 413.
    pub max_bytes: usize,
    /// The longest pause between two pieces of a body (408 after it).
    pub stall: Duration,
    /// Room for large requests, in KiB of body: a request with a body over
    /// 1 MiB is read and handled only while it holds room for its body, so
    /// however many arrive at once, the memory they take is bounded (each
    /// needs several times its size on its way into the database).
    pub large: Arc<Semaphore>,
    /// All the room there is, in KiB.
    pub room_kib: u32,
    /// How long a large request may wait for its turn (then 503).
    pub turn_wait: Duration,
    /// Whether the server is shutting down.
    pub draining: Draining,
}

impl BodyLimits {
    /// Room for a body of `bytes` (capped at all the room there is).
    pub async fn turn(&self, bytes: u64) -> Result<OwnedSemaphorePermit, Error> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, self.room_kib);
        match tokio::time::timeout(self.turn_wait, self.large.clone().acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                Err(Error::Unavailable("the server is busy with other large requests; retry shortly".into()))
            }
        }
    }
}
