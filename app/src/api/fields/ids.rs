//! Ids, `session_type`, message ids and TTLs: the contract's rules
//! ([`crate::domain::rules`]) as field types.

use poem_openapi::{
    registry::MetaSchema,
    types::{ParseError, ParseFromParameter, ParseResult},
};
use serde::{Deserialize, Deserializer, Serialize, de};

use super::string_schema;
use crate::domain::rules as validate;

/// Characters no id may hold (with `.` and `..` as whole ids), as the
/// document's pattern says them.
const ID_PATTERN: &str = r"^(?!\.\.?$)[^/\\%\x00-\x1F\x7F]+$";

/// A session, agent or multi-agent id: 1 to 255 bytes of UTF-8, no `/`,
/// `\`, `%` or ASCII control characters, not `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    fn parse(value: String) -> Result<Self, String> {
        validate::id(&value).map(|()| Self(value)).map_err(|problem| format!("invalid id: {problem}"))
    }
}

impl From<&str> for Id {
    /// For examples; the value must follow the id rules.
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl ParseFromParameter for Id {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::parse(value.to_owned()).map_err(ParseError::custom)
    }
}

document_as!(
    Id,
    "string(id)",
    MetaSchema {
        min_length: Some(1),
        max_length: Some(validate::ID_MAX_BYTES),
        pattern: Some(ID_PATTERN.into()),
        description: Some(
            "1 to 255 bytes of UTF-8; no `/`, `\\`, `%` or control characters; not `.` or `..`."
        ),
        ..string_schema()
    }
);

/// `session_type`: an open string of 1 to 64 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SessionType(String);

impl SessionType {
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<&str> for SessionType {
    /// For examples and the default; the value must follow the rules.
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for SessionType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        validate::session_type(&value)
            .map(|()| Self(value))
            .map_err(|problem| de::Error::custom(format!("invalid session_type: {problem}")))
    }
}

impl ParseFromParameter for SessionType {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        validate::session_type(value)
            .map(|()| Self(value.to_owned()))
            .map_err(|problem| ParseError::custom(format!("invalid session_type: {problem}")))
    }
}

document_as!(
    SessionType,
    "string(session_type)",
    MetaSchema {
        min_length: Some(1),
        max_length: Some(validate::SESSION_TYPE_MAX_CHARS),
        pattern: Some(r"^[^\x00-\x1F\x7F]+$".into()),
        description: Some("1 to 64 characters, no control characters; `AGENT` by default."),
        ..string_schema()
    }
);

/// The start of session ids: 1 to 255 bytes of UTF-8 without `/`, `\`, `%`
/// or control characters (what no id holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct IdPrefix(String);

impl IdPrefix {
    pub fn into_string(self) -> String {
        self.0
    }

    fn parse(value: &str) -> Result<Self, String> {
        // Any prefix of a valid id passes the id rules once `.` and `..`
        // (whole ids only) are let through.
        let checked = if value == "." || value == ".." { "x" } else { value };
        validate::id(checked)
            .map(|()| Self(value.to_owned()))
            .map_err(|problem| format!("invalid id_prefix: {problem}"))
    }
}

impl<'de> Deserialize<'de> for IdPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl ParseFromParameter for IdPrefix {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::parse(value).map_err(ParseError::custom)
    }
}

document_as!(
    IdPrefix,
    "string(id_prefix)",
    MetaSchema {
        min_length: Some(1),
        max_length: Some(validate::ID_MAX_BYTES),
        pattern: Some(r"^[^/\\%\x00-\x1F\x7F]+$".into()),
        description: Some(
            "The start of the session ids to list: 1 to 255 bytes, no `/`, `\\`, `%` or control characters."
        ),
        ..string_schema()
    }
);

/// A message id: the client's 0-based index in the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if n < 0 {
            return Err(de::Error::custom(format!("invalid message_id {n}: must be an integer >= 0")));
        }
        Ok(Self(n))
    }
}

document_as!(
    MessageId,
    "integer(message_id)",
    MetaSchema { format: Some("int64"), minimum: Some(0.0), ..MetaSchema::new("integer") }
);

/// A session's time to live in seconds: 0 (kept forever) to 100 years.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TtlSeconds(pub u64);

impl<'de> Deserialize<'de> for TtlSeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let max = crate::domain::MAX_TTL_SECONDS;
        let n = u64::deserialize(d).map_err(|_| {
            de::Error::custom(format!("invalid ttl_seconds: must be an integer from 0 to {max}"))
        })?;
        if n > max {
            return Err(de::Error::custom(format!("invalid ttl_seconds {n}: at most {max} (100 years)")));
        }
        Ok(Self(n))
    }
}

document_as!(
    TtlSeconds,
    "integer(ttl_seconds)",
    MetaSchema {
        format: Some("int64"),
        minimum: Some(0.0),
        maximum: Some(crate::domain::MAX_TTL_SECONDS as f64),
        ..MetaSchema::new("integer")
    }
);
