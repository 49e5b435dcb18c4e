//! Multi-agent orchestrator state (Graph, Swarm) of a session. Reads,
//! deletes and listings go through [`super::children`]; this module builds
//! and changes the rows.

use entity::{
    JsonText,
    multi_agent::{Column, Entity, Model},
};

use super::{
    ChildKey,
    children::{self, session_child},
    leases::Fence,
    now,
    version::{self, Expected},
};
use crate::{db::Db, error::Error};

session_child!(Entity, "multi-agent state", MultiAgentId, [State]);

/// Inserts a state; 404 when the session is missing, 409 when the id is taken.
pub async fn create(db: &impl Db, key: ChildKey<'_>, state: JsonText, fence: Fence) -> Result<Model, Error> {
    let now = now();
    let row = Model {
        tenant_id: key.tenant.to_owned(),
        session_id: key.session_id.to_owned(),
        multi_agent_id: key.id.to_owned(),
        state,
        version: version::first(),
        created_at: now,
        updated_at: now,
    };
    children::create::<Entity>(db, key, row, fence).await
}

/// Replaces the state of an existing row (never creates), in one
/// statement, if it is at an `expected` version.
pub async fn update(
    db: &impl Db,
    key: ChildKey<'_>,
    expected: Expected<'_>,
    state: JsonText,
    fence: Fence,
) -> Result<Model, Error> {
    children::update::<Entity>(db, key, expected, vec![(Column::State, state.into())], fence).await
}
