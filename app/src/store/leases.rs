//! Session leases: one writer per session, fenced by tokens.
//!
//! A lease lives on its session's row (`lease_holder`, `lease_token`,
//! `lease_expires_at`, the database's clock in microseconds), so a write
//! of the session's tree checks it where it already checks the session is
//! alive: [`Fence::admits`], inside the write's own statement. On
//! PostgreSQL that check takes the session row `FOR KEY SHARE` (as a
//! foreign key check would) and a grant takes it `FOR UPDATE` first, so the
//! two exclude each other: a write that passed its check commits before a
//! new grant can, and one that waited for a grant sees it (READ COMMITTED
//! rechecks a locked row's newest version) and is refused. SQLite runs one
//! write at a time. A token is the database's clock at the grant, pushed
//! past the previous token: it only grows for a session id, also across
//! deletion and re-creation (whose grants come later by the clock). A
//! release (or a forced break) ends the lease now and forgets its holder;
//! a lapsed lease that still names one was never released.

use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DeriveIden, QueryResult, StatementBuilder,
    sea_query::{Condition, Expr, ExprTrait, Func, LockType, Query, SimpleExpr, UpdateStatement},
};

use super::{retention::unexpired, sessions};
use crate::{
    db::{Db, clock::now_micros},
    error::{Error, LeaseRefusal},
};

/// The lease's columns of `sessions`.
#[derive(Clone, Copy, DeriveIden)]
enum Column {
    #[sea_orm(iden = "lease_holder")]
    Holder,
    #[sea_orm(iden = "lease_token")]
    Token,
    #[sea_orm(iden = "lease_expires_at")]
    ExpiresAt,
}

/// A lease as the API shows it.
#[derive(Clone, Debug)]
pub struct Granted {
    pub holder: String,
    pub token: i64,
    pub expires_at: DateTime<Utc>,
    /// Milliseconds left, by the database's clock.
    pub ttl_ms: i64,
}

/// The lease a write of a session's tree is made under: the request's
/// `Lease-Token`, if it sent one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fence(pub Option<i64>);

impl Fence {
    /// The session row in scope lets this write through: with a token, the
    /// session's current one (live, or lapsed with no grant since); without
    /// one, while no lease is live.
    pub fn admits(self, backend: DatabaseBackend) -> Condition {
        match self.0 {
            Some(token) => Condition::all().add(column(Column::Token).eq(token)),
            None => no_live_lease(backend),
        }
    }

    /// The condition a write of the session's tree carries: the session
    /// exists, has not lapsed and lets this write through, its row locked
    /// against grants until the write commits (see the module's
    /// documentation; SQLite's builder writes no lock).
    pub fn guard(self, backend: DatabaseBackend, tenant: &str, session_id: &str) -> SimpleExpr {
        Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(session::Entity)
                .cond_where(session_row(tenant, session_id, backend))
                .cond_where(self.admits(backend))
                .lock(LockType::KeyShare)
                .to_owned(),
        )
    }
}

/// [`Fence::admits`] for a token that is SQL (a column of each row a
/// statement writes; NULL for none).
pub fn admits_token(backend: DatabaseBackend, token: Expr) -> Condition {
    Condition::any()
        .add(Condition::all().add(token.clone().is_null()).add(no_live_lease(backend)))
        .add(column(Column::Token).eq(token))
}

fn column(c: Column) -> Expr {
    Expr::col((session::Entity, c))
}

/// No lease of the session row in scope is live.
fn no_live_lease(backend: DatabaseBackend) -> Condition {
    Condition::any()
        .add(column(Column::Token).is_null())
        .add(column(Column::ExpiresAt).lte(now_micros(backend)))
}

fn session_row(tenant: &str, session_id: &str, backend: DatabaseBackend) -> Condition {
    Condition::all()
        .add(Expr::col((session::Entity, session::Column::TenantId)).eq(tenant))
        .add(Expr::col((session::Entity, session::Column::SessionId)).eq(session_id))
        .add(unexpired(backend))
}

/// An update of the session's lease columns, returning them and now.
fn update(backend: DatabaseBackend, tenant: &str, session_id: &str) -> UpdateStatement {
    let mut update = Query::update();
    update
        .table(session::Entity)
        .cond_where(session_row(tenant, session_id, backend))
        .returning(Query::returning().exprs(Row::columns(backend)));
    update
}

/// The lease columns and now, as a returned or selected row holds them.
struct Row {
    holder: Option<String>,
    token: Option<i64>,
    expires_at: Option<i64>,
    now: i64,
}

impl Row {
    /// What a statement returns or selects for [`Row::read`].
    fn columns(backend: DatabaseBackend) -> [Expr; 4] {
        [
            Expr::col(Column::Holder),
            Expr::col(Column::Token),
            Expr::col(Column::ExpiresAt),
            now_micros(backend),
        ]
    }

    fn read(row: &QueryResult) -> Result<Self, Error> {
        Ok(Self {
            holder: row.try_get_by_index(0)?,
            token: row.try_get_by_index(1)?,
            expires_at: row.try_get_by_index(2)?,
            now: row.try_get_by_index(3)?,
        })
    }

    /// The lease, live or not, if one was ever granted.
    fn lease(&self) -> Option<Granted> {
        let (token, expires_at) = (self.token?, self.expires_at?);
        Some(Granted {
            holder: self.holder.clone().unwrap_or_default(),
            token,
            expires_at: DateTime::from_timestamp_micros(expires_at).unwrap_or_default(),
            ttl_ms: Ord::max(expires_at - self.now, 0) / 1000,
        })
    }

    /// The lease, if it is live.
    fn live(&self) -> Option<Granted> {
        self.lease().filter(|_| self.expires_at > Some(self.now))
    }
}

async fn returned<S: StatementBuilder>(db: &impl Db, statement: &S) -> Result<Option<Row>, Error> {
    let row = db.writes().query_one_raw(db.backend().build(statement)).await?;
    row.as_ref().map(Row::read).transpose()
}

/// The session's lease row; 404 when the session is missing or lapsed.
async fn read(db: &impl Db, tenant: &str, session_id: &str) -> Result<Row, Error> {
    let backend = db.backend();
    let select = Query::select()
        .exprs(Row::columns(backend))
        .from(session::Entity)
        .cond_where(session_row(tenant, session_id, backend))
        .to_owned();
    let row = db.reads().query_one_raw(backend.build(&select)).await?;
    row.as_ref().map(Row::read).transpose()?.ok_or_else(|| sessions::not_found(session_id))
}

/// What [`acquire`] did.
#[derive(Clone, Debug)]
pub struct Acquired {
    pub lease: Granted,
    /// A grant that replaced a lease which lapsed unreleased.
    pub after_expiry: bool,
}

/// Grants the lease to `holder` for `ttl_seconds` when none is live
/// (`token` `None`), or renews the lease whose token is `token`.
pub async fn acquire(
    db: &impl Db,
    tenant: &str,
    session_id: &str,
    holder: &str,
    ttl_seconds: u32,
    token: Option<i64>,
) -> Result<Acquired, Error> {
    let backend = db.backend();
    let now = now_micros(backend);
    let expires_at = now.clone().add(i64::from(ttl_seconds) * 1_000_000);
    let mut statement = update(backend, tenant, session_id);
    statement.value(Column::Holder, holder).value(Column::ExpiresAt, expires_at);
    let mut after_expiry = false;
    match token {
        // A released or broken lease forgot its holder: it cannot come back.
        Some(token) => {
            statement
                .and_where(Expr::col(Column::Token).eq(token))
                .and_where(Expr::col(Column::Holder).is_not_null());
        }
        None => {
            // A live lease refuses at once; a lapsed one still holding its
            // holder was never released (counted as an expiry).
            let before = read(db, tenant, session_id).await?;
            if let Some(refused) = refusal(&before, Fence(None)) {
                return Err(refused);
            }
            after_expiry = before.holder.is_some() && before.token.is_some();
            // Past the previous token, whatever the clock says.
            let next = Expr::col(Column::Token).add(1);
            let after = Func::coalesce([next, Expr::val(0i64)]);
            statement
                .value(Column::Token, Func::greatest([now.clone(), Expr::from(after)]))
                .cond_where(Fence(None).admits(backend))
                // Waits for the writes that passed their check to commit.
                .and_where(Expr::exists(
                    Query::select()
                        .expr(Expr::val(1))
                        .from(session::Entity)
                        .cond_where(session_row(tenant, session_id, backend))
                        .lock(LockType::Update)
                        .to_owned(),
                ));
        }
    }
    if let Some(lease) = returned(db, &statement).await?.and_then(|row| row.lease()) {
        return Ok(Acquired { lease, after_expiry });
    }
    // Refused: say why, by the state the refusal saw (or a later one). A
    // renewal is refused only when its token is no longer the current one,
    // or its lease was released or broken.
    let row = read(db, tenant, session_id).await?;
    let refused = match token {
        Some(_) => Some(lost(&row)),
        None => refusal(&row, Fence(None)),
    };
    Err(refused.unwrap_or(Error::Unavailable("the lease changed while it was being granted; retry".into())))
}

/// The live lease, if any; 404 when the session is missing.
pub async fn get(db: &impl Db, tenant: &str, session_id: &str) -> Result<Option<Granted>, Error> {
    Ok(read(db, tenant, session_id).await?.live())
}

/// Ends the lease whose token is `token` (also when it has lapsed).
pub async fn release(db: &impl Db, tenant: &str, session_id: &str, token: i64) -> Result<(), Error> {
    let backend = db.backend();
    let mut statement = update(backend, tenant, session_id);
    statement
        .value(Column::Holder, Option::<String>::None)
        .value(Column::ExpiresAt, Func::least([Expr::col(Column::ExpiresAt), now_micros(backend)]))
        .and_where(Expr::col(Column::Token).eq(token));
    if returned(db, &statement).await?.is_some() {
        return Ok(());
    }
    let row = read(db, tenant, session_id).await?;
    Err(lost(&row))
}

/// Breaks whatever lease is live (an operator's call for a worker that is
/// stuck or gone): it ends now, and its token is replaced by a larger one
/// nobody holds, so the old holder's writes and renewals are refused from
/// now on. Whether one was live.
pub async fn force_release(db: &impl Db, tenant: &str, session_id: &str) -> Result<bool, Error> {
    let backend = db.backend();
    let now = now_micros(backend);
    let next = Func::greatest([now.clone(), Expr::col(Column::Token).add(1)]);
    let mut statement = update(backend, tenant, session_id);
    statement
        .value(Column::Holder, Option::<String>::None)
        .value(Column::Token, next)
        .value(Column::ExpiresAt, now.clone())
        .and_where(Expr::col(Column::ExpiresAt).gt(now));
    if returned(db, &statement).await?.is_some() {
        return Ok(true);
    }
    read(db, tenant, session_id).await.map(|_| false)
}

/// `Ok` when a write under `fence` would pass the session's lease now;
/// 404 when the session is missing, 423 when the lease refuses it.
pub async fn check(db: &impl Db, tenant: &str, session_id: &str, fence: Fence) -> Result<(), Error> {
    let row = read(db, tenant, session_id).await?;
    refusal(&row, fence).map_or(Ok(()), Err)
}

/// Why the lease in `row` refuses a write under `fence`, if it does.
fn refusal(row: &Row, fence: Fence) -> Option<Error> {
    match fence.0 {
        Some(token) if row.token == Some(token) => None,
        Some(_) => Some(lost(row)),
        None => row.live().map(|lease| {
            let retry_after = Ord::max(u64::try_from(lease.ttl_ms).unwrap_or(0).div_ceil(1000), 1);
            Error::Locked(LeaseRefusal {
                lost: false,
                message: format!(
                    "`{}` holds this session's lease until {}; send its `Lease-Token`, or wait",
                    lease.holder,
                    lease.expires_at.to_rfc3339()
                ),
                lease: Some((lease.holder, lease.expires_at)),
                retry_after,
            })
        }),
    }
}

fn lost(row: &Row) -> Error {
    Error::Locked(LeaseRefusal {
        lost: true,
        message: "this `Lease-Token` is not the session's current lease: it was released, broken or granted \
                  to another worker since (or never granted); take the lease again before writing"
            .into(),
        lease: row.lease().map(|lease| (lease.holder, lease.expires_at)),
        retry_after: 0,
    })
}
