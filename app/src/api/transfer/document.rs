//! The session document (`session-backend/1`): a session, its agents with
//! their messages, its multi-agent states and its snapshot blobs, every
//! stored document as stored. Versions, expiry and leases belong to a
//! deployment, not to the conversation, and are not carried: an import
//! starts fresh ones.

use entity::{agent, message, multi_agent, session};
use poem_openapi::{Object, types::Example};
use serde::{Deserialize, Serialize};

use crate::api::{
    fields::{
        Complete, Format, Id, MessageId, MessageJson, Nullable, ObjectJson, Optional, SessionType, Timestamp,
        TtlSeconds, json_text,
    },
    messages::Message,
};

/// The value of `format`.
pub const FORMAT: &str = "session-backend/1";

/// One session as one JSON document: what an export writes and an
/// import reads. An export writes its members in this order, `complete`
/// last, so a download cut short lacks it; an import reads them in any
/// order and refuses a document without it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SessionDocument {
    /// `session-backend/1`.
    pub format: Format,
    /// The session's id. An export always writes it; a document without it
    /// (an earlier release's) takes it from `session`.
    pub session_id: Option<Id>,
    /// The session's row; `null` for a session kept only as snapshot blobs
    /// (the SDK's `SnapshotSessionManager`).
    pub session: Optional<SessionRecord>,
    /// By `agent_id` (none without `session`).
    pub agents: Vec<AgentRecord>,
    /// By `multi_agent_id` (none without `session`).
    #[oai(default)]
    pub multi_agents: Vec<MultiAgentRecord>,
    /// The blobs under `session/<session_id>/`, by key (after `session_id`
    /// or `session`: an import stages them under their session's keys).
    #[oai(default)]
    pub blobs: Vec<BlobRecord>,
    /// `true`: the document is whole.
    pub complete: Complete,
}

/// A blob under the session's prefix.
#[derive(Debug, Object)]
pub struct BlobRecord {
    /// The key below `session/<session_id>/`, normalised as the storage
    /// routes normalise keys (`scopes/agent/a/snapshots/snapshot_latest.json`).
    /// It comes before `data`.
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub key: String,
    /// The value's bytes as standard base64 (padded), in pieces each
    /// decoded on its own: the value is the decoded pieces in order.
    pub data: Vec<String>,
}

impl Example for SessionDocument {
    fn example() -> Self {
        let at = Timestamp::example();
        Self {
            format: Format(FORMAT.into()),
            session_id: Some("chat-42".into()),
            session: Optional::Value(SessionRecord {
                session_id: "chat-42".into(),
                session_type: "AGENT".into(),
                metadata: ObjectJson(json_text(r#"{"user": "user@example.com"}"#)),
                ttl_seconds: TtlSeconds(0),
                created_at: at,
                updated_at: at,
            }),
            agents: vec![AgentRecord {
                agent_id: "default".into(),
                state: ObjectJson::empty(),
                conversation_manager_state: ObjectJson(json_text(
                    r#"{"__name__": "SlidingWindowConversationManager", "removed_message_count": 0}"#,
                )),
                internal_state: ObjectJson::empty(),
                created_at: at,
                updated_at: at,
                messages: vec![Message {
                    message_id: MessageId(0),
                    message: MessageJson(json_text(r#"{"role": "user", "content": [{"text": "Hello"}]}"#)),
                    redact_message: Nullable(None),
                    created_at: at,
                    updated_at: at,
                }],
            }],
            multi_agents: vec![],
            blobs: vec![BlobRecord {
                key: "scopes/agent/default/snapshots/snapshot_latest.json".into(),
                data: vec!["eyJzY2hlbWFfdmVyc2lvbiI6ICIxLjAifQ==".into()],
            }],
            complete: Complete(true),
        }
    }
}

/// The session itself.
#[derive(Debug, Object, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: Id,
    pub session_type: SessionType,
    pub metadata: ObjectJson,
    /// Seconds the session lives after its last update; 0 (the default):
    /// forever. An import counts it from the import.
    #[oai(default)]
    #[serde(default)]
    pub ttl_seconds: TtlSeconds,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<&session::Model> for SessionRecord {
    fn from(m: &session::Model) -> Self {
        Self {
            session_id: m.session_id.as_str().into(),
            session_type: m.session_type.as_str().into(),
            metadata: ObjectJson(m.metadata.clone()),
            ttl_seconds: TtlSeconds(m.ttl_seconds.and_then(|ttl| u64::try_from(ttl).ok()).unwrap_or(0)),
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
        }
    }
}

/// An agent and its messages (an export writes `messages` last).
#[derive(Debug, Object, Serialize)]
pub struct AgentRecord {
    pub agent_id: Id,
    pub state: ObjectJson,
    pub conversation_manager_state: ObjectJson,
    /// The SDK's `_internal_state`.
    pub internal_state: ObjectJson,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// By `message_id`.
    pub messages: Vec<Message>,
}

impl From<agent::Model> for AgentRecord {
    /// The agent without its messages.
    fn from(m: agent::Model) -> Self {
        Self {
            agent_id: m.agent_id.as_str().into(),
            state: ObjectJson(m.state),
            conversation_manager_state: ObjectJson(m.conversation_manager_state),
            internal_state: ObjectJson(m.internal_state),
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
            messages: Vec::new(),
        }
    }
}

/// The row a document's message is stored as, under `agent_id` (the
/// session's keys are set where it is stored).
pub fn message_model(record: Message, agent_id: &str) -> message::Model {
    message::Model {
        tenant_id: String::new(),
        session_id: String::new(),
        agent_id: agent_id.to_owned(),
        message_id: record.message_id.0,
        message: record.message.0,
        redact_message: record.redact_message.0.map(|m| m.0),
        created_at: record.created_at.0,
        updated_at: record.updated_at.0,
    }
}

/// A multi-agent orchestrator's state.
#[derive(Debug, Object, Serialize, Deserialize)]
pub struct MultiAgentRecord {
    pub multi_agent_id: Id,
    pub state: ObjectJson,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<multi_agent::Model> for MultiAgentRecord {
    fn from(m: multi_agent::Model) -> Self {
        Self {
            multi_agent_id: m.multi_agent_id.as_str().into(),
            state: ObjectJson(m.state),
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
        }
    }
}

impl MultiAgentRecord {
    /// The row it is stored as (keys and version are set where it is stored).
    pub fn into_model(self) -> multi_agent::Model {
        multi_agent::Model {
            tenant_id: String::new(),
            session_id: String::new(),
            multi_agent_id: self.multi_agent_id.into_string(),
            state: self.state.0,
            version: 0,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        }
    }
}
