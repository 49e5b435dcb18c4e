//! The inlining behind the pooler mode, fuzzed against a real PostgreSQL:
//! random values of every kind the store can bind, many of them hostile
//! (quotes, backslashes, `$1`, comments, NUL, extremes of each type), are
//! sent both ways, bound to a prepared statement and inlined into simple
//! query text, and the server must see the same type and the same value,
//! or refuse both with the same error. A canary table checks that no value
//! ever runs as SQL.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use sea_orm::{
    Value,
    sqlx::{self, AssertSqlSafe, Connection, Executor, Row, postgres::PgConnection},
};
use sea_query_sqlx::SqlxValues;

use super::postgres_url;
use crate::db::inline;

/// Cases per run; the seed is printed, so a failure can be replayed.
const CASES: usize = 1500;

#[tokio::test]
async fn inlined_values_reach_postgres_exactly_as_bound_ones() {
    let Some(url) = postgres_url() else { return };
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let seed = std::env::var("INLINE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_micros().unsigned_abs() | 1);
    eprintln!("INLINE_SEED={seed}");
    let mut random = Random(seed);
    for case in 0..CASES {
        let values: Vec<Value> = (0..3).map(|_| random.value()).collect();
        let sql = "SELECT pg_typeof($1)::text, ($1)::text, pg_typeof($2)::text, ($2)::text, \
                   /* $1 '$2' */ pg_typeof($3)::text, ($3)::text, '$1' AS \"$2\" -- $3";
        let bound = sqlx::query_with(AssertSqlSafe(sql), SqlxValues(sea_orm::Values(values.clone())))
            .persistent(false)
            .fetch_one(&mut conn)
            .await;
        let text = inline::statement(sql, &values).expect("every kind the store binds can be inlined");
        let inlined = conn.fetch_one(sqlx::raw_sql(AssertSqlSafe(text.clone()))).await;
        match (bound, inlined) {
            (Ok(bound), Ok(inlined)) => {
                for column in 0..7 {
                    let (b, i): (Option<String>, Option<String>) = (bound.get(column), inlined.get(column));
                    assert_eq!(b, i, "case {case}, column {column}, values {values:?}, sent as {text}");
                }
            }
            // Refused both ways. With two bad values the two ways may name
            // different ones first: the lexer reads literals before any
            // value's input function runs.
            (Err(b), Err(i)) => {
                let (b, i) = (code(&b), code(&i));
                let nul = |c: &Option<String>| matches!(c.as_deref(), Some("22021" | "22P05"));
                assert!(b == i || (nul(&b) && nul(&i)), "case {case}: {values:?} refused as {b:?} and {i:?}");
            }
            (b, i) => {
                panic!("case {case}: {values:?} bound {:?}, inlined {:?} (sent as {text})", b.err(), i.err())
            }
        }
    }
}

#[tokio::test]
async fn no_value_runs_as_sql() {
    let Some(url) = postgres_url() else { return };
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    conn.execute("CREATE TEMPORARY TABLE canary (n int8, v text)").await.expect("canary table");
    let mut random = Random(0x5eed);
    let mut stored = 0i64;
    for n in 0..CASES as i64 {
        let hostile = random.text();
        let values = [Value::BigInt(Some(n)), Value::String(Some(hostile.clone()))];
        let sql = inline::statement("INSERT INTO canary (n, v) VALUES ($1, $2) RETURNING v", &values)
            .expect("inlined");
        match conn.fetch_one(sqlx::raw_sql(AssertSqlSafe(sql))).await {
            Ok(row) => {
                assert_eq!(row.get::<String, _>(0), hostile);
                stored += 1;
            }
            // NUL: refused, as a bound value would be.
            Err(e) => {
                assert!(hostile.contains('\0') && code(&e).as_deref() == Some("22021"), "{hostile:?}: {e}")
            }
        }
    }
    let rows: i64 = conn.fetch_one("SELECT COUNT(*) FROM canary").await.expect("count").get(0);
    assert_eq!(rows, stored, "one row per statement, nothing else ran");
}

#[test]
fn what_cannot_be_bound_is_not_inlined_either() {
    assert!(inline::statement("SELECT $1", &[Value::BigUnsigned(Some(u64::MAX))]).is_err());
    assert!(inline::statement("SELECT $1", &[Value::TinyInt(Some(1))]).is_err());
}

fn keep<T>(null: bool, v: T) -> Option<T> {
    if null { None } else { Some(v) }
}

fn code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned())
}

/// A small xorshift generator: enough to vary cases, and replayable.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Text built from pieces that mean something to SQL or to the protocol.
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "'",
            "''",
            "\\",
            "\\'",
            "\"",
            "$1",
            "$2",
            "$$",
            "$a$",
            "--",
            "/*",
            "*/",
            ";",
            "E'",
            "\0",
            "é",
            "😀",
            "\n",
            "\r\n",
            "\t",
            "\u{feff}",
            "\u{7f}",
            "\u{1}",
            "DROP TABLE canary",
            "'); DELETE FROM canary; --",
            "x",
            "0",
            " ",
        ];
        (0..self.below(12)).map(|_| self.pick(PIECES)).collect()
    }

    fn value(&mut self) -> Value {
        let null = self.below(10) == 0;
        let r = self.next();
        match self.below(16) {
            0 => Value::Bool(keep(null, self.below(2) == 0)),
            1 => Value::SmallInt(keep(null, self.pick(&[i16::MIN, -1, 0, 1, i16::MAX, r as i16]))),
            2 => Value::Int(keep(null, self.pick(&[i32::MIN, -1, 0, i32::MAX, r as i32]))),
            3 => Value::BigInt(keep(null, self.pick(&[i64::MIN, -1, 0, i64::MAX, r as i64]))),
            4 => Value::TinyUnsigned(keep(null, self.next() as u8)),
            5 => Value::SmallUnsigned(keep(null, self.next() as u16)),
            6 => Value::Unsigned(keep(null, self.next() as u32)),
            7 => Value::BigUnsigned(keep(null, self.pick(&[0, i64::MAX as u64, r % i64::MAX as u64]))),
            8 => Value::Float(keep(
                null,
                self.pick(&[
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    -0.0,
                    f32::MIN_POSITIVE / 8.0,
                    f32::MAX,
                    f32::from_bits(r as u32),
                ]),
            )),
            9 => Value::Double(keep(
                null,
                self.pick(&[f64::NAN, f64::NEG_INFINITY, -0.0, 5e-324, f64::MAX, 0.1, f64::from_bits(r)]),
            )),
            10 => Value::String(keep(null, self.text())),
            11 => Value::Char(keep(null, self.pick(&['\'', '\\', '$', 'é', '\0', 'z']))),
            12 => Value::Bytes(keep(null, (0..self.below(40)).map(|_| self.next() as u8).collect())),
            13 => {
                // From 4712 BC to past year 250,000: the years PostgreSQL and chrono both have.
                let micros = self.below(8_000_000_000_000_000_000) as i64 - 210_000_000_000_000_000;
                Value::ChronoDateTimeUtc(keep(
                    null,
                    DateTime::<Utc>::from_timestamp_micros(micros).expect("in range"),
                ))
            }
            14 => {
                let offset = FixedOffset::east_opt(self.below(50_000) as i32 - 25_000).expect("an offset");
                let at = offset
                    .timestamp_micros(self.below(4_000_000_000_000_000) as i64)
                    .single()
                    .expect("an instant");
                match self.below(4) {
                    0 => Value::ChronoDateTimeWithTimeZone(keep(null, at)),
                    1 => Value::ChronoDateTime(keep(null, at.naive_utc())),
                    2 => Value::ChronoDate(keep(
                        null,
                        NaiveDate::from_num_days_from_ce_opt(self.below(4_000_000) as i32 - 1_700_000)
                            .expect("a date"),
                    )),
                    _ => Value::ChronoTime(keep(null, at.time())),
                }
            }
            _ => {
                let json = serde_json::json!({ self.text(): [self.text(), self.next() as i64, null, {"n": 1.5e300}] });
                Value::Json(keep(null, Box::new(json)))
            }
        }
    }
}
