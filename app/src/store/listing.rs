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
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic, Iterable, ModelTrait,
    PrimaryKeyToColumn, QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Value,
    sea_query::{
        Alias, Asterisk, Condition, Expr, ExprTrait, Frame, FrameType, Func, JoinType, Order, Query,
        SelectStatement, SubQueryStatement, WindowStatement,
    },
};

use super::count_value;
use crate::{db::Conn, error::Error};

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

/// A page that has at least one row: its counts, and its rows in order.
pub struct Rows<E: EntityTrait> {
    /// The values of the listing's count statements, in order.
    pub counts: Vec<u64>,
    state: Chunks<E>,
}

/// Where the reading of a page stands.
struct Chunks<E: EntityTrait> {
    db: Conn,
    listing: Listing<E>,
    ready: VecDeque<E::Model>,
    /// The sort key of the last row read, when more rows remain.
    after: Option<Vec<Value>>,
    /// Rows of the page not read yet.
    left: u64,
}

/// Reads the first chunk of `listing`; `None` when the page is empty (the
/// caller then tells "past the end" from "parent missing").
pub async fn open<E>(db: &Conn, listing: Listing<E>) -> Result<Option<Rows<E>>, Error>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    let left = listing.limit;
    let mut state = Chunks { db: db.clone(), listing, ready: VecDeque::new(), after: None, left };
    let first = match state.fetch_whole_page().await? {
        Some(first) => first,
        // Empty, or larger than a chunk: read it in chunks.
        None => match state.fetch(true).await? {
            Some(first) => first,
            None => return Ok(None),
        },
    };
    let counts = (0..state.listing.counts.len())
        .map(|i| Ok(count_value(first.try_get::<i64>("", &format!("count_{i}"))?)))
        .collect::<Result<_, Error>>()?;
    Ok(Some(Rows { counts, state }))
}

impl<E> Rows<E>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Send + Sync + 'static,
{
    /// The rows, read a chunk at a time as they are asked for.
    pub fn into_stream(self) -> impl Stream<Item = Result<E::Model, Error>> + Send + 'static {
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

impl<E> Chunks<E>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    /// The usual case in one plain query: the whole page, when it holds rows
    /// and they fit in a chunk (the query itself checks, from the sizes of
    /// the page's documents, before it reads any of them); the first row's
    /// raw result then, else `None`.
    async fn fetch_whole_page(&mut self) -> Result<Option<QueryResult>, Error> {
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
        let rows = self.db.query_all(&query).await?;
        for row in &rows {
            self.ready.push_back(E::Model::from_query_result(row, "")?);
        }
        Ok(rows.into_iter().next())
    }

    /// Reads the next chunk into `ready`; the first row's raw result when
    /// there was one (it carries the counts of the first chunk).
    async fn fetch(&mut self, first: bool) -> Result<Option<QueryResult>, Error> {
        let query = self.chunk_query(first);
        let rows = self.db.query_all(&query).await?;
        let Some(head) = rows.first() else {
            self.after = None;
            return Ok(None);
        };
        let page_rows = head.try_get::<i64>("", PAGE_ROWS).map(count_value)?;
        // The chunk comes unordered (sorting it in the database would copy
        // every document once more); its positions put it in order.
        let mut chunk = rows
            .iter()
            .map(|row| Ok((row.try_get::<i64>("", POSITION)?, E::Model::from_query_result(row, "")?)))
            .collect::<Result<Vec<_>, Error>>()?;
        chunk.sort_unstable_by_key(|(position, _)| *position);
        self.ready.extend(chunk.into_iter().map(|(_, model)| model));
        let read = rows.len() as u64;
        self.left = self.left.saturating_sub(read);
        // Cut short by the size bound: continue after the last row.
        self.after = match self.ready.back() {
            Some(last) if read < page_rows && self.left > 0 => {
                Some(self.listing.order.iter().map(|(column, _)| last.get(*column)).collect())
            }
            _ => None,
        };
        Ok(rows.into_iter().next())
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
pub struct Page<E: EntityTrait> {
    pub total: u64,
    /// `None` when the page is empty.
    pub rows: Option<Rows<E>>,
}

impl<E> Page<E>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Send + Sync + 'static,
{
    /// The page's rows, as they are read.
    pub fn into_stream(self) -> impl Stream<Item = Result<E::Model, Error>> + Send + 'static {
        use futures::StreamExt;
        match self.rows {
            Some(rows) => rows.into_stream().left_stream(),
            None => stream::empty().right_stream(),
        }
    }
}
