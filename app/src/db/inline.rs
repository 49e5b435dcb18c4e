//! Statements with their values written into the SQL text, for
//! PostgreSQL's simple query protocol: what a connection shared through a
//! transaction-mode pooler runs, where no prepared statement (not even the
//! unnamed one sqlx parses in a round trip of its own) survives from one
//! round trip to the next.
//!
//! Each value becomes an escape-string literal cast to the type sqlx would
//! have bound it as (`E'42'::int8`, `E'\\x00ff'::bytea`), so the server
//! resolves the statement exactly as it would the prepared one, and nothing
//! in a value is ever read as SQL: quotes and backslashes are escaped, and
//! the one character a literal cannot hold (NUL, which would also end the
//! protocol's query string) is written as the escape `\000`, which
//! PostgreSQL refuses as it refuses a bound NUL. `$n` is replaced only
//! where it is a placeholder, never inside a literal, a quoted name or a
//! comment of the statement itself. app/src/db/tests/inline.rs runs values of
//! every kind through a real server both ways and compares.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sea_orm::{DbErr, Value};

/// `sql` with each `$n` replaced by the literal of `values[n - 1]`.
pub fn statement(sql: &str, values: &[Value]) -> Result<String, DbErr> {
    let literals = values.iter().map(literal).collect::<Result<Vec<_>, _>>()?;
    let extra: usize = literals.iter().map(String::len).sum();
    let mut out = String::with_capacity(sql.len() + extra);
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let skip_to = match bytes[at] {
            b'\'' => quoted_end(bytes, at, b'\''),
            b'"' => quoted_end(bytes, at, b'"'),
            b'-' if bytes.get(at + 1) == Some(&b'-') => line_end(bytes, at),
            b'/' if bytes.get(at + 1) == Some(&b'*') => comment_end(bytes, at),
            b'$' => match placeholder(bytes, at) {
                Some((index, end)) => {
                    let value = index
                        .checked_sub(1)
                        .and_then(|i| literals.get(i))
                        .ok_or_else(|| DbErr::Custom(format!("statement has no value for ${index}")))?;
                    out.push_str(&sql[copied..at]);
                    out.push_str(value);
                    copied = end;
                    end
                }
                None => dollar_quoted_end(bytes, at).unwrap_or(at + 1),
            },
            _ => at + 1,
        };
        at = skip_to;
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// A `$n` at `at` (not part of a name such as `a$1`): its number and where it ends.
fn placeholder(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let after_name = at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
    let digits = bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if after_name || digits == 0 {
        return None;
    }
    let end = at + 1 + digits;
    let index = std::str::from_utf8(&bytes[at + 1..end]).ok()?.parse().ok()?;
    Some((index, end))
}

/// The end of a `'…'` or `"…"` starting at `at` (a doubled quote stays
/// inside; a backslash escapes in `E'…'`).
fn quoted_end(bytes: &[u8], at: usize, quote: u8) -> usize {
    let escapes = quote == b'\''
        && at > 0
        && matches!(bytes[at - 1], b'E' | b'e')
        && (at < 2 || !(bytes[at - 2].is_ascii_alphanumeric() || bytes[at - 2] == b'_'));
    let mut i = at + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escapes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn line_end(bytes: &[u8], at: usize) -> usize {
    bytes[at..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| at + n + 1)
}

/// The end of a `/* … */` comment, which nests in PostgreSQL.
fn comment_end(bytes: &[u8], at: usize) -> usize {
    let (mut depth, mut i) = (0usize, at);
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => (depth, i) = (depth + 1, i + 2),
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of a `$tag$ … $tag$` string starting at `at`, if one starts there.
fn dollar_quoted_end(bytes: &[u8], at: usize) -> Option<usize> {
    let tag_len = bytes[at + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
    let close = at + 1 + tag_len;
    if bytes.get(close) != Some(&b'$') || bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let tag = &bytes[at..=close];
    let body = close + 1;
    let found = bytes[body..].windows(tag.len()).position(|w| w == tag);
    Some(found.map_or(bytes.len(), |n| body + n + tag.len()))
}

/// The literal standing for `value`, typed as sqlx binds it
/// (sea-query-sqlx's PostgreSQL arguments).
fn literal(value: &Value) -> Result<String, DbErr> {
    fn typed(text: Option<String>, pg_type: &str) -> String {
        match text {
            Some(text) => {
                let mut out = String::with_capacity(text.len() + pg_type.len() + 8);
                out.push_str("E'");
                escape_into(&mut out, &text);
                out.push_str("'::");
                out.push_str(pg_type);
                out
            }
            None => format!("NULL::{pg_type}"),
        }
    }
    Ok(match value {
        Value::Bool(v) => typed(show(*v), "bool"),
        Value::SmallInt(v) => typed(show(*v), "int2"),
        Value::Int(v) => typed(show(*v), "int4"),
        Value::BigInt(v) => typed(show(*v), "int8"),
        Value::TinyUnsigned(v) => typed(show(*v), "int2"),
        Value::SmallUnsigned(v) => typed(show(*v), "int4"),
        Value::Unsigned(v) => typed(show(*v), "int8"),
        Value::BigUnsigned(v) => {
            let v =
                v.map(i64::try_from).transpose().map_err(|_| DbErr::Custom("a u64 past i64::MAX".into()))?;
            typed(show(v), "int8")
        }
        Value::Float(v) => typed(v.map(|v| float(f64::from(v))), "float4"),
        Value::Double(v) => typed(v.map(float), "float8"),
        Value::String(v) => typed(v.clone(), "text"),
        Value::Char(v) => typed(show(*v), "text"),
        Value::Bytes(v) => typed(v.as_deref().map(hex), "bytea"),
        Value::Json(v) => typed(v.as_deref().map(serde_json::Value::to_string), "jsonb"),
        Value::ChronoDate(v) => typed(v.map(|d| date(&d)), "date"),
        Value::ChronoTime(v) => typed(v.map(|t| t.format("%H:%M:%S%.f").to_string()), "time"),
        Value::ChronoDateTime(v) => {
            typed(v.map(|t| format!("{} {}", date(&t.date()), t.format("%H:%M:%S%.6f"))), "timestamp")
        }
        // In UTC: an offset of seconds would not survive being written.
        Value::ChronoDateTimeUtc(v) => typed(v.as_ref().map(instant), "timestamptz"),
        Value::ChronoDateTimeLocal(v) => typed(v.map(|t| instant(&t.to_utc())), "timestamptz"),
        Value::ChronoDateTimeWithTimeZone(v) => typed(v.map(|t| instant(&t.to_utc())), "timestamptz"),
        other => return Err(DbErr::Custom(format!("a value of this kind cannot be inlined: {other:?}"))),
    })
}

/// An instant as PostgreSQL reads it, in UTC, for every year chrono has.
fn instant(t: &DateTime<Utc>) -> String {
    let naive = t.naive_utc();
    format!("{} {}+00", date(&naive.date()), naive.format("%H:%M:%S%.6f"))
}

/// A date as PostgreSQL reads it: years before 1 as `BC` (year 0 is 1 BC),
/// years past 9999 with their five or six digits.
fn date(d: &NaiveDate) -> String {
    let (year, era) = if d.year() >= 1 { (d.year(), "") } else { (1 - d.year(), " BC") };
    format!("{year:04}-{:02}-{:02}{era}", d.month(), d.day())
}

fn show(v: Option<impl ToString>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// A float as PostgreSQL reads it back to the same value.
fn float(v: f64) -> String {
    match v {
        f64::INFINITY => "Infinity".into(),
        f64::NEG_INFINITY => "-Infinity".into(),
        v if v.is_nan() => "NaN".into(),
        v => format!("{v:e}"),
    }
}

/// `bytes` in bytea's hex input form.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `text` as the inside of an `E'…'` literal.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\000"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str, values: Vec<Value>) -> String {
        statement(sql, &values).expect("inlined")
    }

    #[test]
    fn placeholders_are_replaced_where_they_are_placeholders() {
        let sql =
            "SELECT $1, '$1', \"$1\", E'\\'$1', $$ $1 $$, $a$ $1 $a$, a$1 -- $1\n /* $1 /* $1 */ $1 */ $2";
        assert_eq!(
            run(sql, vec![1i64.into(), "x".into()]),
            "SELECT E'1'::int8, '$1', \"$1\", E'\\'$1', $$ $1 $$, $a$ $1 $a$, a$1 -- $1\n /* $1 /* $1 */ $1 */ E'x'::text"
        );
    }

    #[test]
    fn a_value_is_never_read_as_sql() {
        let sql = run("SELECT $1, $2", vec!["'; DROP TABLE t; --\\'$2\0".into(), "ok".into()]);
        assert_eq!(sql, "SELECT E'''; DROP TABLE t; --\\\\''$2\\000'::text, E'ok'::text");
    }

    #[test]
    fn numbers_keep_their_sign_and_type() {
        let sql = run("SELECT -$1, $2, $3", vec![(-5i64).into(), f64::NAN.into(), Value::Int(None)]);
        assert_eq!(sql, "SELECT -E'-5'::int8, E'NaN'::float8, NULL::int4");
    }

    #[test]
    fn a_missing_value_is_an_error() {
        assert!(statement("SELECT $2", &[1i64.into()]).is_err());
        assert!(statement("SELECT $0", &[1i64.into()]).is_err());
    }
}
