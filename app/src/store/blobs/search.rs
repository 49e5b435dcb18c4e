//! Ranked search over the words of a tenant's current values. A value's
//! score depends on that value's words alone, never on statistics over
//! other values (which would let one tenant measure another's data):
//! PostgreSQL's `ts_rank` of each segment, summed; on SQLite, for each
//! query word, its count `n` in the value as `n·2.2/(n+1.2)` (BM25's
//! saturation without the corpus-wide parts), summed.

use entity::search_text;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Value};

use super::{Range, statement};
use crate::error::Error;

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
    db: &impl ConnectionTrait,
    tenant: &str,
    query: &str,
    prefix: &str,
    limit: u64,
) -> Result<Vec<Hit>, Error> {
    let terms = search_text::terms(query, MAX_TERMS);
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = vec![tenant.into()];
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = match backend {
        DatabaseBackend::Postgres => {
            // `websearch_to_tsquery` never fails on its input; quoted words
            // joined by `or` match any of them.
            let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
            values.push(quoted.join(" or ").into());
            let range = Range::of(prefix).sql("t.key", &mut values);
            values.push(limit.into());
            format!(
                "SELECT t.key, sum(ts_rank(t.words, q))::float8 AS score FROM blob_text t \
                 JOIN blobs b ON b.tenant_id = t.tenant_id AND b.key = t.key AND b.version = t.version, \
                 websearch_to_tsquery('simple', $2) AS q \
                 WHERE t.tenant_id = $1 AND t.words @@ q{range} \
                 GROUP BY t.key ORDER BY score DESC, t.key LIMIT ${}",
                values.len()
            )
        }
        _ => {
            let first = values.len() + 1;
            values.extend(terms.into_iter().map(Value::from));
            let placeholders: Vec<String> = (first..=values.len()).map(|n| format!("${n}")).collect();
            let range = Range::of(prefix).sql("t.key", &mut values);
            values.push(limit.into());
            format!(
                "WITH hits AS (SELECT doc, term, count(*) AS n FROM blob_word_instances \
                 WHERE term IN ({}) GROUP BY doc, term), \
                 counted AS (SELECT t.key AS key, sum(hits.n) AS n FROM hits JOIN blob_text t ON t.id = hits.doc \
                 JOIN blobs b ON b.tenant_id = t.tenant_id AND b.key = t.key AND b.version = t.version \
                 WHERE t.tenant_id = $1{range} GROUP BY t.key, hits.term) \
                 SELECT key, sum(n * 2.2 / (n + 1.2)) AS score FROM counted \
                 GROUP BY key ORDER BY score DESC, key LIMIT ${}",
                placeholders.join(", "),
                values.len()
            )
        }
    };
    let rows = db.query_all_raw(statement(backend, &sql, values)).await?;
    rows.iter()
        .map(|r| Ok(Hit { key: r.try_get_by_index(0)?, score: r.try_get_by_index(1)? }))
        .collect::<Result<_, DbErr>>()
        .map_err(Error::from)
}
