//! The two fixed members of a session document: its `format` and its
//! closing `complete`, each with the one value an import reads.

use poem_openapi::registry::MetaSchema;
use serde::{Deserialize, Serialize};

use super::string_schema;

/// `format`: always `session-backend/1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Format(pub String);

document_as!(
    Format,
    "string(format)",
    MetaSchema { enum_items: vec!["session-backend/1".into()], ..string_schema() }
);

/// `complete`: always `true`, written last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Complete(pub bool);

document_as!(
    Complete,
    "boolean(true)",
    MetaSchema { enum_items: vec![true.into()], ..MetaSchema::new("boolean") }
);
