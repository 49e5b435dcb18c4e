//! The field types of the API's bodies and paths. Each one checks its
//! rule when it is read (a request that breaks it is a 422) and describes
//! that same rule in the OpenAPI document, so the document and the server
//! agree: ids, `session_type`, message ids, timestamps, opaque JSON.
//!
//! Bodies are read with serde; poem-openapi only needs these types for the
//! document, so its JSON conversions simply go through serde as well.

use std::{borrow::Cow, fmt};

use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Timelike, Utc};
use entity::JsonText;
use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use serde_json::Value;

use super::validate;

/// Implements poem-openapi's `Type` for `$ty`, named `$name` and
/// described by `$schema` in the document.
macro_rules! openapi_type {
    ($ty:ty, $name:expr, $schema:expr) => {
        impl poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                poem_openapi::registry::MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }
    };
}
pub(super) use openapi_type;

/// Implements poem-openapi's `Type` (with the given schema) and its JSON
/// conversions through serde.
macro_rules! document_as {
    ($ty:ty, $name:literal, $schema:expr) => {
        openapi_type!($ty, $name, $schema);

        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                via_text(value.unwrap_or_default())
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                serde_json::to_value(self).ok()
            }
        }
    };
}

/// Reads a value through its text: opaque documents are read from JSON
/// text only (this path serves the document's examples, not requests).
fn via_text<T: Type + serde::de::DeserializeOwned>(value: Value) -> ParseResult<T> {
    let text = serde_json::to_string(&value).map_err(ParseError::custom)?;
    serde_json::from_str(&text).map_err(ParseError::custom)
}

fn string_schema() -> MetaSchema {
    MetaSchema::new("string")
}

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TtlSeconds(pub u64);

impl<'de> Deserialize<'de> for TtlSeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let max = crate::store::retention::MAX_TTL_SECONDS;
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
        maximum: Some(crate::store::retention::MAX_TTL_SECONDS as f64),
        ..MetaSchema::new("integer")
    }
);

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

document_as!(
    Timestamp,
    "string(date-time)",
    MetaSchema {
        format: Some("date-time"),
        example: Some(Value::String("2026-11-21T10:00:00.123456+00:00".into())),
        ..string_schema()
    }
);

/// An opaque JSON object (`state`, `metadata`, …), passed through as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ObjectJson(pub JsonText);

impl ObjectJson {
    /// `{}`.
    pub fn empty() -> Self {
        Self(json_text("{}"))
    }
}

impl ObjectJson {
    /// The document's length in bytes.
    pub fn len(&self) -> usize {
        self.0.as_str().len()
    }
}

impl<'de> Deserialize<'de> for ObjectJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = JsonText::deserialize(d)?;
        if json.is_object() { Ok(Self(json)) } else { Err(de::Error::custom("must be a JSON object")) }
    }
}

document_as!(
    ObjectJson,
    "object(opaque)",
    MetaSchema {
        description: Some("Any JSON object; stored and returned unchanged."),
        additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
        ..MetaSchema::new("object")
    }
);

/// A message: a JSON object with a string `role` and a `content`; the
/// rest of it is opaque.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageJson(pub JsonText);

impl MessageJson {
    /// The document's length in bytes.
    pub fn len(&self) -> usize {
        self.0.as_str().len()
    }
}

impl<'de> Deserialize<'de> for MessageJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = JsonText::deserialize(d)?;
        validate::message_shape(json.as_str()).map_err(de::Error::custom)?;
        Ok(Self(json))
    }
}

document_as!(
    MessageJson,
    "object(message)",
    MetaSchema {
        description: Some(
            "`{role, content, …}`: a string `role` and a `content`; everything else is opaque."
        ),
        required: vec!["role", "content"],
        properties: vec![
            ("role", MetaSchemaRef::Inline(Box::new(string_schema()))),
            ("content", MetaSchemaRef::Inline(Box::new(MetaSchema::ANY))),
        ],
        additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
        ..MetaSchema::new("object")
    }
);

/// Parses JSON written in this program (examples, defaults).
pub fn json_text(text: &str) -> JsonText {
    JsonText::parse(text.to_owned()).unwrap_or_else(|e| panic!("built-in JSON `{text}` does not parse: {e}"))
}

/// An optional request field: absent, `null` (both mean "not given",
/// except where `null` clears a value) or a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Optional<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Optional<T> {
    /// The value, if one was given.
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }

    pub fn as_ref(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }
}

impl<T> From<Option<T>> for Optional<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Absent, Self::Value)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Optional<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Self::Null, Self::Value))
    }
}

impl<T: Serialize> Serialize for Optional<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_ref().serialize(s)
    }
}

/// A copy of `T`'s inline schema that also allows `null`.
fn nullable<T: Type>() -> MetaSchemaRef {
    match T::schema_ref() {
        MetaSchemaRef::Inline(schema) => {
            MetaSchemaRef::Inline(Box::new(MetaSchema { nullable: true, ..*schema }))
        }
        reference => MetaSchemaRef::Inline(Box::new(MetaSchema {
            nullable: true,
            all_of: vec![reference],
            ..MetaSchema::ANY
        })),
    }
}

impl<T: Type> Type for Optional<T> {
    const IS_REQUIRED: bool = false;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("optional_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        nullable::<T>()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match self.as_ref() {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: Type + Serialize + for<'de> Deserialize<'de>> ParseFromJSON for Optional<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None => Ok(Self::Absent),
            Some(value) => via_text(value),
        }
    }
}

impl<T: Type + Serialize> ToJSON for Optional<T> {
    fn to_json(&self) -> Option<Value> {
        match self {
            Self::Absent => None,
            other => serde_json::to_value(other).ok(),
        }
    }
}

/// A response field that is always present and may be `null`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nullable<T>(pub Option<T>);

impl<T: Serialize> Serialize for Nullable<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(Self)
    }
}

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        nullable::<T>()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: Type + for<'de> Deserialize<'de>> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        via_text(value.unwrap_or_default())
    }
}

impl<T: Type + Serialize> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        serde_json::to_value(self).ok()
    }
}

/// A `T` that must be written as a JSON object: serde would also read a
/// struct from an array of its fields in order, which the contract (and
/// the document) do not allow.
#[derive(Debug)]
pub struct ObjectOf<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Only(std::marker::PhantomData)).map(Self)
    }
}

impl<T: Type> Type for ObjectOf<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: ParseFromJSON> ParseFromJSON for ObjectOf<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        T::parse_from_json(value).map(Self).map_err(ParseError::propagate)
    }
}

impl<T: ToJSON> ToJSON for ObjectOf<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

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
