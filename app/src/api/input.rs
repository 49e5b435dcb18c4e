//! Checks and conversions shared by the handlers: identifiers, timestamps
//! and opaque JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::Value;

use crate::error::Error;

/// An opaque JSON object as the API carries it.
pub type JsonObject = BTreeMap<String, Value>;

/// Checks an identifier: 1 to 255 bytes of UTF-8, no `/`, `\` or ASCII
/// control characters, not `.` or `..`.
pub fn id<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    let problem = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > 255 {
        Some("must be at most 255 bytes of UTF-8")
    } else if value == "." || value == ".." {
        Some("must not be `.` or `..`")
    } else if value.contains(['/', '\\']) {
        Some("must not contain `/` or `\\`")
    } else if value.chars().any(|c| c.is_ascii_control()) {
        Some("must not contain control characters")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Validation(format!("invalid {field}: {problem}"))),
        None => Ok(value),
    }
}

/// Checks an optional `session_type`: 1 to 64 characters.
pub fn session_type(value: Option<&str>) -> Result<Option<String>, Error> {
    match value {
        Some(t) if t.is_empty() || t.chars().count() > 64 => {
            Err(Error::Validation("invalid session_type: must be 1 to 64 characters".into()))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// Parses an optional RFC 3339 timestamp with offset, kept at microsecond
/// precision in UTC.
pub fn timestamp(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Error> {
    value
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc).trunc_subsecs(6)).map_err(|e| {
                Error::Validation(format!(
                    "invalid {field} `{raw}`: {e}; expected RFC 3339 with an offset, \
                         e.g. 2026-11-21T10:00:00.123456+00:00"
                ))
            })
        })
        .transpose()
}

/// Formats a stored timestamp the way Python's `isoformat()` does for UTC.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Serializes a JSON value for storage.
pub fn to_text<T: serde::Serialize>(value: &T) -> String {
    // Serializing a `serde_json::Value` (or a map of them) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Reads a stored JSON object back.
pub fn object(text: &str) -> Result<JsonObject, Error> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(error = %e, "stored JSON is not an object");
        Error::Internal
    })
}

/// Reads a stored JSON value back.
pub fn value(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(error = %e, "stored JSON does not parse");
        Error::Internal
    })
}

/// Checks that a message is a JSON object with a string `role` and a
/// `content`; everything else in it stays opaque.
pub fn message(field: &str, value: &Value) -> Result<(), Error> {
    let Some(object) = value.as_object() else {
        return Err(Error::Validation(format!("{field} must be a JSON object")));
    };
    if !object.get("role").is_some_and(Value::is_string) {
        return Err(Error::Validation(format!("{field}.role must be a string")));
    }
    if !object.contains_key("content") {
        return Err(Error::Validation(format!("{field}.content is required")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract() {
        for ok in ["a", "tenant:1", "a.b@c.d", "with space", "ünïcödé", "...", &"x".repeat(255)] {
            assert!(id("session_id", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "a\u{0}b", "tab\t", &"x".repeat(256)] {
            assert!(id("session_id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_need_an_offset_and_come_back_in_utc() {
        let t = timestamp("created_at", Some("2026-11-21T12:00:00.1234567+02:00"))
            .expect("valid")
            .expect("present");
        assert_eq!(format_timestamp(t), "2026-11-21T10:00:00.123456+00:00");
        assert!(timestamp("created_at", Some("2026-11-21T10:00:00")).is_err());
        assert!(timestamp("created_at", Some("yesterday")).is_err());
    }
}
