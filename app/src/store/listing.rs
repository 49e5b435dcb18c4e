//! Listings read in chunks of bounded size. A page is fetched a few MiB at a
//! time: each chunk query asks for the rest of the page but returns rows
//! only while their running size (`octet_length` of the JSON columns,
//! known to the database without reading the documents) stays under
//! [`CHUNK_BYTES`], always at least one row; the next chunk continues after
//! the last row by its sort key. So a listing holds a few MiB whatever its
//! page size and row size, every statement is short (well inside
//! `statement_timeout`), and no connection is held while a slow client
//! reads. A page under the chunk size, the usual case, takes one plain
//! query that checks the page's size before it reads it, and carries the
//! counts that describe the page.

use std::collections::VecDeque;

use futures::{Stream, stream};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable, ModelTrait,
    PrimaryKeyToColumn, QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Value,
    sea_query::{
        Alias, Asterisk, Condition, Expr, ExprTrait, Frame, FrameType, Func, JoinType, Order, Query,
        SelectStatement, SubQueryStatement, WindowStatement,
    },
};

use super::count_value;
use crate::{
    db::{Conn, Db},
    error::Error,
};

/// The size a chunk of a listing stays under (unless one row alone is larger).
const CHUNK_BYTES: i64 = 4 * 1024 * 1024;

/// What to list: the rows `select` filters, in `order` (a unique key),
/// `offset` and `limit` of them, sized by the `payload` columns.
pub struct Listing<E: EntityTrait> {
    pub select: Select<E>,
    pub order: Vec<(E::Column, Order)>,
    pub payload: Vec<E::Column>,
    pub offset: u64,
    pub limit: u64,
    /// `SELECT COUNT(*) …` statements answered with the first chunk.
    pub counts: Vec<SelectStatement>,
}

/// A row as a listing hands it out: a whole `Model` by default, or a
/// leaner row read from the result as it is written out.
pub trait Listed<E: EntityTrait>: Sized + Send + Sync + 'static {
    /// The row from its result.
    fn read(row: QueryResult) -> Result<Self, DbErr>;
    /// The row's values of `columns` (a listing's sort key).
    fn key(&self, columns: &[E::Column]) -> Result<Vec<Value>, DbErr>;
}

impl<E, M> Listed<E> for M
where
    E: EntityTrait<Model = M>,
    M: ModelTrait<Entity = E> + FromQueryResult + Send + Sync + 'static,
{
    fn read(row: QueryResult) -> Result<Self, DbErr> {
        M::from_query_result(&row, "")
    }

    fn key(&self, columns: &[E::Column]) -> Result<Vec<Value>, DbErr> {
        Ok(columns.iter().map(|column| self.get(*column)).collect())
    }
}

/// A page that has at least one row: its counts, and its rows in order.
pub struct Rows<E: EntityTrait, R = <E as EntityTrait>::Model, D = Conn> {
    /// The values of the listing's count statements, in order.
    pub counts: Vec<u64>,
    state: Chunks<E, R, D>,
}

/// Where the reading of a page stands.
struct Chunks<E: EntityTrait, R, D> {
    /// The database, or a transaction whose snapshot the rows come from.
    db: D,
    listing: Listing<E>,
    ready: VecDeque<R>,
    /// The sort key of the last row read, when more rows remain.
    after: Option<Vec<Value>>,
    /// Rows of the page not read yet.
    left: u64,
}

/// Reads the first chunk of `listing`; `None` when the page is empty (the
/// caller then tells "past the end" from "parent missing").
pub async fn open<E, R>(db: &Conn, listing: Listing<E>) -> Result<Option<Rows<E, R>>, Error>
where
    E: EntityTrait,
    R: Listed<E>,
{
    open_on(db.clone(), listing).await
}

/// [`open`] on any database handle, such as a shared snapshot transaction.
pub async fn open_on<E, R, D>(db: D, listing: Listing<E>) -> Result<Option<Rows<E, R, D>>, Error>
where
    E: EntityTrait,
    R: Listed<E>,
    D: Db + Send + 'static,
{
    let left = listing.limit;
    let mut state = Chunks { db, listing, ready: VecDeque::new(), after: None, left };
    let counts = match state.fetch_whole_page().await? {
        Some(counts) => counts,
        // Empty, or larger than a chunk: read it in chunks.
        None => match state.fetch(true).await? {
            Some(counts) => counts,
            None => return Ok(None),
        },
    };
    Ok(Some(Rows { counts, state }))
}

impl<E, R, D> Rows<E, R, D>
where
    E: EntityTrait,
    R: Listed<E>,
    D: Db + Send + 'static,
{
    /// The rows, read a chunk at a time as they are asked for.
    pub fn into_stream(self) -> impl Stream<Item = Result<R, Error>> + Send + 'static {
        stream::unfold(Some(self.state), |state| async move {
            let mut state = state?;
            if state.ready.is_empty()
                && state.after.is_some()
                && let Err(e) = state.fetch(false).await
            {
                return Some((Err(e), None));
            }
            let row = state.ready.pop_front()?;
            Some((Ok(row), Some(state)))
        })
    }
}

const ROW_BYTES: &str = "row_bytes";
const RUNNING_BYTES: &str = "running_bytes";
const PAGE_ROWS: &str = "page_rows";
const POSITION: &str = "position";

impl<E, R, D> Chunks<E, R, D>
where
    E: EntityTrait,
    R: Listed<E>,
    D: Db + Send + 'static,
{
    /// The values of the listing's count statements, as the first row of
    /// a first chunk carries them.
    fn counts(&self, first: &QueryResult) -> Result<Vec<u64>, Error> {
        (0..self.listing.counts.len())
            .map(|i| Ok(count_value(first.try_get::<i64>("", &format!("count_{i}"))?)))
            .collect()
    }

    /// The usual case in one plain query: the whole page, when it holds rows
    /// and they fit in a chunk (the query itself checks, from the sizes of
    /// the page's documents, before it reads any of them); the listing's
    /// counts then, else `None`.
    async fn fetch_whole_page(&mut self) -> Result<Option<Vec<u64>>, Error> {
        let listing = &self.listing;
        let ordered = |mut select: Select<E>| {
            for (column, order) in &listing.order {
                select = select.order_by(*column, order.clone());
            }
            select.offset(listing.offset).limit(listing.limit)
        };
        let mut sizes = ordered(listing.select.clone().select_only()).into_query();
        sizes.expr_as(row_bytes(&listing.payload), Alias::new(ROW_BYTES));
        let mut page_bytes = Query::select();
        page_bytes
            .expr(Func::coalesce([Func::sum(Expr::col(Alias::new(ROW_BYTES))).into(), Expr::val(0)]))
            .from_subquery(sizes, Alias::new("page"));
        let mut query = ordered(listing.select.clone()).into_query();
        query.and_where(
            Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(page_bytes))).lt(CHUNK_BYTES),
        );
        for (i, count) in listing.counts.iter().enumerate() {
            query.expr_as(
                Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(count.clone()))),
                Alias::new(format!("count_{i}")),
            );
        }
        let rows = self.db.reads().query_all(&query).await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let counts = self.counts(first)?;
        for row in rows {
            self.ready.push_back(R::read(row)?);
        }
        Ok(Some(counts))
    }

    /// Reads the next chunk into `ready`; the listing's counts when there
    /// was a row (from a first chunk: `first`).
    async fn fetch(&mut self, first: bool) -> Result<Option<Vec<u64>>, Error> {
        let query = self.chunk_query(first);
        let rows = self.db.reads().query_all(&query).await?;
        let Some(head) = rows.first() else {
            self.after = None;
            return Ok(None);
        };
        let page_rows = head.try_get::<i64>("", PAGE_ROWS).map(count_value)?;
        let counts = if first { self.counts(head)? } else { Vec::new() };
        let read = rows.len() as u64;
        // The chunk comes unordered (sorting it in the database would copy
        // every document once more); its positions put it in order.
        let mut chunk = rows
            .into_iter()
            .map(|row| Ok((row.try_get::<i64>("", POSITION)?, R::read(row)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        chunk.sort_unstable_by_key(|(position, _)| *position);
        self.ready.extend(chunk.into_iter().map(|(_, row)| row));
        self.left = self.left.saturating_sub(read);
        // Cut short by the size bound: continue after the last row.
        self.after = match self.ready.back() {
            Some(last) if read < page_rows && self.left > 0 => {
                let columns: Vec<E::Column> = self.listing.order.iter().map(|(column, _)| *column).collect();
                Some(last.key(&columns)?)
            }
            _ => None,
        };
        Ok(Some(counts))
    }

    /// The chunk's rows: the page is first read as keys and sizes only
    /// (`page`), its running size and positions computed over those
    /// (`sized`), and the whole rows fetched by key for the part that fits.
    fn chunk_query(&self, first: bool) -> SelectStatement {
        let listing = &self.listing;
        let mut keys: Vec<E::Column> = E::PrimaryKey::iter().map(|key| key.into_column()).collect();
        for (column, _) in &listing.order {
            if !keys.iter().any(|key| key.as_str() == column.as_str()) {
                keys.push(*column);
            }
        }
        let mut page = listing.select.clone().select_only().columns(keys.clone());
        for (column, order) in &listing.order {
            page = page.order_by(*column, order.clone());
        }
        page = match &self.after {
            Some(after) => page.filter(after_key(&listing.order, after)),
            None => page.offset(listing.offset),
        };
        let mut page = page.limit(self.left).into_query();
        page.expr_as(row_bytes(&listing.payload), Alias::new(ROW_BYTES));
        let counts: Vec<Alias> = (0..if first { listing.counts.len() } else { 0 })
            .map(|i| Alias::new(format!("count_{i}")))
            .collect();
        for (count, alias) in listing.counts.iter().zip(&counts) {
            page.expr_as(
                Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(count.clone()))),
                alias.clone(),
            );
        }
        let mut in_order = WindowStatement::new();
        for (column, order) in &listing.order {
            in_order.order_by(*column, order.clone());
        }
        let mut running = in_order.clone();
        running.frame_start(FrameType::Rows, Frame::UnboundedPreceding);
        let mut sized = Query::select();
        sized
            .column(Asterisk)
            .expr_window_as(Func::sum(Expr::col(Alias::new(ROW_BYTES))), running, Alias::new(RUNNING_BYTES))
            .expr_window_as(Func::cust("ROW_NUMBER"), in_order, Alias::new(POSITION))
            .expr_window_as(Func::count(Expr::col(Asterisk)), WindowStatement::new(), Alias::new(PAGE_ROWS))
            .from_subquery(page, Alias::new("page"));
        let table = E::default();
        let sized_as = Alias::new("sized");
        let same_row = E::PrimaryKey::iter().fold(Condition::all(), |all, key| {
            let column = key.into_column();
            all.add(Expr::col((table, column)).equals((sized_as.clone(), column)))
        });
        let mut chunk = Query::select();
        chunk
            .columns(E::Column::iter().map(|column| (table, column)))
            .column((sized_as.clone(), Alias::new(PAGE_ROWS)))
            .column((sized_as.clone(), Alias::new(POSITION)))
            .columns(counts.into_iter().map(|alias| (sized_as.clone(), alias)))
            .from(table)
            .join_subquery(JoinType::InnerJoin, sized, sized_as.clone(), same_row)
            .and_where(
                Expr::col((sized_as.clone(), Alias::new(RUNNING_BYTES)))
                    .sub(Expr::col((sized_as.clone(), Alias::new(ROW_BYTES))))
                    .lt(CHUNK_BYTES),
            );
        chunk
    }
}

/// The bytes of a row's JSON columns.
fn row_bytes<C: ColumnTrait>(payload: &[C]) -> Expr {
    payload
        .iter()
        .map(|column| {
            let bytes: Expr = Func::cust("octet_length").arg(Expr::col(*column)).into();
            Expr::from(Func::coalesce([bytes, Expr::val(0)]))
        })
        .reduce(|a, b| a.add(b))
        .unwrap_or_else(|| Expr::val(0))
}

/// Rows after `key` in `order`: `(a > x) OR (a = x AND b > y) …`.
fn after_key<C: ColumnTrait>(order: &[(C, Order)], key: &[Value]) -> Condition {
    let mut any = Condition::any();
    for (i, ((column, direction), value)) in order.iter().zip(key).enumerate() {
        let beyond = match direction {
            Order::Desc => column.lt(value.clone()),
            _ => column.gt(value.clone()),
        };
        let equal_before =
            order.iter().zip(key).take(i).fold(Condition::all(), |all, ((c, _), v)| all.add(c.eq(v.clone())));
        any = any.add(equal_before.add(beyond));
    }
    any
}

/// One page of a listing and the number of rows the listing has in all.
pub struct Page<E: EntityTrait, R = <E as EntityTrait>::Model> {
    pub total: u64,
    /// `None` when the page is empty.
    pub rows: Option<Rows<E, R>>,
}

impl<E, R> Page<E, R>
where
    E: EntityTrait,
    R: Listed<E>,
{
    /// The page's rows, as they are read.
    pub fn into_stream(self) -> impl Stream<Item = Result<R, Error>> + Send + 'static {
        use futures::StreamExt;
        match self.rows {
            Some(rows) => rows.into_stream().left_stream(),
            None => stream::empty().right_stream(),
        }
    }
}
