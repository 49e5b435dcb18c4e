//! The bodies of the message routes: what a request sends and a response
//! returns, each with its example for the document.

use entity::message;
use poem_openapi::{Object, types::Example};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    api::fields::{MessageId, MessageJson, Nullable, ObjectOf, Optional, Timestamp, json_text},
    store::messages::{MessageRow, NewMessage},
};

/// One message of the conversation (a session document carries it so too).
#[derive(Debug, Object, Serialize, Deserialize)]
#[oai(example)]
pub struct Message {
    /// The client's 0-based index in the conversation; never renumbered.
    pub message_id: MessageId,
    /// `{role, content, …}`, opaque beyond that.
    pub message: MessageJson,
    /// What the SDK shows instead of `message` after a guardrail redaction.
    pub redact_message: Nullable<MessageJson>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn example_message() -> MessageJson {
    MessageJson(json_text(r#"{"role": "user", "content": [{"text": "What is the weather in Paris?"}]}"#))
}

impl Example for Message {
    fn example() -> Self {
        let at = Timestamp::example();
        Self {
            message_id: MessageId(0),
            message: example_message(),
            redact_message: Nullable(None),
            created_at: at,
            updated_at: at,
        }
    }
}

impl From<message::Model> for Message {
    fn from(m: message::Model) -> Self {
        Self {
            message_id: MessageId(m.message_id),
            message: MessageJson(m.message),
            redact_message: Nullable(m.redact_message.map(MessageJson)),
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
        }
    }
}

/// A message of a listing, written straight from its row: the same JSON
/// as [`Message`], without copying the documents first.
pub struct ListedMessage(pub MessageRow);

impl Serialize for ListedMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeStruct};
        let row = &self.0;
        let failed = |e: sea_orm::DbErr| S::Error::custom(e.to_string());
        let mut fields = serializer.serialize_struct("Message", 5)?;
        fields.serialize_field("message_id", &row.message_id().map_err(failed)?)?;
        let message: &RawValue =
            serde_json::from_str(row.message().map_err(failed)?).map_err(S::Error::custom)?;
        fields.serialize_field("message", message)?;
        let redaction = row.redact_message().map_err(failed)?;
        let redaction: Option<&RawValue> =
            redaction.map(serde_json::from_str).transpose().map_err(S::Error::custom)?;
        fields.serialize_field("redact_message", &redaction)?;
        fields.serialize_field("created_at", &Timestamp(row.created_at().map_err(failed)?))?;
        fields.serialize_field("updated_at", &Timestamp(row.updated_at().map_err(failed)?))?;
        fields.end()
    }
}

/// Body of `POST …/messages` (the SDK's `SessionMessage.to_dict()`).
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct CreateMessageRequest {
    /// 0-based index in the conversation.
    pub message_id: MessageId,
    /// A JSON object with a string `role` and a `content`.
    pub message: MessageJson,
    /// Such an object, or `null`.
    #[serde(default)]
    pub redact_message: Optional<MessageJson>,
    /// Kept when given.
    #[serde(default)]
    pub created_at: Optional<Timestamp>,
    /// Kept when given.
    #[serde(default)]
    pub updated_at: Optional<Timestamp>,
}

impl Example for CreateMessageRequest {
    fn example() -> Self {
        Self {
            message_id: MessageId(0),
            message: example_message(),
            redact_message: Optional::Null,
            created_at: Optional::Value(Timestamp::example()),
            updated_at: Optional::Value(Timestamp::example()),
        }
    }
}

impl From<CreateMessageRequest> for NewMessage {
    fn from(m: CreateMessageRequest) -> Self {
        Self {
            message_id: m.message_id.0,
            message: m.message.0,
            redact_message: m.redact_message.into_option().map(|r| r.0),
            created_at: m.created_at.into_option().map(|t| t.0),
            updated_at: m.updated_at.into_option().map(|t| t.0),
        }
    }
}

/// Body of `POST …/messages/batch`.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct BatchMessagesRequest {
    /// 1 to 1000 messages; an id may repeat only with the same content.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub messages: Vec<ObjectOf<CreateMessageRequest>>,
}

impl Example for BatchMessagesRequest {
    fn example() -> Self {
        Self { messages: vec![ObjectOf(CreateMessageRequest::example())] }
    }
}

/// The stored records of a batch, in request order.
#[derive(Debug, Object, Serialize)]
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
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct UpdateMessageRequest {
    /// Replaces the message when sent.
    #[serde(default)]
    pub message: Optional<MessageJson>,
    /// Sets (object) or clears (`null`) the redaction; kept when absent.
    #[serde(default)]
    pub redact_message: Optional<MessageJson>,
}

impl Example for UpdateMessageRequest {
    fn example() -> Self {
        Self {
            message: Optional::Absent,
            redact_message: Optional::Value(MessageJson(json_text(
                r#"{"role": "user", "content": [{"text": "[User input redacted.]"}]}"#,
            ))),
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
    pub next_offset: Nullable<u64>,
}

impl Example for MessageList {
    fn example() -> Self {
        Self {
            messages: vec![Message::example()],
            total: 2500,
            page: 1,
            page_size: 1,
            next_offset: Nullable(Some(1)),
        }
    }
}

/// The fields after the messages of a listing.
#[derive(Debug, Serialize)]
pub(super) struct MessageTail {
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub next_offset: Option<u64>,
}
