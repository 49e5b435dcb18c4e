//! `/api/v1/sessions/{session_id}/agents/{agent_id}/messages`: the
//! conversation, keyed by the client's 0-based message index.

use std::collections::HashSet;

use entity::message;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::{Example, MaybeUndefined},
};
use serde_json::{Value, json};

use super::{
    ApiTags, Paging,
    errors::{ApiResult, Missing, MissingOrDuplicate, MissingWithBody},
    input,
    text::Text,
};
use crate::{
    AppState,
    error::Error,
    store,
    store::messages::{AgentKey, Appended, MessageChanges, NewMessage, Window},
};

/// Most messages one listing returns.
pub const LIST_CAP: u64 = 10_000;

/// One message of the conversation.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Message {
    /// The client's 0-based index in the conversation; never renumbered.
    pub message_id: i64,
    /// `{role, content, …}`, opaque beyond that.
    pub message: Value,
    /// What the SDK shows instead of `message` after a guardrail redaction.
    pub redact_message: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
}

fn example_message() -> Value {
    json!({"role": "user", "content": [{"text": "What is the weather in Paris?"}]})
}

impl Example for Message {
    fn example() -> Self {
        Self {
            message_id: 0,
            message: example_message(),
            redact_message: None,
            created_at: "2026-11-21T10:00:00.123456+00:00".into(),
            updated_at: "2026-11-21T10:00:00.123456+00:00".into(),
        }
    }
}

impl TryFrom<message::Model> for Message {
    type Error = Error;
    fn try_from(m: message::Model) -> Result<Self, Error> {
        Ok(Self {
            message_id: m.message_id,
            message: input::value(&m.message)?,
            redact_message: m.redact_message.as_deref().map(input::value).transpose()?,
            created_at: input::format_timestamp(m.created_at),
            updated_at: input::format_timestamp(m.updated_at),
        })
    }
}

/// Body of `POST …/messages` (the SDK's `SessionMessage.to_dict()`).
#[derive(Debug, Object)]
#[oai(example)]
pub struct CreateMessageRequest {
    /// 0-based index in the conversation.
    #[oai(validator(minimum(value = "0")))]
    pub message_id: i64,
    /// A JSON object with a string `role` and a `content`.
    pub message: Value,
    /// Such an object, or `null`.
    pub redact_message: Option<Value>,
    /// Kept when given; RFC 3339 with offset.
    pub created_at: Option<Text>,
    /// Kept when given; RFC 3339 with offset.
    pub updated_at: Option<Text>,
}

impl Example for CreateMessageRequest {
    fn example() -> Self {
        Self {
            message_id: 0,
            message: example_message(),
            redact_message: None,
            created_at: Some("2026-11-21T10:00:00.123456+00:00".into()),
            updated_at: Some("2026-11-21T10:00:00.123456+00:00".into()),
        }
    }
}

impl CreateMessageRequest {
    fn into_new(self, field: &str) -> Result<NewMessage, Error> {
        input::message(&format!("{field}message"), &self.message)?;
        if let Some(redact) = &self.redact_message {
            input::message(&format!("{field}redact_message"), redact)?;
        }
        Ok(NewMessage {
            message_id: self.message_id,
            message: input::to_text(&self.message),
            redact_message: self.redact_message.as_ref().map(input::to_text),
            created_at: input::timestamp(&format!("{field}created_at"), self.created_at.as_deref())?,
            updated_at: input::timestamp(&format!("{field}updated_at"), self.updated_at.as_deref())?,
        })
    }
}

/// Body of `POST …/messages/batch`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct BatchMessagesRequest {
    /// 1 to 1000 messages with distinct ids.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub messages: Vec<CreateMessageRequest>,
}

impl Example for BatchMessagesRequest {
    fn example() -> Self {
        Self { messages: vec![CreateMessageRequest::example()] }
    }
}

/// The stored records of a batch, in request order.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MessageBatch {
    pub messages: Vec<Message>,
}

impl Example for MessageBatch {
    fn example() -> Self {
        Self { messages: vec![Message::example()] }
    }
}

/// Body of `PUT …/messages/{message_id}`: other fields are ignored (the
/// SDK sends its whole `SessionMessage`).
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateMessageRequest {
    /// Replaces the message when sent.
    pub message: Option<Value>,
    /// Sets (object) or clears (`null`) the redaction; kept when absent.
    pub redact_message: MaybeUndefined<Value>,
}

impl Example for UpdateMessageRequest {
    fn example() -> Self {
        Self {
            message: None,
            redact_message: MaybeUndefined::Value(
                json!({"role": "user", "content": [{"text": "[User input redacted.]"}]}),
            ),
        }
    }
}

/// A window of the conversation.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MessageList {
    pub messages: Vec<Message>,
    /// The agent's message count.
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    /// Offset of the first message not returned; `null` when complete.
    pub next_offset: Option<u64>,
}

impl Example for MessageList {
    fn example() -> Self {
        Self { messages: vec![Message::example()], total: 2500, page: 1, page_size: 1, next_offset: Some(1) }
    }
}

/// Listing order, by `message_id`.
#[derive(Debug, Clone, Copy, Default, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

#[derive(ApiResponse)]
enum Appended201 {
    /// The message was stored.
    #[oai(status = 201)]
    Created(Json<Message>),
    /// The same message was already stored (a retry); nothing changed.
    #[oai(status = 200)]
    Replayed(Json<Message>),
}

#[derive(ApiResponse)]
enum BatchCreated {
    /// All messages are stored.
    #[oai(status = 201)]
    Created(Json<MessageBatch>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The message was deleted; the others keep their ids.
    #[oai(status = 204)]
    Deleted,
}

/// Checks the path ids and builds the store key.
fn key<'a>(state: &'a AppState, session_id: &'a str, agent_id: &'a str) -> Result<AgentKey<'a>, Error> {
    Ok(AgentKey {
        tenant: state.tenant(),
        session_id: input::id("session_id", session_id)?,
        agent_id: input::id("agent_id", agent_id)?,
    })
}

fn message_id(raw: i64) -> Result<i64, Error> {
    if raw < 0 {
        return Err(Error::Validation("invalid message_id: must be an integer >= 0".into()));
    }
    Ok(raw)
}

/// Message operations.
pub struct MessagesApi;

#[OpenApi(tag = "ApiTags::Messages")]
impl MessagesApi {
    /// Append a message
    ///
    /// An identical replay of a stored message (same id, equal `message`
    /// and `redact_message`) answers `200` with the stored record, so
    /// retries are safe; the same id with other content is `409`.
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages",
        method = "post",
        operation_id = "create_message"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
        body: Json<CreateMessageRequest>,
    ) -> ApiResult<Appended201, MissingOrDuplicate> {
        let key = key(&state, &session_id, &agent_id)?;
        let new = body.0.into_new("")?;
        Ok(match store::messages::append(state.db.conn(), key, new).await? {
            Appended::Created(m) => Appended201::Created(Json(m.try_into()?)),
            Appended::Replayed(m) => Appended201::Replayed(Json(m.try_into()?)),
        })
    }

    /// Append messages atomically
    ///
    /// 1 to 1000 messages in one transaction: all are stored or none.
    /// Identical replays of stored messages are accepted as they are.
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages/batch",
        method = "post",
        operation_id = "create_messages_batch"
    )]
    async fn batch(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
        body: Json<BatchMessagesRequest>,
    ) -> ApiResult<BatchCreated, MissingOrDuplicate> {
        let key = key(&state, &session_id, &agent_id)?;
        let messages = body.0.messages;
        let mut seen = HashSet::with_capacity(messages.len());
        let mut batch = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            if !seen.insert(m.message_id) {
                return Err(Error::Validation(format!(
                    "messages[{i}]: message_id {} appears twice in the batch",
                    m.message_id
                ))
                .into());
            }
            batch.push(m.into_new(&format!("messages[{i}]."))?);
        }
        let stored = store::messages::append_batch(state.db.conn(), key, batch).await?;
        Ok(BatchCreated::Created(Json(MessageBatch {
            messages: stored.into_iter().map(Message::try_from).collect::<Result<_, _>>()?,
        })))
    }

    /// Read a message
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages/:message_id",
        method = "get",
        operation_id = "get_message"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
        message_id: Path<i64>,
    ) -> ApiResult<Json<Message>, Missing> {
        let key = key(&state, &session_id, &agent_id)?;
        let model = store::messages::get(state.db.conn(), key, self::message_id(message_id.0)?).await?;
        Ok(Json(model.try_into()?))
    }

    /// Update a message
    ///
    /// Sets `message` and/or `redact_message` (guardrail redaction);
    /// other fields are ignored.
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages/:message_id",
        method = "put",
        operation_id = "update_message"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
        message_id: Path<i64>,
        body: Json<UpdateMessageRequest>,
    ) -> ApiResult<Json<Message>, MissingWithBody> {
        let key = key(&state, &session_id, &agent_id)?;
        let body = body.0;
        if let Some(message) = &body.message {
            input::message("message", message)?;
        }
        let redact_message = match body.redact_message {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(redact) => {
                input::message("redact_message", &redact)?;
                Some(Some(input::to_text(&redact)))
            }
        };
        let changes = MessageChanges { message: body.message.as_ref().map(input::to_text), redact_message };
        let model =
            store::messages::update(state.db.conn(), key, self::message_id(message_id.0)?, changes).await?;
        Ok(Json(model.try_into()?))
    }

    /// Delete a message
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages/:message_id",
        method = "delete",
        operation_id = "delete_message"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
        message_id: Path<i64>,
    ) -> ApiResult<Deleted, Missing> {
        let key = key(&state, &session_id, &agent_id)?;
        store::messages::delete(state.db.conn(), key, self::message_id(message_id.0)?).await?;
        Ok(Deleted::Deleted)
    }

    /// List messages
    ///
    /// Always ordered by `message_id`. Three styles:
    /// - Strands: `offset` and `limit`; with `offset` and no `limit`, every
    ///   remaining message up to 10000.
    /// - Keyset: `after_message_id=N` returns ids > N (`asc`) or < N (`desc`).
    /// - Pages (the earlier service): `page` and `page_size`, used only when
    ///   none of `offset`, `limit`, `after_message_id` is given.
    ///
    /// `next_offset` is the offset of the first message not returned, or
    /// `null` when the listing is complete; `total` is the agent's count.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages",
        method = "get",
        operation_id = "list_messages"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        session_id: Path<String>,
        agent_id: Path<String>,
        /// `asc` (default) or `desc`.
        #[oai(default)]
        order: Query<SortOrder>,
        /// Messages to skip, from 0.
        #[oai(validator(minimum(value = "0")))]
        offset: Query<Option<u64>>,
        /// Messages to return, 1 to 10000.
        #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
        limit: Query<Option<u64>>,
        /// Keyset start: only ids after this one in listing order.
        after_message_id: Query<Option<i64>>,
        /// Page number, from 1 (page style only).
        #[oai(default = "super::default_page", validator(minimum(value = "1")))]
        page: Query<u64>,
        /// Messages per page, 1 to 1000 (page style only).
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<Json<MessageList>, Missing> {
        let key = key(&state, &session_id, &agent_id)?;
        let strands_style = offset.0.is_some() || limit.0.is_some() || after_message_id.0.is_some();
        let (window_offset, window_limit) = if strands_style {
            (offset.0.unwrap_or(0), limit.0.unwrap_or(LIST_CAP))
        } else {
            let paging = Paging::new(page.0, page_size.0);
            (paging.offset(), paging.page_size)
        };
        let window = Window {
            descending: matches!(order.0, SortOrder::Desc),
            after: after_message_id.0,
            offset: window_offset,
            limit: window_limit,
        };
        let listing = store::messages::list(state.db.conn(), key, window).await?;
        let next_offset = listing.next_offset();
        Ok(Json(MessageList {
            total: listing.total,
            page: window_offset / window_limit + 1,
            page_size: window_limit,
            next_offset,
            messages: listing.messages.into_iter().map(Message::try_from).collect::<Result<_, _>>()?,
        }))
    }
}
