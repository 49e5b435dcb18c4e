//! The one `INSERT` of message rows, for single appends, batches and
//! grouped appends alike: `INSERT INTO messages (…) SELECT … FROM (VALUES
//! …) WHERE <guard> ON CONFLICT DO NOTHING RETURNING <key>`. Taken ids are
//! skipped, and the keys of the rows written come back.

use std::collections::HashSet;

use entity::{
    agent,
    message::{self, Column, Entity},
    session,
};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DbErr,
    sea_query::{
        Alias, Expr, ExprTrait, IntoIden, LockBehavior, LockType, OnConflict, Query, SelectStatement,
        ValueTuple,
    },
};

use super::AgentKey;
use crate::{
    db::Db,
    store::{
        leases::{self, Fence},
        retention,
    },
};

/// What a row needs besides a free id to be written.
#[derive(Clone, Copy, Debug)]
pub enum Guard<'a> {
    /// The session of this agent is alive and its lease lets the write
    /// through ([`Fence::guard`]); a missing agent fails the statement
    /// through its foreign key.
    Session(AgentKey<'a>, Fence),
    /// Each row's own agent exists in a live session whose lease lets the
    /// row's own fence through, and no other transaction holds agent or
    /// session locked (a delete, a lease being granted): other rows are
    /// left out rather than waited for, so one agent's lock never holds up
    /// the rows of others. SQLite, with one writer, has no row locks.
    EachAgentUnlocked,
}

/// A written row's key: tenant, session, agent, message id.
pub type RowKey = (String, String, String, i64);

/// The key of `m`.
pub fn key_of(m: &message::Model) -> RowKey {
    (m.tenant_id.clone(), m.session_id.clone(), m.agent_id.clone(), m.message_id)
}

const COLUMNS: [Column; 8] = [
    Column::TenantId,
    Column::SessionId,
    Column::AgentId,
    Column::MessageId,
    Column::Message,
    Column::RedactMessage,
    Column::CreatedAt,
    Column::UpdatedAt,
];

/// Writes `rows` (at least one, each with the fence it is written under)
/// as `guard` allows; the keys written.
pub async fn insert<'a>(
    db: &impl Db,
    rows: impl IntoIterator<Item = (&'a message::Model, Fence)>,
    guard: Guard<'_>,
) -> Result<HashSet<RowKey>, DbErr> {
    let statement = db.backend().build(&statement(db.backend(), rows, guard)?);
    db.writes()
        .query_all_raw(statement)
        .await?
        .into_iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "tenant_id")?,
                row.try_get::<String>("", "session_id")?,
                row.try_get::<String>("", "agent_id")?,
                row.try_get::<i64>("", "message_id")?,
            ))
        })
        .collect()
}

fn statement<'a>(
    backend: DatabaseBackend,
    rows: impl IntoIterator<Item = (&'a message::Model, Fence)>,
    guard: Guard<'_>,
) -> Result<sea_orm::sea_query::InsertStatement, DbErr> {
    let v = |i: usize| Expr::col((Alias::new("v"), Alias::new(format!("column{i}"))));
    // The row's columns, then its fence's token (not inserted).
    let token = COLUMNS.len() + 1;
    let values = rows.into_iter().map(|(m, fence)| {
        ValueTuple::Many(vec![
            m.tenant_id.clone().into(),
            m.session_id.clone().into(),
            m.agent_id.clone().into(),
            m.message_id.into(),
            m.message.clone().into(),
            m.redact_message.clone().into(),
            m.created_at.into(),
            m.updated_at.into(),
            fence.0.into(),
        ])
    });
    let mut select = SelectStatement::new();
    // Both backends name the columns of a VALUES list column1, column2, …
    select.exprs((1..=COLUMNS.len()).map(v)).from_values(values, Alias::new("v"));
    match guard {
        Guard::Session(key, fence) => {
            select.and_where(fence.guard(backend, key.tenant, key.session_id));
        }
        Guard::EachAgentUnlocked => {
            let live_agent = Query::select()
                .expr(Expr::val(1))
                .from(agent::Entity)
                .inner_join(
                    session::Entity,
                    Expr::col((session::Entity, session::Column::TenantId))
                        .equals((agent::Entity, agent::Column::TenantId))
                        .and(
                            Expr::col((session::Entity, session::Column::SessionId))
                                .equals((agent::Entity, agent::Column::SessionId)),
                        ),
                )
                .and_where(Expr::col((agent::Entity, agent::Column::TenantId)).eq(v(1)))
                .and_where(Expr::col((agent::Entity, agent::Column::SessionId)).eq(v(2)))
                .and_where(Expr::col((agent::Entity, agent::Column::AgentId)).eq(v(3)))
                .cond_where(retention::unexpired(backend))
                .cond_where(leases::admits_token(backend, v(token)))
                .lock_with_behavior(LockType::KeyShare, LockBehavior::SkipLocked)
                .to_owned();
            select.and_where(Expr::exists(live_agent));
        }
    }
    let mut insert = Query::insert();
    insert
        .into_table(Entity)
        .columns(COLUMNS.map(IntoIden::into_iden))
        .select_from(select)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::columns([Column::TenantId, Column::SessionId, Column::AgentId, Column::MessageId])
                .do_nothing()
                .to_owned(),
        )
        .returning(Query::returning().columns([
            Column::TenantId,
            Column::SessionId,
            Column::AgentId,
            Column::MessageId,
        ]));
    Ok(insert)
}
