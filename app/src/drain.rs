//! Reading and dropping the rest of a request body that will not be used,
//! so that a client still sending it receives the answer (401, 412, 413, …)
//! instead of a connection reset. Bounded in bytes and in time.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

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
