//! Listing bodies written as their rows arrive:
//! `{"<rows>": [row, …], <tail>}`, where the tail (`total`, `page`, …) comes
//! after the rows because it may depend on how many were sent.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use serde::Serialize;

use super::payload::{JsonSize, JsonStream};
use crate::error::Error;

/// The fields after the rows of a page-style listing.
#[derive(Debug, Serialize)]
pub struct PageTail {
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
}

/// A listing body named `field`, its rows turned into `T` by `to_dto`,
/// closed by `tail(rows sent)`; `Doc` is the shape the document shows.
pub fn write<Doc, M, T, Tail>(
    field: &'static str,
    rows: impl Stream<Item = Result<M, Error>> + Send + 'static,
    to_dto: fn(M) -> T,
    tail: impl FnOnce(u64) -> Tail + Send + 'static,
) -> JsonStream<Doc>
where
    M: Send + 'static,
    T: Serialize + JsonSize + 'static,
    Tail: Serialize,
{
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let head = stream::once(async move { Ok(Bytes::from(format!("{{\"{field}\":["))) });
    // Rows already read (a chunk is at most a few MiB) go out together.
    let rows = rows.ready_chunks(256).map(move |ready| {
        let rows = ready.into_iter().map(|row| row.map(to_dto)).collect::<Result<Vec<T>, Error>>()?;
        let mut text = Vec::with_capacity(rows.iter().map(|row| row.json_size() + 1).sum());
        for row in &rows {
            if counter.fetch_add(1, Ordering::Relaxed) > 0 {
                text.push(b',');
            }
            serde_json::to_writer(&mut text, row).map_err(serialize_error)?;
        }
        Ok(Bytes::from(text))
    });
    let end = stream::once(async move {
        let tail = serde_json::to_vec(&tail(sent.load(Ordering::Relaxed))).map_err(serialize_error)?;
        // `{"total":…}` becomes `],"total":…}`.
        let mut text = b"],".to_vec();
        text.extend_from_slice(tail.get(1..).unwrap_or_default());
        Ok(Bytes::from(text))
    });
    JsonStream::new(crate::telemetry::in_current_span(head.chain(rows).chain(end)))
}

fn serialize_error(e: serde_json::Error) -> Error {
    tracing::error!(error = %e, "serializing a listing");
    Error::Internal
}
