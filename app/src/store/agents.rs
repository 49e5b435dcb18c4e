//! Agents of a session: their state, conversation-manager state and the
//! SDK's internal state. Reads, deletes and listings go through
//! [`super::children`]; this module builds and changes the rows.

use chrono::{DateTime, Utc};
use entity::{
    JsonText,
    agent::{Column, Entity, Model},
};

use super::{
    ChildKey,
    children::{self, session_child},
    leases::Fence,
    now,
    version::{self, Expected},
};
use crate::{db::Db, error::Error};

session_child!(Entity, "agent", AgentId, [State, ConversationManagerState, InternalState]);

/// What a new agent is made of.
#[derive(Debug)]
pub struct NewAgent {
    pub state: JsonText,
    pub conversation_manager_state: JsonText,
    pub internal_state: JsonText,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Fields an update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct AgentChanges {
    pub state: Option<JsonText>,
    pub conversation_manager_state: Option<JsonText>,
    pub internal_state: Option<JsonText>,
}

/// Inserts an agent; 404 when the session is missing, 409 when the id is taken.
pub async fn create(db: &impl Db, key: ChildKey<'_>, new: NewAgent, fence: Fence) -> Result<Model, Error> {
    let now = now();
    let row = Model {
        tenant_id: key.tenant.to_owned(),
        session_id: key.session_id.to_owned(),
        agent_id: key.id.to_owned(),
        state: new.state,
        conversation_manager_state: new.conversation_manager_state,
        internal_state: new.internal_state,
        version: version::first(),
        created_at: new.created_at.unwrap_or(now),
        updated_at: new.updated_at.unwrap_or(now),
    };
    children::create::<Entity>(db, key, row, fence).await
}

/// Applies `changes`, bumps the version and `updated_at`, in one statement,
/// if the agent is at an `expected` version.
pub async fn update(
    db: &impl Db,
    key: ChildKey<'_>,
    expected: Expected<'_>,
    changes: AgentChanges,
    fence: Fence,
) -> Result<Model, Error> {
    let set = [
        (Column::State, changes.state),
        (Column::ConversationManagerState, changes.conversation_manager_state),
        (Column::InternalState, changes.internal_state),
    ];
    let set = set.into_iter().filter_map(|(column, value)| Some((column, value?.into()))).collect();
    children::update::<Entity>(db, key, expected, set, fence).await
}
