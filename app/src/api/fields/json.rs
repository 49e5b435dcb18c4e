//! Opaque JSON fields, passed through as text.

use entity::JsonText;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use serde::{Deserialize, Deserializer, Serialize, de};

use super::string_schema;
use crate::domain::rules as validate;

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
