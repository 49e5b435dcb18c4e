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

use std::collections::HashMap;

use entity::search_text;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Value};

use super::{
    Range,
    tables::{postgres, sqlite},
};
use crate::{db::Db, error::Error};

/// Words of a search query that count; the rest are ignored.
const MAX_TERMS: usize = 32;

/// A search hit: a key and its relevance, higher is better.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub key: String,
    pub score: f64,
}

/// The tenant's keys with `prefix` whose value contains any of the
/// query's words, best first (ties by key); at most `limit`.
pub async fn search(
    db: &impl Db,
    tenant: &str,
    query: &str,
    prefix: &str,
    limit: u64,
) -> Result<Vec<Hit>, Error> {
    let own = search_text::tenant_prefix(tenant);
    let terms: Vec<String> =
        search_text::terms(query, MAX_TERMS).into_iter().map(|term| format!("{own}{term}")).collect();
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.backend();
    let mut values: Vec<Value> = vec![tenant.into()];
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = match backend {
        DatabaseBackend::Postgres => {
            let any: Vec<String> = terms.iter().map(|t| lexeme(t)).collect();
            values.push(any.join(" | ").into());
            let range = Range::of(prefix).sql("t.key", &mut values, '$');
            values.push(limit.into());
            let sql = format!(
                "SELECT t.key, sum(ts_rank(t.words, q))::float8 AS score FROM blob_text t \
                 JOIN blobs b ON b.tenant_id = t.tenant_id AND b.key = t.key AND b.version = t.version, \
                 CAST($2 AS tsquery) AS q \
                 WHERE t.tenant_id = $1 AND t.words @@ q{range} \
                 GROUP BY t.key ORDER BY score DESC, t.key LIMIT ${}",
                values.len()
            );
            postgres(&sql, values)
        }
        _ => {
            let first = values.len() + 1;
            values.extend(terms.into_iter().map(Value::from));
            let placeholders: Vec<String> = (first..=values.len()).map(|n| format!("?{n}")).collect();
            let range = Range::of(prefix).sql("t.key", &mut values, '?');
            values.push(limit.into());
            // A plain SELECT (no CTE), so it runs on the read pool.
            let sql = format!(
                "SELECT key, sum(n * 2.2 / (n + 1.2)) AS score FROM \
                 (SELECT t.key AS key, sum(hits.n) AS n FROM \
                 (SELECT doc, term, count(*) AS n FROM blob_word_instances WHERE term IN ({}) GROUP BY doc, term) hits \
                 JOIN blob_text t ON t.id = hits.doc \
                 JOIN blobs b ON b.tenant_id = t.tenant_id AND b.key = t.key AND b.version = t.version \
                 WHERE t.tenant_id = ?1{range} GROUP BY t.key, hits.term) \
                 GROUP BY key ORDER BY score DESC, key LIMIT ?{}",
                placeholders.join(", "),
                values.len()
            );
            sqlite(&sql, values)
        }
    };
    let rows = db.reads().query_all_raw(statement).await?;
    rows.iter()
        .map(|r| Ok(Hit { key: r.try_get_by_index(0)?, score: r.try_get_by_index(1)? }))
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
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
