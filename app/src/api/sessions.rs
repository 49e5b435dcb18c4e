//! `/api/v1/sessions`: create, read, update, delete and list sessions.

use entity::session;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    types::Example,
};
use serde::{Deserialize, Serialize};

use super::{
    ApiTags, Paging,
    errors::{ApiResult, Duplicate, Missing, MissingOrLeased, MissingOrStale, Plain},
    fields::{Id, IdPrefix, Nullable, ObjectJson, Optional, SessionType, Timestamp, TtlSeconds, json_text},
    listing,
    payload::{FIELDS, JsonBody, JsonSize, JsonStream},
    versioned::{self, Created, Current},
};
use crate::{
    api::AppState,
    auth::Tenant,
    error::Error,
    store,
    store::{
        leases::Fence,
        sessions::{NewSession, SessionChanges, SessionFilter},
    },
};

/// A conversation session.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub struct Session {
    /// The client's id for the session.
    pub session_id: String,
    /// Open string, `AGENT` by default.
    pub session_type: String,
    /// When the session was created (RFC 3339, UTC).
    pub created_at: Timestamp,
    /// When the session last changed (RFC 3339, UTC).
    pub updated_at: Timestamp,
    /// Free-form JSON object.
    pub metadata: ObjectJson,
    /// Seconds the session lives after its last update (`updated_at`); 0: forever.
    pub ttl_seconds: u64,
    /// When the session lapses (`updated_at + ttl_seconds`); `null`: never.
    pub expires_at: Nullable<Timestamp>,
}

impl Example for Session {
    fn example() -> Self {
        let at = Timestamp::example();
        Self {
            session_id: "chat-42".into(),
            session_type: "AGENT".into(),
            created_at: at,
            updated_at: at,
            metadata: example_metadata(),
            ttl_seconds: 0,
            expires_at: Nullable(None),
        }
    }
}

fn example_metadata() -> ObjectJson {
    ObjectJson(json_text(r#"{"user": "user@example.com"}"#))
}

impl From<session::Model> for Session {
    fn from(m: session::Model) -> Self {
        Self {
            session_id: m.session_id,
            session_type: m.session_type,
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
            metadata: ObjectJson(m.metadata),
            ttl_seconds: m.ttl_seconds.and_then(|ttl| u64::try_from(ttl).ok()).unwrap_or(0),
            expires_at: Nullable(
                m.expires_at.and_then(chrono::DateTime::from_timestamp_micros).map(Timestamp::from),
            ),
        }
    }
}

/// Body of `POST /api/v1/sessions`.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct CreateSessionRequest {
    pub session_id: Id,
    /// Defaults to `AGENT`.
    #[serde(default)]
    pub session_type: Optional<SessionType>,
    /// Free-form JSON object; defaults to `{}`.
    #[serde(default)]
    pub metadata: Optional<ObjectJson>,
    /// Kept when given (imports, the SDK).
    #[serde(default)]
    pub created_at: Optional<Timestamp>,
    /// Kept when given.
    #[serde(default)]
    pub updated_at: Optional<Timestamp>,
    /// Seconds the session lives after its last update; 0: forever;
    /// absent: the server's default (`retention.default_ttl_seconds`).
    #[serde(default)]
    pub ttl_seconds: Optional<TtlSeconds>,
}

impl Example for CreateSessionRequest {
    fn example() -> Self {
        Self {
            session_id: "chat-42".into(),
            session_type: Optional::Value("AGENT".into()),
            metadata: Optional::Value(example_metadata()),
            created_at: Optional::Absent,
            updated_at: Optional::Absent,
            ttl_seconds: Optional::Absent,
        }
    }
}

/// Body of `PUT /api/v1/sessions/{session_id}`; fields not sent are kept.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct UpdateSessionRequest {
    #[serde(default)]
    pub session_type: Optional<SessionType>,
    /// Replaces the stored metadata.
    #[serde(default)]
    pub metadata: Optional<ObjectJson>,
    /// A new time to live (0: forever). Sent or not, the expiry counts
    /// from this update.
    #[serde(default)]
    pub ttl_seconds: Optional<TtlSeconds>,
}

impl Example for UpdateSessionRequest {
    fn example() -> Self {
        Self {
            session_type: Optional::Absent,
            metadata: Optional::Value(example_metadata()),
            ttl_seconds: Optional::Absent,
        }
    }
}

/// One page of sessions, newest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SessionList {
    pub sessions: Vec<Session>,
    /// All sessions of the tenant.
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
}

impl Example for SessionList {
    fn example() -> Self {
        Self { sessions: vec![Session::example()], total: 1, page: 1, page_size: 10 }
    }
}

#[derive(ApiResponse)]
enum Deleted {
    /// The session and everything under it were deleted.
    #[oai(status = 204)]
    Deleted,
}

/// Session operations.
pub struct SessionsApi;

#[OpenApi(tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// Create a session
    ///
    /// `409` when the id is taken: two replicas racing to create the same
    /// session get one `201` and one `409`, which clients treat as success.
    #[oai(path = "/api/v1/sessions", method = "post", operation_id = "create_session")]
    async fn create(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        body: JsonBody<CreateSessionRequest>,
    ) -> ApiResult<Created<Session>, Duplicate> {
        let body = body.0;
        let new = NewSession {
            session_id: body.session_id.into_string(),
            session_type: body
                .session_type
                .into_option()
                .map_or_else(|| "AGENT".into(), SessionType::into_string),
            metadata: body.metadata.into_option().unwrap_or_else(ObjectJson::empty).0,
            created_at: body.created_at.into_option().map(|t| t.0),
            updated_at: body.updated_at.into_option().map(|t| t.0),
            ttl_seconds: body.ttl_seconds.into_option().map_or(state.default_ttl_seconds, |ttl| ttl.0),
        };
        let model = store::sessions::create(state.db.conn(), tenant.as_str(), new).await?;
        Ok(Created::of(model))
    }

    /// Read a session
    #[oai(path = "/api/v1/sessions/:session_id", method = "get", operation_id = "get_session")]
    async fn get(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
    ) -> ApiResult<Current<Session>, Missing> {
        let model = store::sessions::get(state.db.conn(), tenant.as_str(), session_id.as_str()).await?;
        Ok(Current::of(model))
    }

    /// Update a session
    ///
    /// Fields not sent are kept; `updated_at` becomes the server time.
    /// With `If-Match`, only if the session is still at that version.
    #[oai(path = "/api/v1/sessions/:session_id", method = "put", operation_id = "update_session")]
    async fn update(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        /// An `ETag` this session answered with (or a list of them, or `*`):
        /// 412 unless it is still current. An empty list names no tag and so
        /// matches nothing (RFC 9110): 412.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<UpdateSessionRequest>,
    ) -> ApiResult<Current<Session>, MissingOrStale> {
        let changes = SessionChanges {
            session_type: body.0.session_type.into_option().map(SessionType::into_string),
            metadata: body.0.metadata.into_option().map(|m| m.0),
            ttl_seconds: body.0.ttl_seconds.into_option().map(|ttl| ttl.0),
        };
        let expected = versioned::if_match(if_match.0.as_deref());
        let model = store::sessions::update(
            state.db.conn(),
            tenant.as_str(),
            session_id.as_str(),
            expected.as_deref(),
            changes,
            Fence(lease_token.0),
        )
        .await?;
        Ok(Current::of(model))
    }

    /// Delete a session
    ///
    /// Its agents, messages and multi-agent states go with it, and so do its
    /// snapshots (the SDK's `SnapshotSessionManager` blobs under
    /// `session/{session_id}/`). A session kept only as such snapshots is
    /// deleted the same way; `404` when there is neither.
    #[oai(path = "/api/v1/sessions/:session_id", method = "delete", operation_id = "delete_session")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
    ) -> ApiResult<Deleted, MissingOrLeased> {
        let (db, tenant_id, id) = (state.db.conn(), tenant.as_str(), session_id.as_str());
        // The row first: its lease decides whether the session may go.
        let row = store::sessions::delete(db, tenant_id, id, Fence(lease_token.0)).await;
        let snapshots = match &row {
            Ok(()) | Err(Error::NotFound(_)) => {
                store::snapshots::delete(db, tenant_id, id, state.blob_timing).await?
            }
            Err(_) => 0,
        };
        match row {
            Err(Error::NotFound(_)) if snapshots > 0 => {}
            other => other?,
        }
        tracing::info!(
            audit = "delete",
            tenant = tenant.as_str(),
            session_id = session_id.as_str(),
            "session deleted"
        );
        Ok(Deleted::Deleted)
    }

    /// List sessions
    ///
    /// Newest `created_at` first. The filters given all hold for each session
    /// listed (and for `total`); `…_after` and `…_before` are strict. The page
    /// is written as its rows arrive.
    #[oai(path = "/api/v1/sessions", method = "get", operation_id = "list_sessions")]
    #[expect(clippy::too_many_arguments, reason = "poem-openapi takes each part of a request as an argument")]
    async fn list(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// Only sessions of this `session_type`.
        session_type: Query<Option<SessionType>>,
        /// Only sessions created after this instant (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only sessions created before this instant (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only sessions last written after this instant (RFC 3339).
        updated_after: Query<Option<Timestamp>>,
        /// Only sessions last written before this instant (RFC 3339).
        updated_before: Query<Option<Timestamp>>,
        /// Only sessions whose id starts with this.
        id_prefix: Query<Option<IdPrefix>>,
        /// Page number, from 1.
        #[oai(
            default = "super::default_page",
            validator(minimum(value = "1"), maximum(value = "2147483647"))
        )]
        page: Query<u64>,
        /// Sessions per page, 1 to 1000.
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<JsonStream<SessionList>, Plain> {
        let paging = Paging::new(page.0, page_size.0);
        let filter = SessionFilter {
            session_type: session_type.0.map(SessionType::into_string),
            created_after: created_after.0.map(|t| t.0),
            created_before: created_before.0.map(|t| t.0),
            updated_after: updated_after.0.map(|t| t.0),
            updated_before: updated_before.0.map(|t| t.0),
            id_prefix: id_prefix.0.map(IdPrefix::into_string),
        };
        let found = store::sessions::list(
            state.db.conn(),
            tenant.as_str(),
            &filter,
            paging.offset(),
            paging.page_size,
        )
        .await?;
        let total = found.total;
        Ok(listing::write("sessions", found.into_stream(), Session::from, move |_| paging.tail(total)))
    }
}

impl JsonSize for Session {
    fn json_size(&self) -> usize {
        FIELDS + self.session_id.len() + self.metadata.len()
    }
}
