//! Forking a session: a copy of it under a new id, with its agents and
//! their messages, its multi-agent states and its snapshot blobs. The
//! blobs are read from one snapshot of the source into a spool (so no
//! connection is held while they are written again) and staged under the
//! new id as an import stages them; one transaction then copies the rows,
//! from one snapshot of its own (so a message appended meanwhile is copied
//! with its agent or not at all), and switches the blobs in. One agent's
//! history may be cut after a message; its conversation-manager state then
//! restores exactly what is kept.

use std::time::Duration;

use entity::{JsonText, agent, message, multi_agent, session};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, EntityTrait, IdenStatic, Iterable,
    sea_query::{Condition, Expr, ExprTrait, InsertStatement, Query, SelectStatement},
};
use tokio::io::{AsyncReadExt, BufReader};

use super::{
    ChildKey,
    blobs::{CHUNK_BYTES, KEY_MAX_BYTES, Staged, Timing},
    children,
    sessions::{self, NewSession},
    snapshots,
    spool::Spool,
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
/// indexing the first `index_bytes` of each, within `timing.transfer`.
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
/// a blob under its prefix), 503 when the blobs take longer than
/// `copying.timing.transfer` to copy.
pub async fn fork(db: &Conn, fork: Fork<'_>, copying: Copying) -> Result<Forked, Error> {
    let mut blobs = Staged::new(db, fork.tenant, copying.index_bytes, copying.timing);
    blobs.under(snapshots::prefix(fork.target));
    let deadline = copying.timing.transfer;
    let mut staging = false;
    let copied = tokio::time::timeout(deadline, async {
        let (had_row, spool) = read_source(db, fork).await?;
        staging = true;
        stage(&mut blobs, spool).await?;
        Ok(had_row)
    })
    .await
    .unwrap_or_else(|_| Err(too_slow(deadline)));
    let forked = match copied {
        Ok(had_row) => switch(db, fork, had_row, &blobs).await,
        Err(e) => Err(e),
    };
    match &forked {
        // Nothing was staged: nothing to let go.
        Err(_) if staging => blobs.discard().await,
        _ => blobs.settle(),
    }
    forked
}

fn too_slow(deadline: Duration) -> Error {
    Error::Unavailable(format!(
        "the fork did not copy the session's snapshots within {} ms (storage.transfer_timeout_ms); nothing was made",
        deadline.as_millis()
    ))
}

/// Reads the source from one snapshot: whether it has a row, and its
/// snapshot blobs into a spool, each as its key below the prefix (a
/// little-endian `u32` length, then the bytes) and its value (a `u64`
/// length, then the bytes).
async fn read_source(db: &Conn, fork: Fork<'_>) -> Result<(bool, Spool), Error> {
    let source = Snapshot::open(db, fork.tenant, fork.source).await?;
    let (from, to) = (snapshots::prefix(fork.source), snapshots::prefix(fork.target));
    let mut spool = Spool::default();
    let mut after: Option<String> = None;
    loop {
        let (page, next) = source.blobs(after.as_deref()).await?;
        for (key, head) in &page {
            let below = key.strip_prefix(&from).ok_or(Error::Internal)?;
            if to.len() + below.len() > KEY_MAX_BYTES {
                return Err(Error::Validation(format!(
                    "`session_id`: under the new id, a key of the session's snapshots is longer than {KEY_MAX_BYTES} bytes"
                )));
            }
            spool.write(&u32::try_from(below.len()).map_err(|_| Error::Internal)?.to_le_bytes()).await?;
            spool.write(below.as_bytes()).await?;
            spool.write(&u64::try_from(head.size).map_err(|_| Error::Internal)?.to_le_bytes()).await?;
            let mut written = 0;
            for seq in 0..head.chunks() {
                let chunk = source.chunk(key, head.version, seq).await?;
                written += chunk.len() as u64;
                spool.write(&chunk).await?;
            }
            if u64::try_from(head.size).ok() != Some(written) {
                return Err(Error::Internal);
            }
        }
        match next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    let had_row = source.session().is_some();
    source.close().await?;
    Ok((had_row, spool))
}

/// Stages the blobs [`read_source`] spooled.
async fn stage(blobs: &mut Staged, spool: Spool) -> Result<(), Error> {
    let unread = |e: std::io::Error| {
        tracing::error!(error = %e, "a fork's spool cannot be read back");
        Error::Internal
    };
    let mut reader = BufReader::new(spool.into_reader().await?);
    let mut buffer = vec![0; CHUNK_BYTES];
    loop {
        let length = match reader.read_u32_le().await {
            Ok(length) => length as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(unread(e)),
        };
        let mut key = vec![0; length];
        reader.read_exact(&mut key).await.map_err(unread)?;
        blobs.begin(std::str::from_utf8(&key).map_err(|_| Error::Internal)?).await?;
        let mut left = reader.read_u64_le().await.map_err(unread)?;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
            reader.read_exact(&mut buffer[..n]).await.map_err(unread)?;
            blobs.feed(&buffer[..n]).await?;
            left -= n as u64;
        }
    }
    blobs.end().await
}

/// Tries of the switch when it collides with another write.
const SWITCH_TRIES: u32 = 3;

/// The fork's one transaction: the rows copied, the staged `blobs`
/// switched in. A write into the new id's keys that its snapshot cannot
/// see makes it collide (PostgreSQL): it is tried again, and the next try
/// sees that write.
async fn switch(db: &Conn, fork: Fork<'_>, had_row: bool, blobs: &Staged) -> Result<Forked, Error> {
    let mut tries = 1;
    loop {
        match switch_once(db, fork, had_row, blobs).await {
            Err(Error::Collision) if tries < SWITCH_TRIES => tries += 1,
            done => return done,
        }
    }
}

async fn switch_once(db: &Conn, fork: Fork<'_>, had_row: bool, blobs: &Staged) -> Result<Forked, Error> {
    let txn = db.begin().await?;
    if txn.backend() == DatabaseBackend::Postgres {
        // One snapshot for every statement below.
        txn.writes().execute_unprepared("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    }
    // First, so forks and imports into one id go one after another.
    blobs.hold(&txn).await.map_err(|e| transfer::conflict_is_taken(e, fork.target))?;
    if txn.backend() == DatabaseBackend::Postgres {
        // The snapshot is taken before the prefix lock is granted, so it
        // may not see a fork or an import into the id that the lock waited
        // for: one look outside it, now that the lock is held.
        transfer::refuse_taken(db, fork.tenant, fork.target).await?;
    }
    let forked = match sessions::get(&txn, fork.tenant, fork.source).await {
        Ok(source) => Forked::Session(copy_rows(&txn, fork, source).await?),
        // Its row was deleted since the blobs were read.
        Err(e @ Error::NotFound(_)) if had_row => return Err(e),
        Err(Error::NotFound(_)) => {
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
