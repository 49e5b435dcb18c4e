//! Single-message appends that arrive together are written together: one
//! `INSERT … RETURNING` of all their rows and one commit, instead of a
//! statement and a commit each. Most of what a database spends on a
//! one-row insert is the statement and the commit around the row, so under
//! load this is where appends become nearly free.
//!
//! Each append still gets exactly the answer it would get alone. The
//! statement inserts only rows whose agent exists in a live session and
//! skips taken ids; an append whose row came back is created, and any other
//! (a taken id, a missing agent, a lapsed session, the same key twice in
//! one group) is answered by [`messages::append`] on its own, which tells
//! a replay from a conflict from a missing agent. A row whose agent or
//! session another transaction holds locked (a delete under way) is left
//! out the same way, so one agent's lock never holds up the appends of
//! others. A group the database refuses as a whole, or gives up on after
//! `lock_timeout`, is retried one by one, so one bad row fails only
//! itself; a database that cannot be reached fails every append in the
//! group with 503.
//!
//! An append waits for a group at most as long as for a connection
//! (`database.acquire_timeout_ms`), then it is a counted pool timeout and
//! is never written; so is one whose request ends before its group forms.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use entity::{
    agent, message,
    message::{Column, Entity},
    session,
};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DbErr,
    sea_query::{
        Alias, Expr, ExprTrait, IntoIden, LockBehavior, LockType, OnConflict, Query, SelectStatement,
        ValueTuple,
    },
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::Instrument;

use super::{
    messages::{self, AgentKey, Appended, NewMessage},
    now, retention,
};
use crate::{
    db::Conn,
    error::{self, Error},
};

/// Rows one statement inserts at most.
const MAX_GROUP: usize = 64;

/// Groups written at the same time at most, each on a connection of its
/// own: while they run, the next appends gather into the next group.
const GROUPS_IN_FLIGHT: usize = 2;

/// Messages larger than this (message and redaction together) are written
/// alone, so a group's statement stays a few MiB at most.
const MAX_GROUPED_BYTES: usize = 64 * 1024;

/// A handle on the task that forms the groups.
#[derive(Clone, Debug)]
pub struct Appender {
    conn: Conn,
    jobs: mpsc::Sender<Job>,
    wait: Duration,
}

/// Where an append stands: waiting for a group, taken into one, or given
/// up on by its request. Whichever of the group and the request moves it
/// first decides whether it is written.
#[derive(Debug, Default)]
struct Claim(AtomicU8);

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Claim {
    fn take(&self) -> bool {
        self.0.compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn abandon(&self) -> bool {
        self.0.compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// Abandons its claim when dropped, unless the append was taken already.
struct Abandon(Arc<Claim>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

#[derive(Debug)]
enum Outcome {
    Inserted(message::Model),
    /// Not inserted by the group: to be answered on its own.
    Alone(message::Model),
    Failed(Error),
}

#[derive(Debug)]
struct Job {
    model: message::Model,
    claim: Arc<Claim>,
    /// The request's span, so the group's statement is traced under the
    /// first request in it.
    span: tracing::Span,
    reply: oneshot::Sender<Outcome>,
}

impl Appender {
    /// Starts the task; an append waits at most `wait` to be taken into a
    /// group.
    pub fn start(conn: Conn, wait: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(GROUPS_IN_FLIGHT * MAX_GROUP);
        tokio::spawn(form_groups(conn.clone(), queue));
        Self { conn, jobs, wait }
    }

    /// Appends one message, as [`messages::append`] does, together with the
    /// appends that arrive at the same time.
    pub async fn append(&self, key: AgentKey<'_>, new: NewMessage) -> Result<Appended, Error> {
        let model = messages::into_model(key, new, now());
        let size =
            model.message.as_str().len() + model.redact_message.as_ref().map_or(0, |r| r.as_str().len());
        if size > MAX_GROUPED_BYTES {
            return messages::append_model(&self.conn, key, model).await;
        }
        let claim = Arc::new(Claim::default());
        // A request dropped (deadline, client gone) before its group forms
        // leaves nothing written.
        let _gone = Abandon(claim.clone());
        let (reply, answer) = oneshot::channel();
        let job = Job { model, claim: claim.clone(), span: tracing::Span::current(), reply };
        let timed_out = || Error::from(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        let closed = || Error::from(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed));
        let queued = tokio::time::timeout(self.wait, self.jobs.send(job));
        let deadline = tokio::time::Instant::now() + self.wait;
        match queued.await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(closed()),
            Err(_) => return Err(timed_out()),
        }
        tokio::pin!(answer);
        let outcome = match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(outcome) => outcome,
            Err(_) if claim.abandon() => return Err(timed_out()),
            // Taken just now: it is being written, wait for the answer.
            Err(_) => answer.await,
        };
        match outcome {
            Ok(Outcome::Inserted(model)) => Ok(Appended::Created(model)),
            Ok(Outcome::Alone(model)) => messages::append_model(&self.conn, key, model).await,
            Ok(Outcome::Failed(e)) => Err(e),
            Err(_) => Err(closed()),
        }
    }
}

/// Takes what is waiting whenever a group may start, and starts it; ends
/// when every handle is gone.
async fn form_groups(conn: Conn, mut queue: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    let mut waiting = Vec::with_capacity(MAX_GROUP);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        if queue.recv_many(&mut waiting, MAX_GROUP).await == 0 {
            return;
        }
        let group: Vec<Job> = waiting.drain(..).filter(|job| job.claim.take()).collect();
        if let Some(first) = group.first() {
            let span = first.span.clone();
            tokio::spawn(write(conn.clone(), group, slot).instrument(span));
        }
    }
}

/// Writes one group and answers each append in it.
async fn write(conn: Conn, group: Vec<Job>, _slot: OwnedSemaphorePermit) {
    let mut keys = HashSet::with_capacity(group.len());
    let (mut rows, repeated): (Vec<Job>, Vec<Job>) =
        group.into_iter().partition(|job| keys.insert(key_of(&job.model)));
    // In key order, so two groups over the same keys cannot deadlock.
    rows.sort_unstable_by(|a, b| key_order(&a.model).cmp(&key_order(&b.model)));
    for job in repeated {
        let _ = job.reply.send(Outcome::Alone(job.model));
    }
    let inserted = match insert_all(&conn, &rows).await {
        Ok(inserted) => inserted,
        Err(e) => {
            // The database unreachable: every append fails with it. The
            // statement refused (a constraint its checks could not see
            // coming, such as an agent deleted meanwhile; a collision with
            // another transaction; a lock one of its rows waited for too
            // long; anything else): each on its own.
            let unavailable =
                if e.sql_err().is_some() || error::is_collision(&e) || error::is_lock_timeout(&e) {
                    None
                } else {
                    Some(Error::shared_by(e, rows.len())).filter(|e| matches!(e, Error::Unavailable(_)))
                };
            for job in rows {
                let _ = job.reply.send(match &unavailable {
                    Some(e) => Outcome::Failed(e.clone()),
                    None => Outcome::Alone(job.model),
                });
            }
            return;
        }
    };
    for job in rows {
        let outcome = if inserted.contains(&key_of(&job.model)) {
            Outcome::Inserted(job.model)
        } else {
            Outcome::Alone(job.model)
        };
        let _ = job.reply.send(outcome);
    }
}

type RowKey = (String, String, String, i64);

fn key_order(m: &message::Model) -> (&str, &str, &str, i64) {
    (&m.tenant_id, &m.session_id, &m.agent_id, m.message_id)
}

fn key_of(m: &message::Model) -> RowKey {
    (m.tenant_id.clone(), m.session_id.clone(), m.agent_id.clone(), m.message_id)
}

/// `INSERT INTO messages … SELECT … FROM (VALUES …) WHERE <agent in a live
/// session> ON CONFLICT DO NOTHING RETURNING <key>`: the keys inserted.
async fn insert_all(conn: &Conn, jobs: &[Job]) -> Result<HashSet<RowKey>, DbErr> {
    let columns = [
        Column::TenantId,
        Column::SessionId,
        Column::AgentId,
        Column::MessageId,
        Column::Message,
        Column::RedactMessage,
        Column::CreatedAt,
        Column::UpdatedAt,
    ];
    let v = |i: usize| Expr::col((Alias::new("v"), Alias::new(format!("column{i}"))));
    let rows = jobs.iter().map(|job| {
        let m = &job.model;
        ValueTuple::Many(vec![
            m.tenant_id.clone().into(),
            m.session_id.clone().into(),
            m.agent_id.clone().into(),
            m.message_id.into(),
            m.message.clone().into(),
            m.redact_message.clone().into(),
            m.created_at.into(),
            m.updated_at.into(),
        ])
    });
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
        .cond_where(retention::unexpired())
        // A row whose agent or session another transaction is deleting is
        // left out rather than waited for (the insert's foreign-key check
        // would wait on that lock, holding up every append in the group),
        // and answered on its own. SQLite, with one writer, has no row locks.
        .lock_with_behavior(LockType::KeyShare, LockBehavior::SkipLocked)
        .to_owned();
    let mut select = SelectStatement::new();
    select
        .exprs((1..=columns.len()).map(v))
        .from_values(rows, Alias::new("v"))
        .and_where(Expr::exists(live_agent));
    let mut insert = Query::insert();
    insert
        .into_table(Entity)
        .columns(columns.map(IntoIden::into_iden))
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
    let statement = conn.get_database_backend().build(&insert);
    drop(insert);
    conn.query_all_raw(statement)
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
