//! A whole session in and out: its rows and its snapshot blobs. An export
//! reads it from one snapshot ([`Snapshot`]), a bounded chunk at a time.
//! An import stages its rows as they arrive under a session no request can
//! see ([`Staging`]) and its blobs at a version no key points at
//! ([`Staged`]), each batch a short write of its own, and then switches
//! them in with one short transaction: SQLite's one writer is never held
//! for the upload.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use entity::{JsonText, agent, message, multi_agent, session};
use futures::{Stream, StreamExt, stream};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryTrait,
    Select,
    sea_query::{Condition, Expr, ExprTrait, LockType, OnConflict, Order, Query},
};

use super::{
    blobs::{self, BlobKey, Head, Staged},
    fork::{Place, copy_tree},
    leases::Fence,
    listing::{self, Listing},
    retention,
    sessions::{self, NewSession},
    snapshots, version,
};
use crate::{
    db::{Conn, Db, Txn},
    error::Error,
};

/// One session as one snapshot of the database shows it: its row, if it
/// has one, and its snapshot blobs.
pub struct Snapshot {
    txn: Arc<Txn>,
    tenant: String,
    session_id: String,
    session: Option<session::Model>,
}

/// Every row of a listing.
const ALL: u64 = i64::MAX as u64;

/// Blobs read per statement.
const BLOB_PAGE: u64 = 256;

impl Snapshot {
    /// Opens the snapshot; 404 when the session has neither a row nor blobs.
    pub async fn open(db: &Conn, tenant: &str, session_id: &str) -> Result<Self, Error> {
        let txn = db.begin_snapshot().await?;
        let session = match sessions::get(&txn, tenant, session_id).await {
            Ok(session) => Some(session),
            Err(Error::NotFound(_)) if snapshots::exist(&txn, tenant, session_id).await? => None,
            Err(e) => return Err(e),
        };
        let (tenant, session_id) = (tenant.to_owned(), session_id.to_owned());
        Ok(Self { txn: Arc::new(txn), tenant, session_id, session })
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The session's row (`None`: it is kept only as blobs).
    pub fn session(&self) -> Option<&session::Model> {
        self.session.as_ref()
    }

    /// A page of the session's blobs after the key `after`, by key, and
    /// the key the next page comes after (`None`: this is the last).
    pub async fn blobs(&self, after: Option<&str>) -> Result<(Vec<(String, Head)>, Option<String>), Error> {
        let prefix = snapshots::prefix(&self.session_id);
        let page = blobs::heads(self.txn.as_ref(), &self.tenant, &prefix, after, BLOB_PAGE).await?;
        let next = match page.last() {
            Some((key, _)) if page.len() as u64 == BLOB_PAGE => Some(key.clone()),
            _ => None,
        };
        Ok((page, next))
    }

    /// Chunk `seq` of `version` of the blob `key`.
    pub async fn chunk(&self, key: &str, version: i64, seq: i32) -> Result<Bytes, Error> {
        let blob = BlobKey { tenant: &self.tenant, key };
        // The snapshot sees every chunk of the versions it sees.
        blobs::chunk(self.txn.as_ref(), blob, version, seq).await?.ok_or(Error::Internal)
    }

    /// The session's agents, by id.
    pub async fn agents(
        &self,
    ) -> Result<impl Stream<Item = Result<agent::Model, Error>> + Send + use<>, Error> {
        let select = agent::Entity::find()
            .filter(agent::Column::TenantId.eq(&self.tenant))
            .filter(agent::Column::SessionId.eq(&self.session_id));
        let payload =
            vec![agent::Column::State, agent::Column::ConversationManagerState, agent::Column::InternalState];
        self.rows(select, agent::Column::AgentId, payload).await
    }

    /// An agent's messages, by id.
    pub async fn messages(
        &self,
        agent_id: &str,
    ) -> Result<impl Stream<Item = Result<message::Model, Error>> + Send + use<>, Error> {
        let select = message::Entity::find()
            .filter(message::Column::TenantId.eq(&self.tenant))
            .filter(message::Column::SessionId.eq(&self.session_id))
            .filter(message::Column::AgentId.eq(agent_id));
        let payload = vec![message::Column::Message, message::Column::RedactMessage];
        self.rows(select, message::Column::MessageId, payload).await
    }

    /// The session's multi-agent states, by id.
    pub async fn multi_agents(
        &self,
    ) -> Result<impl Stream<Item = Result<multi_agent::Model, Error>> + Send + use<>, Error> {
        let select = multi_agent::Entity::find()
            .filter(multi_agent::Column::TenantId.eq(&self.tenant))
            .filter(multi_agent::Column::SessionId.eq(&self.session_id));
        self.rows(select, multi_agent::Column::MultiAgentId, vec![multi_agent::Column::State]).await
    }

    /// Every row `select` finds, in `order`, read a bounded chunk at a time.
    async fn rows<E: EntityTrait>(
        &self,
        select: Select<E>,
        order: E::Column,
        payload: Vec<E::Column>,
    ) -> Result<impl Stream<Item = Result<E::Model, Error>> + Send + use<E>, Error>
    where
        E::Model: listing::Listed<E>,
    {
        let listing = Listing {
            select,
            order: vec![(order, Order::Asc)],
            payload,
            offset: 0,
            limit: ALL,
            counts: vec![],
        };
        Ok(match listing::open_on(self.txn.clone(), listing).await? {
            Some(rows) => rows.into_stream().left_stream(),
            None => stream::empty().right_stream(),
        })
    }

    /// Ends the snapshot, once the streams read from it are gone.
    pub async fn close(self) -> Result<(), Error> {
        match Arc::try_unwrap(self.txn) {
            Ok(txn) => Ok(txn.commit().await?),
            // A stream still holds it: it rolls back when the last goes.
            Err(_) => Ok(()),
        }
    }
}

/// The tenant imports are staged under. Tenants are letters, digits and
/// `-_.:@`, so no key or setting names this one, and no request sees what
/// is staged.
const STAGING_TENANT: &str = "!staging";

/// Lapsed staged imports purged when an import starts (the sweeper takes
/// the rest, when it runs).
const PURGE_BATCH: u64 = 16;

/// Staged messages deleted per statement when a staging goes.
const DISCARD_BATCH: u64 = 5_000;

/// An import being staged: the rows arrive under a session of their own.
/// Dropped before it is switched in or discarded (its request given up),
/// it is discarded in the background.
pub struct Staging {
    db: Conn,
    id: String,
    settled: bool,
}

impl Staging {
    /// Starts staging an import that may take up to `lifetime`. Its
    /// session lapses soon after that, so the rows of an import that never
    /// finishes (its process killed) are deleted as any lapsed session's.
    pub async fn open(db: &Conn, lifetime: Duration) -> Result<Self, Error> {
        // Best effort: the sweeper takes what is left.
        if let Err(e) = retention::purge_lapsed_of(db, STAGING_TENANT, PURGE_BATCH).await {
            tracing::warn!(error = %e, "lapsed imports were not purged");
        }
        let id = uuid::Uuid::new_v4().to_string();
        let staged = NewSession {
            session_id: id.clone(),
            session_type: "IMPORT".into(),
            metadata: JsonText::parse("{}".into()).map_err(|_| Error::Internal)?,
            created_at: None,
            updated_at: None,
            ttl_seconds: lifetime.as_secs().saturating_add(60),
        };
        sessions::create(db, STAGING_TENANT, staged).await?;
        Ok(Self { db: db.clone(), id, settled: false })
    }

    fn place(&self) -> Place<'_> {
        Place { tenant: STAGING_TENANT, session_id: &self.id }
    }

    /// Stages an agent (its keys and version are set here), replacing
    /// one staged before under its id. With `adopts`, the messages staged
    /// under that placeholder agent become its own.
    pub async fn agent(&self, mut agent: agent::Model, adopts: Option<&str>) -> Result<(), Error> {
        use agent::Column as A;
        (agent.tenant_id, agent.session_id) = (STAGING_TENANT.into(), self.id.clone());
        agent.version = version::first();
        let agent_id = agent.agent_id.clone();
        let replace = OnConflict::columns([A::TenantId, A::SessionId, A::AgentId])
            .update_columns([
                A::State,
                A::ConversationManagerState,
                A::InternalState,
                A::CreatedAt,
                A::UpdatedAt,
            ])
            .to_owned();
        let insert = agent::Entity::insert(agent.into_active_model().reset_all()).on_conflict(replace);
        super::insert(&self.db, insert.into_query()).await?;
        if let Some(placeholder) = adopts {
            self.adopt(placeholder, &agent_id).await?;
        }
        Ok(())
    }

    /// Stages a placeholder agent `id` for messages that come before
    /// their agent is known.
    pub async fn placeholder(&self, id: &str) -> Result<(), Error> {
        let empty = JsonText::parse("{}".into()).map_err(|_| Error::Internal)?;
        let at = super::now();
        let agent = agent::Model {
            tenant_id: String::new(),
            session_id: String::new(),
            agent_id: id.to_owned(),
            state: empty.clone(),
            conversation_manager_state: empty.clone(),
            internal_state: empty,
            version: 0,
            created_at: at,
            updated_at: at,
        };
        self.agent(agent, None).await
    }

    /// Moves the messages of the placeholder agent to `agent_id` (each
    /// replacing one of its own of the same id), and drops the placeholder.
    async fn adopt(&self, placeholder: &str, agent_id: &str) -> Result<(), Error> {
        use message::Column as M;
        let of = |agent: &str| {
            Condition::all()
                .add(M::TenantId.eq(STAGING_TENANT))
                .add(M::SessionId.eq(self.id.as_str()))
                .add(M::AgentId.eq(agent))
        };
        let replaced =
            Query::select().column(M::MessageId).from(message::Entity).cond_where(of(placeholder)).to_owned();
        let statements = [
            self.db.backend().build(
                &Query::delete()
                    .from_table(message::Entity)
                    .cond_where(of(agent_id))
                    .and_where(Expr::col(M::MessageId).in_subquery(replaced))
                    .to_owned(),
            ),
            self.db.backend().build(
                &Query::update()
                    .table(message::Entity)
                    .value(M::AgentId, agent_id)
                    .cond_where(of(placeholder))
                    .to_owned(),
            ),
            self.db.backend().build(
                &Query::delete()
                    .from_table(agent::Entity)
                    .cond_where(
                        Condition::all()
                            .add(agent::Column::TenantId.eq(STAGING_TENANT))
                            .add(agent::Column::SessionId.eq(self.id.as_str()))
                            .add(agent::Column::AgentId.eq(placeholder)),
                    )
                    .to_owned(),
            ),
        ];
        for statement in statements {
            self.db.writes().execute_raw(statement).await?;
        }
        Ok(())
    }

    /// Stages messages of agents already staged (their keys are set
    /// here); of several with one id, the last is kept, and it replaces
    /// one staged before.
    pub async fn messages(&self, messages: Vec<message::Model>) -> Result<(), Error> {
        use message::Column as M;
        let mut kept: Vec<message::Model> = Vec::with_capacity(messages.len());
        for mut message in messages.into_iter().rev() {
            if !kept.iter().any(|k| k.agent_id == message.agent_id && k.message_id == message.message_id) {
                (message.tenant_id, message.session_id) = (STAGING_TENANT.into(), self.id.clone());
                kept.push(message);
            }
        }
        if kept.is_empty() {
            return Ok(());
        }
        let replace = OnConflict::columns([M::TenantId, M::SessionId, M::AgentId, M::MessageId])
            .update_columns([M::Message, M::RedactMessage, M::CreatedAt, M::UpdatedAt])
            .to_owned();
        let rows = kept.into_iter().rev().map(|m| m.into_active_model().reset_all());
        super::insert(&self.db, message::Entity::insert_many(rows).on_conflict(replace).into_query()).await?;
        Ok(())
    }

    /// Stages a multi-agent state (its keys and version are set here),
    /// replacing one staged before under its id.
    pub async fn multi_agent(&self, mut state: multi_agent::Model) -> Result<(), Error> {
        use multi_agent::Column as G;
        (state.tenant_id, state.session_id) = (STAGING_TENANT.into(), self.id.clone());
        state.version = version::first();
        let replace = OnConflict::columns([G::TenantId, G::SessionId, G::MultiAgentId])
            .update_columns([G::State, G::CreatedAt, G::UpdatedAt])
            .to_owned();
        let insert = multi_agent::Entity::insert(state.into_active_model().reset_all()).on_conflict(replace);
        super::insert(&self.db, insert.into_query()).await?;
        Ok(())
    }

    /// Makes the staged rows and `blobs` the session `session_id` of
    /// `tenant` (with the row `session`, if the document has one), in one
    /// transaction; 409 when that session exists, as a row or as blobs.
    /// The staging goes either way.
    pub async fn switch(
        self,
        tenant: &str,
        session_id: &str,
        session: Option<NewSession>,
        blobs: &Staged,
    ) -> Result<Option<session::Model>, Error> {
        let switched = async {
            let txn = self.db.begin().await?;
            // First, so imports of one session go one after another.
            blobs.hold(&txn).await.map_err(|e| conflict_is_taken(e, session_id))?;
            // Held against the sweeper (which skips locked rows): staged
            // rows that lapsed meanwhile are not half copied.
            let staged = Query::select()
                .expr(Expr::val(1))
                .from(session::Entity)
                .and_where(session::Column::TenantId.eq(STAGING_TENANT))
                .and_where(session::Column::SessionId.eq(self.id.as_str()))
                .lock(LockType::Update)
                .to_owned();
            if txn.reads().query_one(&staged).await?.is_none() {
                return Err(Error::Unavailable(
                    "the import took too long and its staged rows lapsed; send it again".into(),
                ));
            }
            let made = match session {
                Some(session) => {
                    let made = sessions::create_in(&txn, tenant, session).await?;
                    copy_tree(&txn, self.place(), Place { tenant, session_id }, None).await?;
                    Some(made)
                }
                None => {
                    vacant(&txn, tenant, session_id).await?;
                    None
                }
            };
            blobs.switch(&txn).await.map_err(|e| conflict_is_taken(e, session_id))?;
            txn.commit().await?;
            Ok(made)
        }
        .await;
        self.discard().await;
        switched
    }

    /// Deletes what was staged (if that fails, the staging lapses anyway).
    pub async fn discard(mut self) {
        self.settled = true;
        remove(&self.db, &self.id).await;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (db, id) = (self.db.clone(), std::mem::take(&mut self.id));
            runtime.spawn(async move { remove(&db, &id).await });
        }
    }
}

/// The refusal of an import whose session exists.
pub fn taken(session_id: &str) -> Error {
    Error::Conflict(format!("session `{session_id}` already exists"))
}

/// Refuses (409) when session `session_id` has a live row, within the
/// transaction about to give it snapshot blobs only. A lapsed row the
/// sweeper has not reached is purged first: it would take the blobs with
/// it when it is.
pub(super) async fn vacant(txn: &Txn, tenant: &str, session_id: &str) -> Result<(), Error> {
    retention::purge_lapsed(txn, tenant, session_id).await?;
    match sessions::get(txn, tenant, session_id).await {
        Ok(_) => Err(taken(session_id)),
        Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Refuses (409) when session `session_id` exists as the database stands
/// now (outside any transaction): a live row, or a blob under its prefix.
pub async fn refuse_taken(db: &Conn, tenant: &str, session_id: &str) -> Result<(), Error> {
    match sessions::get(db, tenant, session_id).await {
        Ok(_) => return Err(taken(session_id)),
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    if snapshots::exist(db, tenant, session_id).await? {
        return Err(taken(session_id));
    }
    Ok(())
}

/// `e`, said as [`taken`] when it is a conflict.
pub(super) fn conflict_is_taken(e: Error, session_id: &str) -> Error {
    match e {
        Error::Conflict(_) => taken(session_id),
        other => other,
    }
}

/// Deletes the staging `id`: its messages a batch at a time (each
/// statement short, however large the import), then the rest with it.
async fn remove(db: &Conn, id: &str) {
    use message::Column as M;
    let removed = async {
        let staged = Condition::all().add(M::TenantId.eq(STAGING_TENANT)).add(M::SessionId.eq(id));
        loop {
            let batch = super::delete_due(
                message::Entity,
                [M::TenantId, M::SessionId, M::AgentId, M::MessageId],
                staged.clone().into(),
                M::MessageId,
                DISCARD_BATCH,
            );
            if db.writes().execute_raw(db.backend().build(&batch)).await?.rows_affected() == 0 {
                break;
            }
        }
        sessions::delete(db, STAGING_TENANT, id, Fence::default()).await
    };
    if let Err(e) = removed.await {
        tracing::warn!(error = %e, "an import's staged rows stay until they lapse");
    }
}
