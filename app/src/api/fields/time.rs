//! Timestamps as the earlier service wrote them.

use std::{borrow::Cow, fmt};

use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Timelike, Utc};
use poem_openapi::{
    registry::MetaSchema,
    types::{ParseError, ParseFromParameter, ParseResult},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use serde_json::Value;

use super::string_schema;

/// An RFC 3339 timestamp with an offset, kept at microsecond precision in
/// UTC and written as Python's `isoformat()` writes one in UTC, except that
/// the six digits of microseconds are always there (`isoformat()` leaves
/// them out when they are all zero; `fromisoformat()` reads both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The instant the document's examples use.
    pub fn example() -> Self {
        Self::parse("2026-11-21T10:00:00.123456+00:00").unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse(raw: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(raw).map(|t| Self(t.with_timezone(&Utc).trunc_subsecs(6))).map_err(|e| {
            format!("invalid timestamp `{raw}`: {e}; expected RFC 3339 with an offset, e.g. 2026-11-21T10:00:00.123456+00:00")
        })
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, as chrono writes it, without its
    /// formatting machinery and allocation (a page of messages writes two
    /// per row); `None` for the instants chrono writes differently: years
    /// outside 0–9999 and leap seconds.
    fn rfc3339(&self) -> Option<[u8; 32]> {
        let t = &self.0;
        let year = u32::try_from(t.year()).ok().filter(|year| *year <= 9999)?;
        let micros = Some(t.nanosecond()).filter(|nanos| *nanos < 1_000_000_000)? / 1000;
        let mut text = *b"0000-00-00T00:00:00.000000+00:00";
        for (range, value) in [
            (0..4, year),
            (5..7, t.month()),
            (8..10, t.day()),
            (11..13, t.hour()),
            (14..16, t.minute()),
            (17..19, t.second()),
            (20..26, micros),
        ] {
            let mut rest = value;
            for digit in text[range].iter_mut().rev() {
                *digit = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
        }
        Some(text)
    }

    fn with_text<R>(&self, write: impl FnOnce(&str) -> R) -> R {
        let fast = self.rfc3339();
        match fast.as_ref().and_then(|text| std::str::from_utf8(text).ok()) {
            Some(text) => write(text),
            None => write(&self.0.to_rfc3339_opts(SecondsFormat::Micros, false)),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|text| f.write_str(text))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_text(|text| s.serialize_str(text))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&Cow::<str>::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// A bound of a listing's filter: years 0 to 9999 in UTC, the span in which
/// SQLite's timestamp text sorts as the instants do.
impl ParseFromParameter for Timestamp {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let parsed = Self::parse(value).map_err(ParseError::custom)?;
        if !(0..=9999).contains(&parsed.0.year()) {
            return Err(ParseError::custom(format!(
                "invalid timestamp `{value}`: must fall in the years 0000 to 9999 in UTC"
            )));
        }
        Ok(parsed)
    }
}

document_as!(
    Timestamp,
    "string(date-time)",
    MetaSchema {
        format: Some("date-time"),
        example: Some(Value::String("2026-11-21T10:00:00.123456+00:00".into())),
        ..string_schema()
    }
);

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeDelta};

    use super::*;

    /// The fast path writes what chrono writes, across the years it covers,
    /// and hands the rest (years outside 0–9999, leap seconds) to chrono.
    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let start =
            NaiveDate::from_ymd_opt(-2, 12, 25).and_then(|d| d.and_hms_micro_opt(7, 8, 9, 1)).expect("date");
        let mut t = start.and_utc();
        // A step that is no whole number of days, hours or seconds, so the
        // sweep meets every month, leap years and all fields' carries.
        let step = TimeDelta::seconds(3_652_427 * 8 + 3_607) + TimeDelta::microseconds(654_321);
        let mut fast = 0;
        while t.year() <= 10_001 {
            let ours = Timestamp(t);
            assert_eq!(ours.to_string(), t.to_rfc3339_opts(SecondsFormat::Micros, false));
            assert_eq!(serde_json::to_string(&ours).expect("json"), format!("\"{ours}\""));
            fast += usize::from(ours.rfc3339().is_some());
            t += step;
        }
        assert!(fast > 10_000, "the sweep mostly took the fast path ({fast})");
        for edge in [
            "0000-01-01T00:00:00.000000+00:00",
            "9999-12-31T23:59:59.999999+00:00",
            "2024-02-29T12:00:00+00:00",
        ] {
            let parsed = Timestamp::parse(edge).expect("edge");
            assert!(parsed.rfc3339().is_some(), "{edge}");
            assert_eq!(parsed.to_string(), parsed.0.to_rfc3339_opts(SecondsFormat::Micros, false));
        }
        for slow in ["0000-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "2016-12-31T23:59:60.5+00:00"]
        {
            let parsed = Timestamp::parse(slow).expect("parses");
            assert!(parsed.rfc3339().is_none(), "{slow}");
            assert_eq!(parsed.to_string(), parsed.0.to_rfc3339_opts(SecondsFormat::Micros, false));
        }
        // The clock's instants carry nanoseconds: they are cut, not rounded,
        // as chrono cuts them; a leap second with nanoseconds is chrono's.
        let day = NaiveDate::from_ymd_opt(2026, 12, 31).expect("date");
        for (nanos, fast) in [(999_999_999, true), (123_456_789, true), (1_999_999_999, false)] {
            let t = day.and_hms_nano_opt(23, 59, 59, nanos).expect("time").and_utc();
            assert_eq!(Timestamp(t).rfc3339().is_some(), fast, "{nanos}");
            assert_eq!(Timestamp(t).to_string(), t.to_rfc3339_opts(SecondsFormat::Micros, false), "{nanos}");
        }
        assert_eq!(
            Timestamp(day.and_hms_nano_opt(23, 59, 59, 999_999_999).expect("time").and_utc()).to_string(),
            "2026-12-31T23:59:59.999999+00:00"
        );
    }
}
