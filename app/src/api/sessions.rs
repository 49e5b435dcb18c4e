//! `/api/v1/sessions`: create, read, update, delete and list sessions.

use entity::session;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::Example,
};
use serde_json::json;

use super::{
    ApiTags, Paging,
    errors::{ApiResult, Duplicate, Missing, MissingWithBody, Plain},
    input::{self, JsonObject},
    text::Text,
};
use crate::{
    AppState,
    error::Error,
    store,
    store::sessions::{NewSession, SessionChanges},
};

/// A conversation session.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Session {
    /// The client's id for the session.
    pub session_id: String,
    /// Open string, `AGENT` by default.
    pub session_type: String,
    /// When the session was created (RFC 3339, UTC).
    pub created_at: String,
    /// When the session last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Free-form JSON object.
    pub metadata: JsonObject,
}

impl Example for Session {
    fn example() -> Self {
        Self {
            session_id: "chat-42".into(),
            session_type: "AGENT".into(),
            created_at: "2026-11-21T10:00:00.123456+00:00".into(),
            updated_at: "2026-11-21T10:00:00.123456+00:00".into(),
            metadata: example_metadata(),
        }
    }
}

fn example_metadata() -> JsonObject {
    JsonObject::from([("user".to_owned(), json!("user@example.com"))])
}

impl TryFrom<session::Model> for Session {
    type Error = Error;
    fn try_from(m: session::Model) -> Result<Self, Error> {
        Ok(Self {
            metadata: input::object(&m.metadata)?,
            session_id: m.session_id,
            session_type: m.session_type,
            created_at: input::format_timestamp(m.created_at),
            updated_at: input::format_timestamp(m.updated_at),
        })
    }
}

/// Body of `POST /api/v1/sessions`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateSessionRequest {
    /// 1 to 255 bytes; no `/`, `\` or control characters; not `.` or `..`.
    pub session_id: Text,
    /// 1 to 64 characters; defaults to `AGENT`.
    pub session_type: Option<Text>,
    /// Free-form JSON object; defaults to `{}`.
    pub metadata: Option<JsonObject>,
    /// Kept when given (imports, the SDK); RFC 3339 with offset.
    pub created_at: Option<Text>,
    /// Kept when given; RFC 3339 with offset.
    pub updated_at: Option<Text>,
}

impl Example for CreateSessionRequest {
    fn example() -> Self {
        Self {
            session_id: "chat-42".into(),
            session_type: Some("AGENT".into()),
            metadata: Some(example_metadata()),
            created_at: None,
            updated_at: None,
        }
    }
}

/// Body of `PUT /api/v1/sessions/{session_id}`; fields not sent are kept.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateSessionRequest {
    /// 1 to 64 characters.
    pub session_type: Option<Text>,
    /// Replaces the stored metadata.
    pub metadata: Option<JsonObject>,
}

impl Example for UpdateSessionRequest {
    fn example() -> Self {
        Self { session_type: None, metadata: Some(example_metadata()) }
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
enum Created {
    /// The session was created.
    #[oai(status = 201)]
    Created(Json<Session>),
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
        body: Json<CreateSessionRequest>,
    ) -> ApiResult<Created, Duplicate> {
        let body = body.0;
        let new = NewSession {
            session_id: input::id("session_id", &body.session_id)?.to_owned(),
            session_type: input::session_type(body.session_type.as_deref())?
                .unwrap_or_else(|| "AGENT".into()),
            metadata: input::to_text(&body.metadata.unwrap_or_default()),
            created_at: input::timestamp("created_at", body.created_at.as_deref())?,
            updated_at: input::timestamp("updated_at", body.updated_at.as_deref())?,
        };
        let model = store::sessions::create(state.db.conn(), state.tenant(), new).await?;
        Ok(Created::Created(Json(model.try_into()?)))
    }

    /// Read a session
    #[oai(path = "/api/v1/sessions/:session_id", method = "get", operation_id = "get_session")]
    async fn get(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
    ) -> ApiResult<Json<Session>, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        let model = store::sessions::get(state.db.conn(), state.tenant(), session_id).await?;
        Ok(Json(model.try_into()?))
    }

    /// Update a session
    ///
    /// Fields not sent are kept; `updated_at` becomes the server time.
    #[oai(path = "/api/v1/sessions/:session_id", method = "put", operation_id = "update_session")]
    async fn update(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        body: Json<UpdateSessionRequest>,
    ) -> ApiResult<Json<Session>, MissingWithBody> {
        let session_id = input::id("session_id", &session_id)?;
        let changes = SessionChanges {
            session_type: input::session_type(body.0.session_type.as_deref())?,
            metadata: body.0.metadata.as_ref().map(input::to_text),
        };
        let model = store::sessions::update(state.db.conn(), state.tenant(), session_id, changes).await?;
        Ok(Json(model.try_into()?))
    }

    /// Delete a session
    ///
    /// Its agents, messages and multi-agent states go with it.
    #[oai(path = "/api/v1/sessions/:session_id", method = "delete", operation_id = "delete_session")]
    async fn delete(&self, state: Data<&AppState>, session_id: Path<String>) -> ApiResult<Deleted, Missing> {
        let session_id = input::id("session_id", &session_id)?;
        store::sessions::delete(state.db.conn(), state.tenant(), session_id).await?;
        Ok(Deleted::Deleted)
    }

    /// List sessions
    ///
    /// Newest `created_at` first.
    #[oai(path = "/api/v1/sessions", method = "get", operation_id = "list_sessions")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// Page number, from 1.
        #[oai(default = "super::default_page", validator(minimum(value = "1")))]
        page: Query<u64>,
        /// Sessions per page, 1 to 1000.
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<Json<SessionList>, Plain> {
        let paging = Paging::new(page.0, page_size.0);
        let found =
            store::sessions::list(state.db.conn(), state.tenant(), paging.offset(), paging.page_size).await?;
        Ok(Json(SessionList {
            sessions: found.items.into_iter().map(Session::try_from).collect::<Result<_, _>>()?,
            total: found.total,
            page: paging.page,
            page_size: paging.page_size,
        }))
    }
}
