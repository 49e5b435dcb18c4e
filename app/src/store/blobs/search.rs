//! Ranked search over the words of a tenant's current values. A value's
//! score depends on that value's words alone, never on statistics over
//! other values (which would let one tenant measure another's data):
//! PostgreSQL's `ts_rank` of each segment, summed; on SQLite, for each
//! query word, its count `n` in the value as `n·2.2/(n+1.2)` (BM25's
//! saturation without the corpus-wide parts), summed.
//!
//! Words are cut here ([`search_text`]), never by a database's parser: on
//! PostgreSQL segments and queries travel as `tsvector` and `tsquery`
//! literals (a literal is parsed several times faster than `to_tsvector`
//! reads text, and matches exactly the words cut here). Every word is
//! indexed behind its tenant's prefix ([`search_text::tenant_prefix`]),
//! so a search reads only its own tenant's postings.
//!
//! A search may bring the values of its best hits along ([`Search::values`]):
//! in the same statement, so each value is the version that was ranked.

use std::collections::HashMap;

use entity::search_text;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, QueryResult, Statement, Value};

use super::{
    Range,
    tables::{postgres, sqlite},
};
use crate::{db::Db, error::Error};

/// Words of a search query that count; the rest are ignored.
const MAX_TERMS: usize = 32;

/// A search hit: a key, its relevance (higher is better) and, when asked
/// for and within the answer's budget, its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub key: String,
    pub score: f64,
    pub data: Option<Vec<u8>>,
}

/// What a search asks for.
#[derive(Clone, Copy, Debug)]
pub struct Search<'a> {
    pub tenant: &'a str,
    /// The words; keys whose value contains any of them match.
    pub query: &'a str,
    pub prefix: &'a str,
    pub limit: u64,
    /// With `Some(budget)`, the values of the best hits come along while
    /// their sizes add up to at most `budget` bytes; from the first that
    /// does not fit, hits come without.
    pub values: Option<u64>,
}

/// The hits, best first, and whether some came without the value asked for.
#[derive(Debug, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub values_truncated: bool,
}

/// The tenant's keys with the prefix whose value contains any of the
/// query's words, best first (ties by key); at most `limit`.
pub async fn search(db: &impl Db, search: Search<'_>) -> Result<Found, Error> {
    let Search { tenant, query, prefix, limit, values: budget } = search;
    let own = search_text::tenant_prefix(tenant);
    let terms: Vec<String> =
        search_text::terms(query, MAX_TERMS).into_iter().map(|term| format!("{own}{term}")).collect();
    if terms.is_empty() {
        return Ok(Found::default());
    }
    let backend = db.backend();
    let mut values: Vec<Value> = vec![tenant.into()];
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ranked = match backend {
        DatabaseBackend::Postgres => {
            let any: Vec<String> = terms.iter().map(|t| lexeme(t)).collect();
            values.push(any.join(" | ").into());
            let range = Range::of(prefix).sql("t.key", &mut values, '$');
            values.push(limit.into());
            format!(
                "SELECT t.key AS key, sum(ts_rank(t.words, q))::float8 AS score, \
                 max(b.version) AS version, max(b.size) AS size FROM blob_text t \
                 JOIN blobs b ON b.tenant_id = t.tenant_id AND b.key = t.key AND b.version = t.version, \
                 CAST($2 AS tsquery) AS q \
                 WHERE t.tenant_id = $1 AND t.words @@ q{range} \
                 GROUP BY t.key ORDER BY score DESC, t.key LIMIT ${}",
                values.len()
            )
        }
        _ => {
            let first = values.len() + 1;
            values.extend(terms.into_iter().map(Value::from));
            let placeholders: Vec<String> = (first..=values.len()).map(|n| format!("?{n}")).collect();
            let range = Range::of(prefix).sql("t.key", &mut values, '?');
            values.push(limit.into());
            format!(
                "SELECT key, sum(n * 2.2 / (n + 1.2)) AS score, max(version) AS version, max(size) AS size FROM \
                 (SELECT t.key AS key, sum(hits.n) AS n, max(b.version) AS version, max(b.size) AS size FROM \
                 (SELECT doc, term, count(*) AS n FROM blob_word_instances WHERE term IN ({}) GROUP BY doc, term) hits \
                 JOIN blob_text t ON t.id = hits.doc \
                 JOIN blobs b ON b.tenant_id = t.tenant_id AND b.key = t.key AND b.version = t.version \
                 WHERE t.tenant_id = ?1{range} GROUP BY t.key, hits.term) \
                 GROUP BY key ORDER BY score DESC, key LIMIT ?{}",
                placeholders.join(", "),
                values.len()
            )
        }
    };
    let Some(budget) = budget else {
        let rows = db.reads().query_all_raw(statement(backend, &ranked, values)).await?;
        let hits = rows
            .iter()
            .map(|r| Ok(Hit { key: r.try_get_by_index(0)?, score: r.try_get_by_index(1)?, data: None }))
            .collect::<Result<_, DbErr>>()?;
        return Ok(Found { hits, values_truncated: false });
    };
    values.push(i64::try_from(budget).unwrap_or(i64::MAX).into());
    let sql = with_values(&ranked, backend, values.len());
    let rows = db.reads().query_all_raw(statement(backend, &sql, values)).await?;
    gather(&rows).map_err(Error::from)
}

/// `ranked` (key, score, version, size; best first) with each hit's
/// chunks in order, for hits whose sizes up to theirs fit the budget
/// (the last placeholder, number `budget`): one row per chunk, one
/// without data for a hit that gets no value or has an empty one. No
/// CTE, so that on SQLite it runs on the read pool.
fn with_values(ranked: &str, backend: DatabaseBackend, budget: usize) -> String {
    let (tenant, budget) = match backend {
        DatabaseBackend::Postgres => ("$1".to_owned(), format!("${budget}")),
        _ => ("?1".to_owned(), format!("?{budget}")),
    };
    format!(
        "SELECT r.key, r.score, r.size, r.upto <= {budget} AS fits, c.data FROM \
         (SELECT h.key, h.score, h.version, h.size, \
         row_number() OVER (ORDER BY h.score DESC, h.key) AS rank, \
         CAST(sum(h.size) OVER (ORDER BY h.score DESC, h.key ROWS UNBOUNDED PRECEDING) AS BIGINT) AS upto \
         FROM ({ranked}) h) r \
         LEFT JOIN blob_chunks c ON c.tenant_id = {tenant} AND c.key = r.key AND c.version = r.version \
         AND r.upto <= {budget} \
         ORDER BY r.rank, c.seq"
    )
}

/// The hits of [`with_values`]' rows, each value put together from its chunks.
fn gather(rows: &[QueryResult]) -> Result<Found, DbErr> {
    let mut found = Found::default();
    let mut sizes = Vec::new();
    for row in rows {
        let key: String = row.try_get_by_index(0)?;
        let chunk: Option<Vec<u8>> = row.try_get_by_index(4)?;
        if found.hits.last().is_none_or(|hit| hit.key != key) {
            let fits: bool = row.try_get_by_index(3)?;
            let data = fits.then(Vec::new);
            found.hits.push(Hit { key, score: row.try_get_by_index(1)?, data });
            sizes.push(row.try_get_by_index::<i64>(2)?);
        }
        if let (Some(data), Some(chunk)) = (found.hits.last_mut().and_then(|h| h.data.as_mut()), chunk) {
            data.extend_from_slice(&chunk);
        }
    }
    for (hit, size) in found.hits.iter_mut().zip(sizes) {
        // A value is whole or not sent (a chunk cannot go missing within
        // one statement; this only guards the answer).
        if hit.data.as_ref().is_some_and(|d| i64::try_from(d.len()) != Ok(size)) {
            hit.data = None;
        }
        found.values_truncated |= hit.data.is_none();
    }
    Ok(found)
}

fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    match backend {
        DatabaseBackend::Postgres => postgres(sql, values),
        _ => sqlite(sql, values),
    }
}

/// A word as a quoted lexeme of a `tsvector` or `tsquery` literal.
fn lexeme(word: &str) -> String {
    format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"))
}

/// A segment's words, each behind `prefix`, as a PostgreSQL `tsvector`
/// literal: each word once,
/// with its first positions (from 1 to 16383, as PostgreSQL keeps them),
/// so `ts_rank` sees how often it occurs. `ts_rank` weighs a word's n-th
/// occurrence by 1/n², so the 16 kept carry all but 4% of what every
/// occurrence would, and the literal (whose parsing is most of the cost
/// of indexing) stays short.
pub(super) fn tsvector(prefix: &str, segment: &str) -> String {
    const MAX_POSITIONS: usize = 16;
    const LAST_POSITION: usize = 16383;
    let mut order: Vec<&str> = Vec::new();
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (at, word) in segment.split(' ').filter(|w| !w.is_empty()).enumerate() {
        let at = (at + 1).min(LAST_POSITION);
        let seen = positions.entry(word).or_insert_with(|| {
            order.push(word);
            Vec::new()
        });
        if seen.len() < MAX_POSITIONS && seen.last() != Some(&at) {
            seen.push(at);
        }
    }
    let mut literal = String::with_capacity(segment.len() * 2);
    for word in order {
        let at: Vec<String> = positions[word].iter().map(usize::to_string).collect();
        literal.push_str(&format!("{}:{} ", lexeme(&format!("{prefix}{word}")), at.join(",")));
    }
    literal.pop();
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsvector_literals_keep_words_and_positions() {
        assert_eq!(tsvector("p", "a b a c"), "'pa':1,3 'pb':2 'pc':4");
        assert_eq!(tsvector("p", ""), "");
        assert_eq!(lexeme("o'neil\\"), "'o''neil\\\\'");
        let many = vec!["w"; 20_000].join(" ");
        let literal = tsvector("", &many);
        assert_eq!(literal.matches(',').count(), 15, "16 positions at most");
        let far: String = (0..17_000).map(|i| format!("x{i} ")).collect::<String>() + "x1";
        assert!(tsvector("", far.trim_end()).contains("'x1':2,16383"), "positions end at 16383");
    }
}
