//! An agent's messages, keyed by the client's 0-based index.

pub mod insert;
mod row;

pub use self::row::MessageRow;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    JsonText,
    message::{self, Column, Entity},
};
use sea_orm::{
    ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::{Expr, Func, Order, Query, SelectStatement},
};

use self::insert::Guard;
use super::{
    ChildKey, children, count, insert_error, leases::Fence, listing, now, retention, update_returning,
};
use crate::{
    db::{Conn, Db},
    error::Error,
};

/// The agent a message belongs to.
#[derive(Clone, Copy, Debug)]
pub struct AgentKey<'a> {
    pub tenant: &'a str,
    pub session_id: &'a str,
    pub agent_id: &'a str,
}

/// What a new message is made of.
#[derive(Debug)]
pub struct NewMessage {
    pub message_id: i64,
    pub message: JsonText,
    pub redact_message: Option<JsonText>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Fields an update may change; `None` keeps the stored value
/// (`Some(None)` clears the redaction).
#[derive(Debug, Default)]
pub struct MessageChanges {
    pub message: Option<JsonText>,
    pub redact_message: Option<Option<JsonText>>,
}

/// The outcome of an append.
#[derive(Debug)]
pub enum Appended {
    /// A new row was written.
    Created(message::Model),
    /// The same message was already stored (a client retry): nothing written.
    Replayed(message::Model),
}

/// Which slice of the conversation to list.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Newest first instead of oldest first.
    pub descending: bool,
    /// Keyset start: only ids after this one in listing order.
    pub after: Option<i64>,
    /// Rows to skip (after the keyset start, if any).
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// One listed slice and where it sits in the whole conversation.
pub struct Listing {
    /// The slice's messages, as they arrive.
    pub page: listing::Page<Entity, MessageRow>,
    /// Position (in listing order) of the first message of the slice.
    pub position: u64,
}

fn not_found(key: AgentKey<'_>, message_id: i64) -> Error {
    Error::NotFound(format!(
        "message {message_id} not found for agent `{}` in session `{}`",
        key.agent_id, key.session_id
    ))
}

fn agent_missing(key: AgentKey<'_>) -> Error {
    Error::NotFound(format!("agent `{}` not found in session `{}`", key.agent_id, key.session_id))
}

fn conflict(message_id: i64) -> Error {
    Error::Conflict(format!(
        "message {message_id} already exists with different content; \
         message ids are positions in the conversation and are never reused"
    ))
}

fn by_agent<Q: QueryFilter>(backend: DatabaseBackend, query: Q, key: AgentKey<'_>) -> Q {
    of_agent(query, key).filter(retention::alive(backend, key.tenant, key.session_id))
}

/// [`by_agent`] for a write under `fence`.
fn by_agent_to_write<Q: QueryFilter>(
    backend: DatabaseBackend,
    query: Q,
    key: AgentKey<'_>,
    fence: Fence,
) -> Q {
    of_agent(query, key).filter(fence.guard(backend, key.tenant, key.session_id))
}

fn of_agent<Q: QueryFilter>(query: Q, key: AgentKey<'_>) -> Q {
    query
        .filter(Column::TenantId.eq(key.tenant))
        .filter(Column::SessionId.eq(key.session_id))
        .filter(Column::AgentId.eq(key.agent_id))
}

/// Why a write under `fence` changed nothing: 404 when the agent is
/// missing, 423 when the lease refuses it, else `otherwise`.
async fn refused(db: &impl Db, key: AgentKey<'_>, fence: Fence, otherwise: Error) -> Error {
    let agent = ChildKey { tenant: key.tenant, session_id: key.session_id, id: key.agent_id };
    children::refused::<entity::agent::Entity>(db, agent, fence, otherwise).await
}

pub(super) fn into_model(key: AgentKey<'_>, new: NewMessage, now: DateTime<Utc>) -> message::Model {
    message::Model {
        tenant_id: key.tenant.to_owned(),
        session_id: key.session_id.to_owned(),
        agent_id: key.agent_id.to_owned(),
        message_id: new.message_id,
        message: new.message,
        redact_message: new.redact_message,
        created_at: new.created_at.unwrap_or(now),
        updated_at: new.updated_at.unwrap_or(now),
    }
}

/// Writes `models` while the session is alive and its lease lets `fence`
/// through: taken ids are skipped, a missing agent fails the statement
/// through the foreign key; how many were written.
async fn insert_new(
    db: &impl Db,
    key: AgentKey<'_>,
    models: &[message::Model],
    fence: Fence,
) -> Result<u64, Error> {
    let written = insert::insert(db, models.iter().map(|m| (m, fence)), Guard::Session(key, fence))
        .await
        .map_err(|e| insert_error(e, || agent_missing(key), || Error::Internal))?;
    Ok(written.len() as u64)
}

/// Whether a stored message holds the same content as a new one (by JSON
/// value, so key order and whitespace do not matter).
fn same_content(stored: &message::Model, new: &message::Model) -> bool {
    let same_redaction = match (&stored.redact_message, &new.redact_message) {
        (Some(a), Some(b)) => a.same_value(b),
        (None, None) => true,
        _ => false,
    };
    same_redaction && stored.message.same_value(&new.message)
}

/// Appends one message in one statement. An identical replay of a stored
/// message is `Replayed` (whatever the fence: a holder retrying a write that
/// landed is not told it failed); else 404, 423 (the lease), 409 (the same
/// id with other content), in that order.
pub async fn append(
    db: &impl Db,
    key: AgentKey<'_>,
    new: NewMessage,
    fence: Fence,
) -> Result<Appended, Error> {
    append_model(db, key, into_model(key, new, now()), fence).await
}

/// [`append`] of a message already made into a row.
pub(super) async fn append_model(
    db: &impl Db,
    key: AgentKey<'_>,
    model: message::Model,
    fence: Fence,
) -> Result<Appended, Error> {
    if insert_new(db, key, std::slice::from_ref(&model), fence).await? == 1 {
        return Ok(Appended::Created(model));
    }
    // Nothing inserted: the id is taken, the lease refused, or the session
    // has lapsed.
    let stored = match get(db, key, model.message_id).await {
        Err(Error::NotFound(_)) => None,
        stored => Some(stored?),
    };
    match stored {
        Some(stored) if same_content(&stored, &model) => Ok(Appended::Replayed(stored)),
        Some(_) => Err(refused(db, key, fence, conflict(model.message_id)).await),
        None => Err(refused(db, key, fence, agent_missing(key)).await),
    }
}

/// Appends many messages atomically: one transaction, one `INSERT`. Ids
/// already stored with identical content are kept as they are (retries),
/// and so are ids repeated within the batch with identical content; any
/// other conflict or error writes nothing. Returns the stored records in
/// request order.
pub async fn append_batch(
    db: &Conn,
    key: AgentKey<'_>,
    batch: Vec<NewMessage>,
    fence: Fence,
) -> Result<Vec<message::Model>, Error> {
    let now = now();
    let models: Vec<_> = batch.into_iter().map(|new| into_model(key, new, now)).collect();
    // Each id once: a repeat must say the same thing.
    let mut unique: Vec<message::Model> = Vec::with_capacity(models.len());
    let mut first: HashMap<i64, usize> = HashMap::with_capacity(models.len());
    for model in &models {
        match first.get(&model.message_id) {
            Some(&at) if same_content(&unique[at], model) => {}
            Some(_) => return Err(conflict(model.message_id)),
            None => {
                first.insert(model.message_id, unique.len());
                unique.push(model.clone());
            }
        }
    }
    // Rows locked in id order: two batches over the same ids cannot deadlock.
    unique.sort_unstable_by_key(|m| m.message_id);
    let txn = db.begin().await?;
    let stored: HashMap<i64, message::Model> =
        if insert_new(&txn, key, &unique, fence).await? == unique.len() as u64 {
            unique.into_iter().map(|m| (m.message_id, m)).collect()
        } else {
            let ids: Vec<i64> = unique.iter().map(|m| m.message_id).collect();
            let stored: HashMap<i64, message::Model> = by_agent(db.backend(), Entity::find(), key)
                .filter(Column::MessageId.is_in(ids))
                .all(&txn)
                .await?
                .into_iter()
                .map(|m| (m.message_id, m))
                .collect();
            // Every id stored alike: a replay. Else 404, 423, 409 in order.
            if let Some(model) =
                unique.iter().find(|m| !stored.get(&m.message_id).is_some_and(|row| same_content(row, m)))
            {
                let otherwise = if stored.contains_key(&model.message_id) {
                    conflict(model.message_id)
                } else {
                    agent_missing(key)
                };
                return Err(refused(&txn, key, fence, otherwise).await);
            }
            stored
        };
    txn.commit().await?;
    Ok(models.iter().filter_map(|m| stored.get(&m.message_id).cloned()).collect())
}

/// Reads one message.
pub async fn get(db: &impl Db, key: AgentKey<'_>, message_id: i64) -> Result<message::Model, Error> {
    by_agent(db.backend(), Entity::find(), key)
        .filter(Column::MessageId.eq(message_id))
        .one(&db.reads())
        .await?
        .ok_or_else(|| not_found(key, message_id))
}

/// Applies `changes` and sets `updated_at`, in one statement.
pub async fn update(
    db: &impl Db,
    key: AgentKey<'_>,
    message_id: i64,
    changes: MessageChanges,
    fence: Fence,
) -> Result<message::Model, Error> {
    let mut update = by_agent_to_write(db.backend(), Entity::update_many(), key, fence)
        .filter(Column::MessageId.eq(message_id))
        .col_expr(Column::UpdatedAt, Expr::value(now()));
    if let Some(message) = changes.message {
        update = update.col_expr(Column::Message, Expr::value(message));
    }
    if let Some(redact) = changes.redact_message {
        update = update.col_expr(Column::RedactMessage, Expr::value(redact));
    }
    let changed = update_returning::<Entity>(db, update.into_query()).await?;
    match changed.into_iter().next() {
        Some(row) => Ok(row),
        None => Err(refused_message(db, key, message_id, fence).await),
    }
}

/// Deletes one message (the others keep their ids).
pub async fn delete(db: &impl Db, key: AgentKey<'_>, message_id: i64, fence: Fence) -> Result<(), Error> {
    let deleted = by_agent_to_write(db.backend(), Entity::delete_many(), key, fence)
        .filter(Column::MessageId.eq(message_id))
        .exec(&db.writes())
        .await?;
    if deleted.rows_affected == 0 {
        return Err(refused_message(db, key, message_id, fence).await);
    }
    Ok(())
}

/// Why a write under `fence` to message `message_id` changed nothing: 404
/// when it is missing, else 423 when the lease refuses.
async fn refused_message(db: &impl Db, key: AgentKey<'_>, message_id: i64, fence: Fence) -> Error {
    match get(db, key, message_id).await {
        Ok(_) => refused(db, key, fence, not_found(key, message_id)).await,
        Err(e) => e,
    }
}

/// Lists a window of the conversation ordered by `message_id`, with the
/// agent's message count, in one round trip for a window under the chunk
/// size (three on the rare empty page, which must tell a missing agent
/// from the end of the list).
///
/// The rows leave out the keys the caller gave ([`MessageRow`]): the
/// database then sends, and the server reads, only what differs from row
/// to row.
pub async fn list(db: &Conn, key: AgentKey<'_>, window: Window) -> Result<Listing, Error> {
    let mut select = by_agent(db.backend(), Entity::find(), key).select_only().columns([
        Column::MessageId,
        Column::Message,
        Column::RedactMessage,
        Column::CreatedAt,
        Column::UpdatedAt,
    ]);
    let order = if window.descending { Order::Desc } else { Order::Asc };
    // Keyset start, and the query counting the messages ordered before it.
    let mut before_query = None;
    if let Some(after) = window.after {
        let (beyond, before) = if window.descending {
            (Column::MessageId.lt(after), Column::MessageId.gte(after))
        } else {
            (Column::MessageId.gt(after), Column::MessageId.lte(after))
        };
        select = select.filter(beyond);
        before_query = Some(count_of(db.backend(), key, Some(before)));
    }
    let mut counts = vec![count_of(db.backend(), key, None)];
    counts.extend(before_query.clone());
    let page = listing::Listing {
        select,
        order: vec![(Column::MessageId, order)],
        payload: vec![Column::Message, Column::RedactMessage],
        offset: window.offset,
        limit: window.limit,
        counts,
    };
    let (total, before, rows) = match listing::open(db, page).await? {
        Some(rows) => {
            (rows.counts.first().copied().unwrap_or(0), rows.counts.get(1).copied().unwrap_or(0), Some(rows))
        }
        None => {
            let agent = ChildKey { tenant: key.tenant, session_id: key.session_id, id: key.agent_id };
            children::ensure_exists::<entity::agent::Entity>(db, agent).await?;
            let before = match &before_query {
                Some(query) => count(db, query).await?,
                None => 0,
            };
            (count(db, &count_of(db.backend(), key, None)).await?, before, None)
        }
    };
    Ok(Listing { page: listing::Page { total, rows }, position: before + window.offset })
}

fn count_of(
    backend: DatabaseBackend,
    key: AgentKey<'_>,
    extra: Option<sea_orm::sea_query::SimpleExpr>,
) -> SelectStatement {
    let mut query = Query::select();
    query
        .expr(Func::count(Expr::col(Column::MessageId)))
        .from(Entity)
        .and_where(Column::TenantId.eq(key.tenant))
        .and_where(Column::SessionId.eq(key.session_id))
        .and_where(Column::AgentId.eq(key.agent_id))
        .and_where(retention::alive(backend, key.tenant, key.session_id));
    if let Some(extra) = extra {
        query.and_where(extra);
    }
    query
}
