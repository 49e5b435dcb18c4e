//! Listings streamed from the database. A page's query runs in a task of
//! its own and hands its rows over one at a time through a channel of one,
//! so however large the page and its rows, a listing holds a row or two in
//! memory; the counts that describe the page ride along as extra columns
//! of the first row, so page and counts still take one round trip.
//!
//! A client that stops reading holds the query (and its connection) until
//! the server's write timeout closes the connection, which ends the task.

use futures::{Stream, StreamExt, stream};
use sea_orm::{
    DatabaseConnection, EntityTrait, FromQueryResult, QueryResult, QueryTrait, Select, StreamTrait,
    sea_query::{Expr, SelectStatement, SubQueryStatement},
};
use tokio::sync::mpsc;

use super::count_value;
use crate::error::Error;

/// A page that has at least one row: its counts, and its rows in order.
pub struct Rows<M> {
    /// The values of the count statements given to [`open`], in order.
    pub counts: Vec<u64>,
    first: M,
    rest: mpsc::Receiver<Result<Row<M>, Error>>,
}

/// A row as the query task hands it over; only the first carries counts.
type Row<M> = (M, Option<Vec<u64>>);

impl<M: Send + 'static> Rows<M> {
    /// The rows, as they arrive from the database.
    pub fn into_stream(self) -> impl Stream<Item = Result<M, Error>> + Send + 'static {
        let mut rest = self.rest;
        let rest = stream::poll_fn(move |cx| rest.poll_recv(cx)).map(|row| row.map(|(model, _)| model));
        stream::once(async move { Ok(self.first) }).chain(rest)
    }
}

/// Starts `select`, with each of `counts` (a `SELECT COUNT(*) …`) as an
/// extra column; `None` when the page is empty (the caller then tells "past
/// the end" from "parent missing").
pub async fn open<E>(
    db: &DatabaseConnection,
    select: Select<E>,
    counts: Vec<SelectStatement>,
) -> Result<Option<Rows<E::Model>>, Error>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Send + 'static,
{
    let mut query = select.into_query();
    let count_columns = counts.len();
    for (i, count) in counts.into_iter().enumerate() {
        query.expr_as(
            Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(count))),
            format!("count_{i}"),
        );
    }
    let statement = db.get_database_backend().build(&query);
    let (tx, mut rest) = mpsc::channel::<Result<Row<E::Model>, Error>>(1);
    let db = db.clone();
    tokio::spawn(async move {
        let mut rows = match db.stream_raw(statement).await {
            Ok(rows) => rows,
            Err(e) => {
                drop(tx.send(Err(e.into())).await);
                return;
            }
        };
        let mut first = true;
        while let Some(row) = rows.next().await {
            let item = row.map_err(Error::from).and_then(|row| {
                let counts = if first { Some(read_counts(&row, count_columns)?) } else { None };
                Ok((E::Model::from_query_result(&row, "")?, counts))
            });
            first = false;
            if tx.send(item).await.is_err() {
                break; // nobody is reading any more
            }
        }
    });
    let Some(first) = rest.recv().await else { return Ok(None) };
    let (first, counts) = first?;
    Ok(Some(Rows { counts: counts.unwrap_or_default(), first, rest }))
}

fn read_counts(row: &QueryResult, n: usize) -> Result<Vec<u64>, Error> {
    (0..n).map(|i| Ok(count_value(row.try_get::<i64>("", &format!("count_{i}"))?))).collect()
}

/// One page of a listing and the number of rows the listing has in all.
pub struct Page<M> {
    pub total: u64,
    /// `None` when the page is empty.
    pub rows: Option<Rows<M>>,
}

impl<M: Send + 'static> Page<M> {
    /// The page's rows, as they arrive.
    pub fn into_stream(self) -> impl Stream<Item = Result<M, Error>> + Send + 'static {
        match self.rows {
            Some(rows) => rows.into_stream().left_stream(),
            None => stream::empty().right_stream(),
        }
    }
}
