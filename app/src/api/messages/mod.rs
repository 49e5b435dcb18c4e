//! `/api/v1/sessions/{session_id}/agents/{agent_id}/messages`: the
//! conversation, keyed by the client's 0-based message index.
mod bodies;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, OpenApi,
    param::{Header, Path, Query},
};

use super::{
    ApiTags, Paging,
    errors::{ApiResult, Missing, MissingOrDuplicate, MissingOrLeased, MissingWithBody},
    fields::{Id, MessageJson, Optional},
    listing,
    payload::{FIELDS, JsonBody, JsonSize, JsonStream},
};
use crate::{
    api::AppState,
    auth::Tenant,
    error::Error,
    store,
    store::{
        leases::Fence,
        messages::{AgentKey, Appended, MessageChanges, NewMessage, Window},
    },
};

use self::bodies::MessageTail;
pub use self::bodies::{
    BatchMessagesRequest, CreateMessageRequest, ListedMessage, Message, MessageBatch, MessageList,
    UpdateMessageRequest,
};

/// Most messages one listing returns.
const LIST_CAP: u64 = 10_000;
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
    Created(JsonBody<Message>),
    /// The same message was already stored (a retry); nothing changed.
    #[oai(status = 200)]
    Replayed(JsonBody<Message>),
}

#[derive(ApiResponse)]
enum BatchCreated {
    /// All messages are stored.
    #[oai(status = 201)]
    Created(JsonBody<MessageBatch>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The message was deleted; the others keep their ids.
    #[oai(status = 204)]
    Deleted,
}

/// The store key of the agent named in the path.
fn key<'a>(tenant: &'a Tenant, session_id: &'a Id, agent_id: &'a Id) -> AgentKey<'a> {
    AgentKey { tenant: tenant.as_str(), session_id: session_id.as_str(), agent_id: agent_id.as_str() }
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
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        agent_id: Path<Id>,
        body: JsonBody<CreateMessageRequest>,
    ) -> ApiResult<Appended201, MissingOrDuplicate> {
        let key = key(&tenant, &session_id, &agent_id);
        Ok(match state.appender.append(key, body.0.into(), Fence(lease_token.0)).await? {
            Appended::Created(m) => Appended201::Created(JsonBody(m.into())),
            Appended::Replayed(m) => Appended201::Replayed(JsonBody(m.into())),
        })
    }

    /// Append messages atomically
    ///
    /// 1 to 1000 messages in one transaction: all are stored or none.
    /// Identical replays of stored messages are accepted as they are, and
    /// so is an id repeated with the same content; the same id with other
    /// content is `409`.
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages/batch",
        method = "post",
        operation_id = "create_messages_batch"
    )]
    async fn batch(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        agent_id: Path<Id>,
        body: JsonBody<BatchMessagesRequest>,
    ) -> ApiResult<BatchCreated, MissingOrDuplicate> {
        let messages = body.0.messages;
        if messages.is_empty() || messages.len() > 1000 {
            return Err(Error::Validation(format!(
                "messages: a batch holds 1 to 1000 messages, not {}",
                messages.len()
            ))
            .into());
        }
        let batch = messages.into_iter().map(|m| NewMessage::from(m.0)).collect();
        let key = key(&tenant, &session_id, &agent_id);
        let stored = store::messages::append_batch(state.db.conn(), key, batch, Fence(lease_token.0)).await?;
        Ok(BatchCreated::Created(JsonBody(MessageBatch {
            messages: stored.into_iter().map(Message::from).collect(),
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
        tenant: Tenant,
        session_id: Path<Id>,
        agent_id: Path<Id>,
        #[oai(validator(minimum(value = "0")))] message_id: Path<i64>,
    ) -> ApiResult<JsonBody<Message>, Missing> {
        let model =
            store::messages::get(state.db.conn(), key(&tenant, &session_id, &agent_id), message_id.0).await?;
        Ok(JsonBody(model.into()))
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
    #[expect(clippy::too_many_arguments, reason = "poem-openapi takes each part of a request as an argument")]
    async fn update(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        agent_id: Path<Id>,
        #[oai(validator(minimum(value = "0")))] message_id: Path<i64>,
        body: JsonBody<UpdateMessageRequest>,
    ) -> ApiResult<JsonBody<Message>, MissingWithBody> {
        let body = body.0;
        let redact_message = match body.redact_message {
            Optional::Absent => None,
            Optional::Null => Some(None),
            Optional::Value(redact) => Some(Some(redact.0)),
        };
        let changes = MessageChanges { message: body.message.into_option().map(|m| m.0), redact_message };
        let key = key(&tenant, &session_id, &agent_id);
        let model =
            store::messages::update(state.db.conn(), key, message_id.0, changes, Fence(lease_token.0))
                .await?;
        Ok(JsonBody(model.into()))
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
        tenant: Tenant,
        /// The session's lease token (`PUT …/lease`): required while a
        /// lease is live, 423 when it is not the current one.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        session_id: Path<Id>,
        agent_id: Path<Id>,
        #[oai(validator(minimum(value = "0")))] message_id: Path<i64>,
    ) -> ApiResult<Deleted, MissingOrLeased> {
        let key = key(&tenant, &session_id, &agent_id);
        store::messages::delete(state.db.conn(), key, message_id.0, Fence(lease_token.0)).await?;
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
    /// The window is written as its rows arrive.
    #[expect(clippy::too_many_arguments, reason = "poem-openapi takes each part of a request as an argument")]
    #[oai(
        path = "/api/v1/sessions/:session_id/agents/:agent_id/messages",
        method = "get",
        operation_id = "list_messages"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
        agent_id: Path<Id>,
        /// `asc` (default) or `desc`.
        #[oai(default)]
        order: Query<SortOrder>,
        /// Messages to skip, from 0.
        #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
        offset: Query<Option<u64>>,
        /// Messages to return, 1 to 10000.
        #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
        limit: Query<Option<u64>>,
        /// Keyset start: only ids after this one in listing order (`-1`: from the start).
        #[oai(validator(minimum(value = "-1")))]
        after_message_id: Query<Option<i64>>,
        /// Page number, from 1 (page style only).
        #[oai(
            default = "super::default_page",
            validator(minimum(value = "1"), maximum(value = "2147483647"))
        )]
        page: Query<u64>,
        /// Messages per page, 1 to 1000 (page style only).
        #[oai(
            default = "super::default_page_size",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        page_size: Query<u64>,
    ) -> ApiResult<JsonStream<MessageList>, Missing> {
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
        let listed =
            store::messages::list(state.db.conn(), key(&tenant, &session_id, &agent_id), window).await?;
        let (total, position) = (listed.page.total, listed.position);
        Ok(listing::write("messages", listed.page.into_stream(), ListedMessage, move |sent| {
            let next = position + sent;
            MessageTail {
                total,
                page: window_offset / window_limit + 1,
                page_size: window_limit,
                next_offset: (next < total).then_some(next),
            }
        }))
    }
}

impl JsonSize for Message {
    fn json_size(&self) -> usize {
        FIELDS + self.message.len() + self.redact_message.0.as_ref().map_or(0, MessageJson::len)
    }
}

impl JsonSize for ListedMessage {
    fn json_size(&self) -> usize {
        let documents =
            self.0.message().map_or(0, str::len) + self.0.redact_message().ok().flatten().map_or(0, str::len);
        FIELDS + documents
    }
}

impl JsonSize for MessageBatch {
    fn json_size(&self) -> usize {
        FIELDS + self.messages.iter().map(|m| m.json_size() + 1).sum::<usize>()
    }
}
