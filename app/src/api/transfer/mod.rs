//! `GET /api/v1/sessions/{session_id}/export` and
//! `POST /api/v1/sessions/import`: a session, its snapshot blobs included,
//! as one JSON document ([`document`]), out and back in.

mod document;
mod export;
mod import;
mod reader;

use entity::session;
use poem::{Body, IntoResponse, Request, RequestBody, Response, http::header, web::Data};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi, Union,
    param::Path,
    payload::Payload,
    registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry},
    types::Type,
};

use serde::Serialize;

use self::{
    document::SessionDocument,
    import::{ImportLimits, Made},
};
use super::{
    ApiTags,
    errors::{ApiResult, Importing, Missing},
    fields::Id,
    payload::{FIELDS, JSON, JsonBody, JsonSize, is_json},
    sessions::Session,
    versioned::etag,
};
use crate::{api::AppState, auth::Tenant, drain::DRAIN_LIMIT, error::Error};

/// Where the export is served.
pub const EXPORT_PATH: &str = "/api/v1/sessions/:session_id/export";

/// Where the import is served. A session may be called `import`: this
/// path's other methods still reach it, though the document (where a
/// literal path wins over a template) and `Allow` name only `POST`.
pub const IMPORT_PATH: &str = "/api/v1/sessions/import";

/// A session document on its way out, as it is read from the spool.
pub struct DocumentStream(Body);

impl Payload for DocumentStream {
    const CONTENT_TYPE: &'static str = JSON;

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        SessionDocument::schema_ref()
    }

    fn register(registry: &mut Registry) {
        SessionDocument::register(registry);
    }
}

impl IntoResponse for DocumentStream {
    fn into_response(self) -> Response {
        Response::builder().content_type(JSON).body(self.0)
    }
}

/// A session an import or a fork made: one with a row, or one kept only
/// as snapshot blobs.
#[derive(Debug, Union, Serialize)]
#[oai(one_of)]
#[serde(untagged)]
pub enum SessionCopy {
    Session(Session),
    Blobs(BlobSession),
}

impl JsonSize for SessionCopy {
    fn json_size(&self) -> usize {
        match self {
            Self::Session(session) => session.json_size(),
            Self::Blobs(_) => FIELDS,
        }
    }
}

/// A session kept only as snapshot blobs (no row), as an import or a fork
/// made it.
#[derive(Debug, Object, Serialize)]
pub struct BlobSession {
    pub session_id: String,
    /// How many blobs it has under `session/<session_id>/`.
    pub blobs: u64,
}

#[derive(ApiResponse)]
pub enum CopyCreated {
    /// Made: the session, with its first version as `ETag`; for a session
    /// kept only as snapshot blobs, its id and blob count.
    #[oai(status = 201)]
    Created(JsonBody<SessionCopy>, #[oai(header = "ETag")] Option<String>),
}

impl CopyCreated {
    /// The answer for a session with a row.
    pub fn session(session: session::Model) -> Self {
        let etag = etag(session.version);
        Self::Created(JsonBody(SessionCopy::Session(session.into())), Some(etag))
    }

    /// The answer for a session kept only as snapshot blobs.
    pub fn blobs(session_id: String, blobs: u64) -> Self {
        Self::Created(JsonBody(SessionCopy::Blobs(BlobSession { session_id, blobs })), None)
    }
}

#[derive(ApiResponse)]
enum Exported {
    /// The session as one document, ending with `"complete": true`.
    #[oai(status = 200)]
    Ok(DocumentStream, #[oai(header = "Content-Length")] i64),
}

/// A session document on its way in, read as it arrives.
pub struct DocumentUpload {
    body: Body,
    /// The length the client announced.
    announced: Option<u64>,
}

impl<'a> ApiExtractor<'a> for DocumentUpload {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        SessionDocument::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some("A session document, as an export writes it."),
            content: vec![MetaMediaType { content_type: JSON, schema: SessionDocument::schema_ref() }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if request.header(header::CONTENT_TYPE).is_some_and(|content_type| !is_json(content_type)) {
            return Err(Error::unsupported_media_type().into());
        }
        let announced = request.header(header::CONTENT_LENGTH).and_then(|n| n.parse().ok());
        Ok(Self { body: body.take()?, announced })
    }
}

/// `shares` of the turns among the exports, imports and forks running at
/// once, each share a database connection its holder may take (503 when
/// they do not come within the request deadline).
pub(super) async fn turn(state: &AppState, shares: u32) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
    let wait = state.body_limits.turn_wait;
    match tokio::time::timeout(wait, state.transfers.clone().acquire_many_owned(shares)).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(busy()),
    }
}

fn busy() -> Error {
    Error::Unavailable("the server is busy with other exports, imports and forks; retry shortly".into())
}

/// Moving sessions out and in.
pub struct TransferApi;

#[OpenApi(tag = "ApiTags::Sessions")]
impl TransferApi {
    /// Export a session
    ///
    /// The session, its agents with their messages, its multi-agent
    /// states and its snapshot blobs (the keys under `session/<id>/`, as
    /// base64) as one JSON document (`format` `session-backend/1`), every
    /// stored document exactly as stored, read from one consistent
    /// snapshot. A session kept only as blobs (the SDK's
    /// `SnapshotSessionManager`) exports with `"session": null`; `404`
    /// when there is neither a row nor a blob. The document is written
    /// whole before it is sent, so a slow download holds nothing in the
    /// database; it ends with `"complete": true`, which a download cut
    /// short lacks.
    #[oai(path = "/api/v1/sessions/:session_id/export", method = "get", operation_id = "export_session")]
    async fn export(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
    ) -> ApiResult<Exported, Missing> {
        let _turn = turn(&state, 1).await?;
        let deadline = state.blob_timing.transfer;
        let member_bytes = state.body_limits.max_bytes;
        let export = export::export(state.db.conn(), tenant.as_str(), session_id.as_str(), member_bytes);
        let spool = tokio::time::timeout(deadline, export).await.map_err(|_| {
            Error::Unavailable(format!(
                "the export did not finish within {} ms (storage.transfer_timeout_ms)",
                deadline.as_millis()
            ))
        })??;
        let len = i64::try_from(spool.len()).unwrap_or(i64::MAX);
        Ok(Exported::Ok(DocumentStream(Body::from_async_read(spool.into_reader().await?)), len))
    }

    /// Import a session
    ///
    /// Makes the session of a document an export wrote (under this
    /// tenant, whatever tenant exported it). The body streams: it may be
    /// larger than `server.body_limit_bytes`, up to
    /// `server.import_limit_bytes`, though no one member of it may (a
    /// blob's value comes in base64 pieces, each a member; the value may
    /// be up to `storage.max_value_bytes`, and `blobs` come after
    /// `session_id` or `session`). Rows and blobs are staged as
    /// they arrive and switched in by one short transaction once the
    /// document is whole and sound; until then nothing is visible.
    /// Versions, expiry and leases start fresh (the TTL counts from now),
    /// as do the blobs' write times. `409` when the session exists (a row,
    /// or a blob under `session/<id>/`); `422` names the first member at
    /// fault (`agents[0].messages[3].message_id: …`, `blobs[1].data[0]: …`).
    #[oai(path = "/api/v1/sessions/import", method = "post", operation_id = "import_session")]
    async fn import(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        document: DocumentUpload,
    ) -> ApiResult<CopyCreated, Importing> {
        let limits = ImportLimits {
            max_bytes: state.import_limit_bytes,
            member_bytes: state.body_limits.max_bytes as u64,
            value_bytes: state.storage.max_value_bytes,
            index_bytes: state.storage.search_index_bytes,
            timing: state.blob_timing,
            lifetime: state.blob_timing.transfer,
        };
        // Far past the limit: refused unread (as `middleware::read_body` does).
        if document.announced.is_some_and(|n| n > limits.max_bytes.saturating_add(DRAIN_LIMIT)) {
            let limit = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
            return Err(Error::PayloadTooLarge(limit).into());
        }
        let body = crate::drain::within_stall(
            document.body,
            state.body_limits.stall,
            state.body_limits.draining.clone(),
        );
        let Ok(_turn) = turn(&state, 1).await else {
            crate::drain::discard(body, DRAIN_LIMIT).await;
            return Err(busy().into());
        };
        let made = import::import(state.db.conn(), tenant.as_str(), body, limits).await?;
        let (session_id, created) = match made {
            Made::Session(session) => (session.session_id.clone(), CopyCreated::session(session)),
            Made::Blobs(session_id, blobs) => (session_id.clone(), CopyCreated::blobs(session_id, blobs)),
        };
        tracing::info!(audit = "import", tenant = tenant.as_str(), session_id, "session imported");
        Ok(created)
    }
}
