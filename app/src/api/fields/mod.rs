//! The field types of the API's bodies and paths. Each one checks its
//! rule when it is read (a request that breaks it is a 422) and describes
//! that same rule in the OpenAPI document, so the document and the server
//! agree: ids, `session_type`, message ids and TTLs ([`ids`]), timestamps
//! ([`time`]), opaque JSON ([`json`]); and the wrappers that say how a field
//! may be absent or `null` ([`presence`]).
//!
//! Bodies are read with serde; poem-openapi only needs these types for the
//! document, so its JSON conversions simply go through serde as well.

use poem_openapi::{
    registry::MetaSchema,
    types::{ParseError, ParseResult, Type},
};
use serde_json::Value;

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

        impl poem_openapi::types::ParseFromJSON for $ty {
            fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
                $crate::api::fields::via_text(value.unwrap_or_default())
            }
        }

        impl poem_openapi::types::ToJSON for $ty {
            fn to_json(&self) -> Option<serde_json::Value> {
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

mod ids;
mod json;
mod marks;
mod presence;
mod time;

pub use self::{
    ids::{Id, IdPrefix, MessageId, SessionType, TtlSeconds},
    json::{MessageJson, ObjectJson, json_text},
    marks::{Complete, Format},
    presence::{Nullable, ObjectOf, Optional},
    time::Timestamp,
};
