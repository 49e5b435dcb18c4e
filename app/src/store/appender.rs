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
//! Groups form as [`Groups`] forms them: an append waits for a group at
//! most as long as for a connection (`database.acquire_timeout_ms`), then
//! it is a pool timeout (503) and is never written; so is one whose request
//! ends before its group forms.

use std::{collections::HashSet, time::Duration};

use entity::message;

use super::messages::{
    self, AgentKey, Appended, NewMessage,
    insert::{self, Guard, key_of},
};
use crate::{
    db::{
        Conn, Failure,
        groups::{Groups, Pending, Refused},
    },
    error::Error,
    store::{leases::Fence, now},
};

/// Rows one statement inserts at most.
const MAX_GROUP: usize = 64;

/// Groups written at the same time at most, each on a connection of its
/// own: while they run, the next appends gather into the next group.
const GROUPS_IN_FLIGHT: usize = 2;

/// Messages larger than this (message and redaction together) are written
/// alone, so a group's statement stays a few MiB at most.
const MAX_GROUPED_BYTES: usize = 64 * 1024;

/// Appends, written in groups.
#[derive(Clone, Debug)]
pub struct Appender {
    conn: Conn,
    groups: Groups<Row, Outcome>,
}

/// One append's row and the lease it is written under.
#[derive(Debug)]
struct Row {
    model: message::Model,
    fence: Fence,
}

/// What a group did with an append.
#[derive(Debug)]
enum Outcome {
    Inserted(Row),
    /// Not inserted by the group: to be answered on its own.
    Alone(Row),
    Failed(Error),
}

impl Appender {
    /// Starts the groups' task; an append waits at most `wait` to be taken
    /// into a group.
    pub fn start(conn: Conn, wait: Duration) -> Self {
        let writer = conn.clone();
        let groups =
            Groups::start(MAX_GROUP, GROUPS_IN_FLIGHT, wait, move |group| write(writer.clone(), group));
        Self { conn, groups }
    }

    /// Appends one message, as [`messages::append`] does, together with the
    /// appends that arrive at the same time.
    pub async fn append(&self, key: AgentKey<'_>, new: NewMessage, fence: Fence) -> Result<Appended, Error> {
        let model = messages::into_model(key, new, now());
        let size =
            model.message.as_str().len() + model.redact_message.as_ref().map_or(0, |r| r.as_str().len());
        if size > MAX_GROUPED_BYTES {
            return messages::append_model(&self.conn, key, model, fence).await;
        }
        match self.groups.submit(Row { model, fence }).await {
            Ok(Outcome::Inserted(row)) => Ok(Appended::Created(row.model)),
            Ok(Outcome::Alone(row)) => messages::append_model(&self.conn, key, row.model, fence).await,
            Ok(Outcome::Failed(e)) => Err(e),
            Err(Refused::TimedOut) => Err(Error::PoolTimeout),
            Err(Refused::Closed) => {
                Err(Error::Unavailable("the server is shutting down; retry shortly".into()))
            }
        }
    }
}

/// Writes one group and answers each append in it.
async fn write(conn: Conn, group: Vec<Pending<Row, Outcome>>) {
    let mut keys = HashSet::with_capacity(group.len());
    let (mut rows, repeated): (Vec<_>, Vec<_>) =
        group.into_iter().partition(|p| keys.insert(key_of(&p.item.model)));
    // In key order, so two groups over the same keys cannot deadlock.
    rows.sort_unstable_by(|a, b| key_order(&a.item.model).cmp(&key_order(&b.item.model)));
    for pending in repeated {
        pending.answer(Outcome::Alone);
    }
    let items = rows.iter().map(|p| (&p.item.model, p.item.fence));
    let inserted = match insert::insert(&conn, items, Guard::EachAgentUnlocked).await {
        Ok(inserted) => inserted,
        Err(e) => {
            // The database unreachable: every append fails with it. The
            // statement refused (a constraint its checks could not see
            // coming, such as an agent deleted meanwhile; a collision with
            // another transaction; a lock one of its rows waited for too
            // long; anything else): each on its own.
            let failure = Failure::of(&e);
            let alone =
                !failure.is_transient() || matches!(failure, Failure::Collision | Failure::LockTimeout);
            let unavailable = (!alone).then(|| Error::from(e));
            for pending in rows {
                match &unavailable {
                    Some(e) => pending.answer(|_| Outcome::Failed(e.clone())),
                    None => pending.answer(Outcome::Alone),
                }
            }
            return;
        }
    };
    for pending in rows {
        let written = inserted.contains(&key_of(&pending.item.model));
        pending.answer(|row| if written { Outcome::Inserted(row) } else { Outcome::Alone(row) });
    }
}

fn key_order(m: &message::Model) -> (&str, &str, &str, i64) {
    (&m.tenant_id, &m.session_id, &m.agent_id, m.message_id)
}

#[cfg(test)]
mod tests {
    use entity::JsonText;

    use super::*;
    use crate::{
        config::Backend,
        db::tests::Scratch,
        store::{ChildKey, agents, sessions},
    };

    fn text(json: &str) -> JsonText {
        JsonText::parse(json.to_owned()).expect("JSON")
    }

    fn new(id: i64, says: &str) -> NewMessage {
        let message = text(&format!(r#"{{"role": "user", "content": [{{"text": "{says}"}}]}}"#));
        NewMessage { message_id: id, message, redact_message: None, created_at: None, updated_at: None }
    }

    /// Appends that share a group, one of them for an agent that does not
    /// exist and two repeating another's key: each gets the answer it
    /// would get alone.
    async fn a_group_with_bad_rows_fails_only_those(backend: Backend) {
        let Some(scratch) = Scratch::new(backend, |_| {}).await else { return };
        let conn = scratch.db.conn();
        let session = sessions::NewSession {
            session_id: "s".into(),
            session_type: "AGENT".into(),
            metadata: text("{}"),
            created_at: None,
            updated_at: None,
            ttl_seconds: 0,
        };
        sessions::create(conn, "t", session).await.expect("session");
        for id in ["a1", "a2"] {
            let agent = agents::NewAgent {
                state: text("{}"),
                conversation_manager_state: text("{}"),
                internal_state: text("{}"),
                created_at: None,
                updated_at: None,
            };
            agents::create(conn, ChildKey { tenant: "t", session_id: "s", id }, agent, Fence::default())
                .await
                .expect("agent");
        }
        let appender = Appender::start(conn.clone(), Duration::from_secs(2));
        let key = |agent_id| AgentKey { tenant: "t", session_id: "s", agent_id };
        let appends = [
            (key("a1"), new(0, "hello")),
            (key("missing"), new(0, "hello")),
            (key("a2"), new(0, "hello")),
            (key("a1"), new(0, "hello")),
            (key("a2"), new(0, "something else")),
            (key("a1"), new(1, "again")),
        ];
        let answers = futures::future::join_all(
            appends.into_iter().map(|(k, m)| appender.append(k, m, Fence::default())),
        )
        .await;
        let outcome = |answer: &Result<Appended, Error>| match answer {
            Ok(Appended::Created(_)) => "created",
            Ok(Appended::Replayed(_)) => "replayed",
            Err(Error::NotFound(_)) => "not found",
            Err(Error::Conflict(_)) => "conflict",
            Err(e) => panic!("unexpected {e:?}"),
        };
        let seen: Vec<_> = answers.iter().map(outcome).collect();
        // Of two appends with one key, either may land first.
        let pair = |a: usize, b: usize| {
            let mut pair = [seen[a], seen[b]];
            pair.sort_unstable();
            pair
        };
        assert_eq!(pair(0, 3), ["created", "replayed"], "{seen:?}");
        assert_eq!(pair(2, 4), ["conflict", "created"], "{seen:?}");
        assert_eq!((seen[1], seen[5]), ("not found", "created"), "{seen:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_group_with_bad_rows_fails_only_those() {
        a_group_with_bad_rows_fails_only_those(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_group_with_bad_rows_fails_only_those() {
        a_group_with_bad_rows_fails_only_those(Backend::Postgres).await;
    }
}
