//! Forking a session: a copy of it under a new id, with its agents and
//! their messages, its multi-agent states and its snapshot blobs. The
//! blobs are read from one snapshot of the source and staged under the new
//! id as an import stages them; one transaction then copies the rows, from
//! one snapshot of its own (so a message appended meanwhile is copied with
//! its agent or not at all), and switches the blobs in. One agent's history
//! may be cut after a message; its conversation-manager state then
//! restores exactly what is kept.

use entity::{JsonText, agent, message, multi_agent, session};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, EntityTrait, IdenStatic, Iterable,
    sea_query::{Condition, Expr, ExprTrait, InsertStatement, Query, SelectStatement},
};

use super::{
    ChildKey,
    blobs::{Staged, Timing},
    children,
    sessions::{self, NewSession},
    snapshots,
    transfer::{self, Snapshot},
};
use crate::{
    db::{Conn, Db, Txn},
    error::Error,
};

/// Where one agent's history ends in the fork.
#[derive(Clone, Copy, Debug)]
pub struct Cut<'a> {
    pub agent_id: &'a str,
    /// The last message kept (messages with a larger id are left out).
    pub up_to_message_id: i64,
}

/// What to fork.
#[derive(Clone, Copy, Debug)]
pub struct Fork<'a> {
    pub tenant: &'a str,
    pub source: &'a str,
    /// The new session's id.
    pub target: &'a str,
    pub cut: Option<Cut<'a>>,
}

/// How a fork stages the source's snapshot blobs: as an import does,
/// indexing the first `index_bytes` of each.
#[derive(Clone, Copy, Debug)]
pub struct Copying {
    pub index_bytes: usize,
    pub timing: Timing,
}

/// What a fork made.
pub enum Forked {
    /// A session with a row (and the source's blobs, if it has any).
    Session(session::Model),
    /// A session kept only as snapshot blobs: how many.
    Blobs(u64),
}

/// Makes the fork. 404 when the source has neither a row nor a blob (or
/// the cut's agent is missing), 409 when the target id is taken (a row, or
/// a blob under its prefix).
pub async fn fork(db: &Conn, fork: Fork<'_>, copying: Copying) -> Result<Forked, Error> {
    let mut blobs = Staged::new(db, fork.tenant, copying.index_bytes, copying.timing);
    blobs.under(snapshots::prefix(fork.target));
    let forked = match stage_blobs(db, fork, &mut blobs).await {
        Ok(()) => switch(db, fork, &blobs).await,
        Err(e) => Err(e),
    };
    match &forked {
        Ok(_) => blobs.settle(),
        Err(_) => blobs.discard().await,
    }
    forked
}

/// Stages the source's snapshot blobs under the target's prefix, read from
/// one snapshot.
async fn stage_blobs(db: &Conn, fork: Fork<'_>, blobs: &mut Staged) -> Result<(), Error> {
    let source = Snapshot::open(db, fork.tenant, fork.source).await?;
    let prefix = snapshots::prefix(fork.source);
    let mut after: Option<String> = None;
    loop {
        let (page, next) = source.blobs(after.as_deref()).await?;
        for (key, head) in &page {
            blobs.begin(key.strip_prefix(&prefix).ok_or(Error::Internal)?).await?;
            for seq in 0..head.chunks() {
                blobs.feed(&source.chunk(key, head.version, seq).await?).await?;
            }
        }
        match next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    blobs.end().await?;
    source.close().await
}

/// Tries of the switch when it collides with another write.
const SWITCH_TRIES: u32 = 3;

/// The fork's one transaction: the rows copied, the staged `blobs`
/// switched in. On PostgreSQL its snapshot is taken before its prefix lock
/// is granted, so a write it waited for (a fork, an import or a storage
/// write into the new id) can make it collide: it is tried again, and the
/// next try sees that write.
async fn switch(db: &Conn, fork: Fork<'_>, blobs: &Staged) -> Result<Forked, Error> {
    let mut tries = 1;
    loop {
        match switch_once(db, fork, blobs).await {
            Err(Error::Collision) if tries < SWITCH_TRIES => tries += 1,
            done => return done,
        }
    }
}

async fn switch_once(db: &Conn, fork: Fork<'_>, blobs: &Staged) -> Result<Forked, Error> {
    let txn = db.begin().await?;
    if txn.backend() == DatabaseBackend::Postgres {
        // One snapshot for every statement below.
        txn.writes().execute_unprepared("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    }
    // First, so forks and imports into one id go one after another.
    blobs.hold(&txn).await.map_err(|e| transfer::conflict_is_taken(e, fork.target))?;
    let forked = match sessions::get(&txn, fork.tenant, fork.source).await {
        Ok(source) => Forked::Session(copy_rows(&txn, fork, source).await?),
        Err(Error::NotFound(_)) if blobs.count() > 0 => {
            if let Some(cut) = fork.cut {
                return Err(Error::NotFound(format!(
                    "agent `{}` not found: session `{}` is kept only as snapshot blobs",
                    cut.agent_id, fork.source
                )));
            }
            transfer::vacant(&txn, fork.tenant, fork.target).await?;
            Forked::Blobs(blobs.count())
        }
        Err(e) => return Err(e),
    };
    blobs.switch(&txn).await.map_err(|e| transfer::conflict_is_taken(e, fork.target))?;
    txn.commit().await?;
    Ok(forked)
}

/// Copies the session `source` (its row, agents, messages and multi-agent
/// states, as the cut lets them through) under the fork's target, in `txn`.
async fn copy_rows(txn: &Txn, fork: Fork<'_>, source: session::Model) -> Result<session::Model, Error> {
    let cut_agent = match fork.cut {
        Some(cut) => {
            let key = ChildKey { tenant: fork.tenant, session_id: fork.source, id: cut.agent_id };
            Some(children::get::<agent::Entity>(txn, key).await?)
        }
        None => None,
    };
    let new = NewSession {
        session_id: fork.target.to_owned(),
        session_type: source.session_type,
        metadata: source.metadata,
        created_at: None,
        updated_at: None,
        ttl_seconds: source.ttl_seconds.and_then(|ttl| u64::try_from(ttl).ok()).unwrap_or(0),
    };
    let forked = sessions::create_in(txn, fork.tenant, new).await?;
    let from = Place { tenant: fork.tenant, session_id: fork.source };
    let to = Place { tenant: fork.tenant, session_id: fork.target };
    copy_tree(txn, from, to, fork.cut.map(kept)).await?;
    if let (Some(cut), Some(agent)) = (fork.cut, cut_agent) {
        let state = restoring_all(&agent.conversation_manager_state)?;
        let update = Query::update()
            .table(agent::Entity)
            .value(agent::Column::ConversationManagerState, state)
            .and_where(Expr::col(agent::Column::TenantId).eq(fork.tenant))
            .and_where(Expr::col(agent::Column::SessionId).eq(fork.target))
            .and_where(Expr::col(agent::Column::AgentId).eq(cut.agent_id))
            .to_owned();
        txn.writes().execute_raw(txn.backend().build(&update)).await?;
    }
    Ok(forked)
}

/// The messages a cut keeps: every other agent's, and the cut agent's up
/// to its last kept id.
fn kept(cut: Cut<'_>) -> Condition {
    Condition::any()
        .add(Expr::col(message::Column::AgentId).ne(cut.agent_id))
        .add(Expr::col(message::Column::MessageId).lte(cut.up_to_message_id))
}

/// A session's key.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place<'a> {
    pub tenant: &'a str,
    pub session_id: &'a str,
}

/// Copies the agents, messages (those `messages` lets through) and
/// multi-agent states of session `from` under session `to`, which must
/// exist: three `INSERT … SELECT`s, in `txn`.
pub(super) async fn copy_tree(
    txn: &Txn,
    from: Place<'_>,
    to: Place<'_>,
    messages: Option<Condition>,
) -> Result<(), Error> {
    for copy in [
        copy::<agent::Entity>(from, to, None),
        copy::<message::Entity>(from, to, messages),
        copy::<multi_agent::Entity>(from, to, None),
    ] {
        txn.writes().execute_raw(txn.backend().build(&copy)).await?;
    }
    Ok(())
}

/// `INSERT INTO <table> SELECT …` of session `from`'s rows of `E` (those
/// `only` lets through) under session `to`'s key.
fn copy<E: EntityTrait>(from: Place<'_>, to: Place<'_>, only: Option<Condition>) -> InsertStatement {
    let columns: Vec<E::Column> = E::Column::iter().collect();
    let session_id = |c: &E::Column| c.as_str() == "session_id";
    let tenant_id = |c: &E::Column| c.as_str() == "tenant_id";
    let mut select: SelectStatement = Query::select();
    for column in &columns {
        if session_id(column) {
            select.expr(Expr::val(to.session_id));
        } else if tenant_id(column) {
            select.expr(Expr::val(to.tenant));
        } else {
            select.column(*column);
        }
    }
    select.from(E::default()).cond_where(
        Condition::all()
            .add(Expr::col(columns.iter().copied().find(tenant_id).expect("tenant_id")).eq(from.tenant))
            .add(
                Expr::col(columns.iter().copied().find(session_id).expect("session_id")).eq(from.session_id),
            ),
    );
    if let Some(only) = only {
        select.cond_where(only);
    }
    Query::insert()
        .into_table(E::default())
        .columns(columns)
        .select_from(select)
        .expect("as many values as columns")
        .to_owned()
}

/// A conversation-manager state that restores every stored message: the
/// SDK restores from `removed_message_count` on (and prepends a
/// summarizing manager's `summary_message`, which stands for messages the
/// fork may no longer hold), so the count goes to 0 and the summary goes.
fn restoring_all(state: &JsonText) -> Result<JsonText, Error> {
    let mut value: serde_json::Value = serde_json::from_str(state.as_str()).map_err(|_| Error::Internal)?;
    if let Some(fields) = value.as_object_mut() {
        if fields.contains_key("removed_message_count") {
            fields.insert("removed_message_count".into(), 0.into());
        }
        fields.remove("summary_message");
    }
    JsonText::parse(value.to_string()).map_err(|_| Error::Internal)
}
