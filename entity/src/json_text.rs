//! [`JsonText`]: an opaque JSON document, stored as the text it arrived in.

use std::fmt;

use sea_orm::{
    ColIdx, DbErr, QueryResult, TryGetError, TryGetable, Value,
    sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// One JSON value kept exactly as written: checked to be well-formed
/// JSON when it enters (from a request or from the database), stored and
/// written back out verbatim, never turned into a tree. Its memory cost
/// is the text itself, whatever the nesting or the size of its numbers.
///
/// The columns are `text`, not `jsonb`: `jsonb` rejects `\u0000` in
/// strings and rewrites numbers and key order.
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// Checks that `text` is one JSON value and keeps it.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// The document's text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Whether the document is a JSON object.
    pub fn is_object(&self) -> bool {
        self.as_str().starts_with('{')
    }

    /// Equality by JSON value rather than by text: key order, whitespace
    /// and escapes may differ. Documents too deep to compare are unequal
    /// unless their texts are.
    pub fn same_value(&self, other: &Self) -> bool {
        if self.as_str() == other.as_str() {
            return true;
        }
        let tree = |text: &JsonText| serde_json::from_str::<serde_json::Value>(text.as_str()).ok();
        matches!((tree(self), tree(other)), (Some(a), Some(b)) if a == b)
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonText {}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self)
    }
}

impl From<JsonText> for Value {
    fn from(json: JsonText) -> Self {
        Value::String(Some(String::from(Box::<str>::from(json.0))))
    }
}

/// Reads a stored document back, refusing text that is not JSON.
fn stored(text: String) -> Result<JsonText, DbErr> {
    JsonText::parse(text).map_err(|e| DbErr::Type(format!("a stored JSON column does not parse: {e}")))
}

impl TryGetable for JsonText {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        stored(String::try_get_by(res, index)?).map_err(TryGetError::DbErr)
    }
}

impl ValueType for JsonText {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        match v {
            Value::String(Some(text)) => JsonText::parse(text).map_err(|_| ValueTypeErr),
            _ => Err(ValueTypeErr),
        }
    }

    fn type_name() -> String {
        "JsonText".to_owned()
    }

    fn array_type() -> ArrayType {
        ArrayType::String
    }

    fn column_type() -> ColumnType {
        ColumnType::Text
    }
}

impl Nullable for JsonText {
    fn null() -> Value {
        Value::String(None)
    }
}

impl sea_orm::IntoActiveValue<JsonText> for JsonText {
    fn into_active_value(self) -> sea_orm::ActiveValue<JsonText> {
        sea_orm::ActiveValue::Set(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_compares_by_value() {
        let a = JsonText::parse(r#"{"b": 1, "a": [9007199254740993, "\u0000"]}"#.into()).expect("json");
        assert_eq!(a.as_str(), r#"{"b": 1, "a": [9007199254740993, "\u0000"]}"#);
        assert!(a.is_object());
        let reordered = JsonText::parse(r#"{"a":[9007199254740993,"\u0000"],"b":1}"#.into()).expect("json");
        assert!(a.same_value(&reordered));
        let other = JsonText::parse(r#"{"a":[9007199254740992,"\u0000"],"b":1}"#.into()).expect("json");
        assert!(!a.same_value(&other));
        assert!(JsonText::parse("NaN".into()).is_err());
        assert!(JsonText::parse("{} {}".into()).is_err());
        let written = serde_json::to_string(&vec![a.clone()]).expect("serializes");
        assert_eq!(written, format!("[{}]", a.as_str()), "written out verbatim");
    }
}
