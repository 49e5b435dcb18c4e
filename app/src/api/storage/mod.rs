//! `/api/v1/storage`: a byte store per tenant for the SDK's `Storage`
//! protocol (`SnapshotSessionManager`, `Agent(storage=…)`). Values stream
//! in and out in chunks; keys follow the SDK's normalisation ([`params`]).

mod params;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use futures::{StreamExt, stream};
use poem::{Body, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi, Union,
    param::{Header, Path, Query},
    payload::Binary,
};
use serde::Serialize;

use super::{
    ApiTags,
    errors::{ApiResult, Missing, Plain, StorageWrite},
    fields::Nullable,
    payload::{FIELDS, JsonBody, JsonSize},
    versioned,
};
use crate::{
    api::AppState,
    auth::Tenant,
    error::Error,
    store::blobs::{self, BlobKey, Head, Opened, Precondition, Search, WriteLimits},
};

pub(crate) use self::params::normalize_key;
use self::params::{Key, Prefix, SomePrefix, StartAfter, Value};

#[derive(ApiResponse)]
enum Written {
    /// Stored; `ETag` names the new version.
    #[oai(status = 204)]
    Written(#[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
enum Read {
    /// The value's bytes.
    #[oai(status = 200)]
    Ok(Binary<Body>, #[oai(header = "ETag")] String, #[oai(header = "Content-Length")] i64),
}

#[derive(ApiResponse)]
enum Headed {
    /// The key exists; its version and size.
    #[oai(status = 200)]
    Ok(#[oai(header = "ETag")] String, #[oai(header = "Content-Length")] i64),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The key no longer exists (whether or not it did).
    #[oai(status = 204)]
    Deleted,
}

/// One page of keys.
#[derive(Debug, Object, Serialize)]
pub struct KeyPage {
    /// Full keys, ascending in byte order.
    pub keys: Vec<String>,
    /// Pass as `start_after` for the next page; `null` when done.
    pub next_start_after: Nullable<String>,
}

/// One search hit.
#[derive(Debug, Object, Serialize)]
pub struct SearchHit {
    pub key: String,
    /// Relevance, higher is better (comparable within one answer only).
    pub score: f64,
    /// With `with_values=true`: the value's bytes, base64, while the
    /// answer's budget lasts.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Ranked search results, best first.
#[derive(Debug, Object, Serialize)]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
    /// With `with_values=true`: whether some hits came without `data`
    /// (their values together passed `storage.search_values_bytes`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_truncated: Option<bool>,
}

/// A listing, or with `q` a ranked search.
#[derive(Debug, Union, Serialize)]
#[serde(untagged)]
pub enum Listing {
    Keys(KeyPage),
    Search(SearchResults),
}

impl JsonSize for Listing {
    fn json_size(&self) -> usize {
        match self {
            Self::Keys(page) => {
                FIELDS
                    + page.keys.iter().map(|k| k.len() + 8).sum::<usize>()
                    + page.next_start_after.0.as_ref().map_or(0, String::len)
            }
            Self::Search(found) => {
                let hit = |h: &SearchHit| h.key.len() + h.data.as_ref().map_or(0, String::len) + 64;
                found.results.iter().map(hit).sum::<usize>() + FIELDS
            }
        }
    }
}

/// How many keys a prefix delete removed.
#[derive(Debug, Object, Serialize)]
pub struct DeletedCount {
    pub deleted: u64,
}

impl JsonSize for DeletedCount {
    fn json_size(&self) -> usize {
        FIELDS
    }
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// What `If-Match` / `If-None-Match` ask of a write (`If-Match` wins
/// when both are sent).
fn precondition(if_match: Option<&str>, if_none_match: Option<&str>) -> Precondition {
    if let Some(value) = if_match {
        return match versioned::if_match(Some(value)) {
            None => Precondition::Exists,
            Some(versions) => Precondition::OneOf(versions),
        };
    }
    match if_none_match.map(|v| versioned::if_match(Some(v))) {
        None => Precondition::None,
        Some(None) => Precondition::Absent,
        Some(Some(versions)) => Precondition::NoneOf(versions),
    }
}

fn default_limit() -> u64 {
    1000
}

/// Blob operations.
pub struct StorageApi;

#[OpenApi(tag = "ApiTags::Storage")]
impl StorageApi {
    /// Write a value
    ///
    /// Overwrites. With `If-Match`, only while the key is at that version
    /// (`*`: exists); with `If-None-Match: *`, only if the key is new.
    #[oai(path = "/api/v1/storage/:key", method = "put", operation_id = "write_blob")]
    async fn write(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        key: Path<Key>,
        /// An `ETag` of this key (or a list of them), or `*`: 412 unless it
        /// still holds. An empty list names no tag and so matches nothing
        /// (RFC 9110): 412.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        /// `*`: 412 if the key exists.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        value: Value,
    ) -> ApiResult<Written, StorageWrite> {
        let blob = BlobKey { tenant: tenant.as_str(), key: &key.0.0 };
        let limits = WriteLimits {
            max_bytes: state.storage.max_value_bytes,
            index_bytes: state.storage.search_index_bytes,
            timing: state.blob_timing,
        };
        let precondition = precondition(if_match.0.as_deref(), if_none_match.0.as_deref());
        let body =
            crate::drain::within_stall(value.0, state.body_limits.stall, state.body_limits.draining.clone());
        let mut body = std::pin::pin!(body);
        // Refuse early what would be refused at the end, before the upload.
        if precondition != Precondition::None {
            let current = blobs::head(state.db.conn(), blob).await?.map(|h| h.version);
            if !precondition.holds(current) {
                crate::drain::discard(body, crate::drain::DRAIN_LIMIT).await;
                return Err(blobs::stale().into());
            }
        }
        let written = blobs::write(state.db.conn(), blob, &precondition, limits, body.as_mut()).await;
        if let Err(Error::PayloadTooLarge(_)) = &written {
            // What the client is still sending is read (within bounds), so
            // it gets the 413 rather than a reset.
            crate::drain::discard(body, crate::drain::DRAIN_LIMIT).await;
        }
        Ok(Written::Written(etag(written?.version)))
    }

    /// Read a value
    #[oai(path = "/api/v1/storage/:key", method = "get", operation_id = "read_blob")]
    async fn read(&self, state: Data<&AppState>, tenant: Tenant, key: Path<Key>) -> ApiResult<Read, Missing> {
        let blob = BlobKey { tenant: tenant.as_str(), key: &key.0.0 };
        let Opened { head, first } = found(blobs::open(state.db.conn(), blob).await?, &key.0.0)?;
        let deadline = tokio::time::Instant::now() + state.blob_timing.transfer;
        let rest = rest_of(state.db.conn().clone(), tenant.clone(), key.0.0, head, deadline);
        let chunks = stream::once(std::future::ready(Ok(first))).chain(rest);
        let body = Body::from_bytes_stream(crate::telemetry::in_current_span(chunks));
        Ok(Read::Ok(Binary(body), etag(head.version), head.size))
    }

    /// Check a value
    ///
    /// Its `ETag` and `Content-Length`, without the bytes.
    #[oai(path = "/api/v1/storage/:key", method = "head", operation_id = "head_blob")]
    async fn head(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        key: Path<Key>,
    ) -> ApiResult<Headed, Missing> {
        let blob = BlobKey { tenant: tenant.as_str(), key: &key.0.0 };
        let head = found(blobs::head(state.db.conn(), blob).await?, &key.0.0)?;
        Ok(Headed::Ok(etag(head.version), head.size))
    }

    /// Delete a value
    ///
    /// `204` whether or not the key existed.
    #[oai(path = "/api/v1/storage/:key", method = "delete", operation_id = "delete_blob")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        key: Path<Key>,
    ) -> ApiResult<Deleted, Plain> {
        let blob = BlobKey { tenant: tenant.as_str(), key: &key.0.0 };
        blobs::delete(state.db.conn(), blob, state.blob_timing).await?;
        Ok(Deleted::Deleted)
    }

    /// List or search keys
    ///
    /// Without `q`: keys starting with `prefix`, ascending in byte order,
    /// `limit` at a time; continue with `start_after=next_start_after`.
    /// With `q`: keys whose text value matches any word of `q`, best first
    /// (scores from each value's own words: PostgreSQL `ts_rank`, or a
    /// saturated word count on SQLite); `start_after` is not used. With
    /// `with_values=true` each hit carries its value as base64 `data`, the
    /// best first, up to `storage.search_values_bytes` per answer; past
    /// it hits come without, and `values_truncated` is `true`.
    #[oai(path = "/api/v1/storage", method = "get", operation_id = "list_blobs")]
    #[expect(clippy::too_many_arguments, reason = "poem-openapi takes each part of a request as an argument")]
    async fn list(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// Only keys starting with this (normalised like a key, a trailing `/` kept).
        prefix: Query<Option<Prefix>>,
        /// Continue after this key.
        start_after: Query<Option<StartAfter>>,
        /// Keys or results per answer, 1 to 10000.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "10000")))]
        limit: Query<u64>,
        /// Search words: ranks keys by their text values instead of listing.
        q: Query<Option<String>>,
        /// With `q`: bring each hit's value along as base64 `data` (a
        /// listing, without `q`, ignores it).
        #[oai(default)]
        with_values: Query<bool>,
    ) -> ApiResult<JsonBody<Listing>, Plain> {
        let prefix = prefix.0.map(|p| p.0).unwrap_or_default();
        let db = state.db.conn();
        if let Some(q) = q.0 {
            let values = with_values.0.then_some(state.storage.search_values_bytes);
            // Values are gathered, then encoded, in memory: about three times
            // the budget at once, taken from the room large bodies share.
            let _room = match values {
                Some(budget) if budget > 0 => Some(state.body_limits.turn(budget.saturating_mul(3)).await?),
                _ => None,
            };
            let search =
                Search { tenant: tenant.as_str(), query: &q, prefix: &prefix, limit: limit.0, values };
            let found = blobs::search(db, search).await?;
            let results = found
                .hits
                .into_iter()
                .map(|h| SearchHit { key: h.key, score: h.score, data: h.data.map(|d| BASE64.encode(d)) })
                .collect();
            let values_truncated = with_values.0.then_some(found.values_truncated);
            return Ok(JsonBody(Listing::Search(SearchResults { results, values_truncated })));
        }
        let start_after = start_after.0.map(|s| s.0);
        let (keys, next) = blobs::list(db, tenant.as_str(), &prefix, start_after.as_deref(), limit.0).await?;
        Ok(JsonBody(Listing::Keys(KeyPage { keys, next_start_after: Nullable(next) })))
    }

    /// Delete every key with a prefix
    ///
    /// In batches, each its own short transaction; `prefix` must not be empty.
    #[oai(path = "/api/v1/storage", method = "delete", operation_id = "delete_blobs")]
    async fn delete_prefix(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// Keys starting with this are deleted (normalised like a key, a trailing `/` kept).
        prefix: Query<SomePrefix>,
    ) -> ApiResult<JsonBody<DeletedCount>, Plain> {
        let prefix = prefix.0.0;
        let deleted =
            blobs::delete_prefix(state.db.conn(), tenant.as_str(), &prefix, state.blob_timing).await?;
        Ok(JsonBody(DeletedCount { deleted }))
    }
}

/// How long a download waits for a busy database to give it its next chunk.
const CHUNK_PATIENCE: Duration = Duration::from_secs(10);

fn found<T>(found: Option<T>, key: &str) -> Result<T, Error> {
    found.ok_or_else(|| Error::NotFound(format!("key `{key}` not found")))
}

/// The chunks of `head` after the first, read one query at a time as the
/// client takes them (no connection is held in between), none after
/// `deadline`: a replaced value's chunks are kept only so long. The answer's
/// head is out by then, so a database that is busy or briefly away (no
/// connection free, a statement timed out) is waited for, up to
/// [`CHUNK_PATIENCE`] a chunk (and the deadline), rather than cutting the
/// value short at once.
fn rest_of(
    db: crate::db::Conn,
    tenant: Tenant,
    key: String,
    head: Head,
    deadline: tokio::time::Instant,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    stream::iter(1..head.chunks()).then(move |seq| {
        let (db, key, tenant) = (db.clone(), key.clone(), tenant.clone());
        async move {
            if tokio::time::Instant::now() >= deadline {
                return Err(std::io::Error::other(
                    "the value took longer than storage.transfer_timeout_ms to send",
                ));
            }
            let mut pause = Duration::from_millis(20);
            let give_up = Ord::min(deadline, tokio::time::Instant::now() + CHUNK_PATIENCE);
            loop {
                let blob = BlobKey { tenant: tenant.as_str(), key: &key };
                match blobs::chunk(&db, blob, head.version, seq).await {
                    Ok(Some(bytes)) => return Ok(bytes),
                    Ok(None) => return Err(std::io::Error::other("a chunk of the value is missing")),
                    Err(Error::PoolTimeout | Error::Unavailable(_))
                        if tokio::time::Instant::now() + pause < give_up =>
                    {
                        tokio::time::sleep(pause).await;
                        pause = Ord::min(pause * 2, Duration::from_secs(1));
                    }
                    Err(err) => return Err(std::io::Error::other(err.to_string())),
                }
            }
        }
    })
}
