//! [`JsonText`]: an opaque JSON document, stored as the text it arrived in.

use std::{
    cell::{Cell, RefCell},
    fmt,
};

use bytes::Bytes;
use bytestring::ByteString;
use sea_orm::{
    ColIdx, QueryResult, TryGetError, TryGetable, Value,
    sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _, ser::Error as _};
use serde_json::value::RawValue;

/// One JSON value kept exactly as written: checked to be well-formed JSON
/// when a request brings it, stored and written back out verbatim (writing
/// checks it once more, so a damaged stored document fails loudly instead
/// of breaking a response), never turned into a tree. Its memory cost is
/// the text itself, whatever the nesting or the size of its numbers; read
/// from a request body (see [`JsonText::reading`]) it is not even a copy,
/// but a view into that body.
///
/// The columns are `text`, not `jsonb`: `jsonb` rejects `\u0000` in
/// strings and rewrites numbers and key order.
#[derive(Clone)]
pub struct JsonText(ByteString);

thread_local! {
    /// The buffer being deserialized, so documents can point into it.
    static SOURCE: RefCell<Option<ByteString>> = const { RefCell::new(None) };
    /// Whether what is deserialized is read from a stream (`io::Read`),
    /// which lends nothing: documents are then copied out as they pass.
    static STREAMING: Cell<bool> = const { Cell::new(false) };
}

impl JsonText {
    /// Checks that `text` is one JSON value and keeps it.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        check(&text)?;
        Ok(Self(ByteString::from(text)))
    }

    /// Runs `parse` (a serde deserialization of `source`) so that the
    /// documents it reads share `source`'s memory instead of copying it.
    pub fn reading<T>(source: &Bytes, parse: impl FnOnce(&[u8]) -> T) -> T {
        SOURCE.with(|current| *current.borrow_mut() = ByteString::try_from(source.clone()).ok());
        let parsed = parse(source);
        SOURCE.with(|current| current.borrow_mut().take());
        parsed
    }

    /// Runs `parse` (a serde deserialization from a reader, such as
    /// `serde_json::Deserializer::from_reader`) so that the documents it
    /// reads are copied out of the stream rather than borrowed from it.
    pub fn streaming<T>(parse: impl FnOnce() -> T) -> T {
        /// Ends the streaming mode however `parse` ends (a panic too).
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                STREAMING.with(|streaming| streaming.set(false));
            }
        }
        STREAMING.with(|streaming| streaming.set(true));
        let _reset = Reset;
        parse()
    }

    /// A document found at `text`: a view into the buffer being read when
    /// it lies inside it, else a copy.
    fn borrowed(text: &str) -> Self {
        let shared = SOURCE.with(|current| {
            let source = current.borrow();
            let source = source.as_ref()?;
            let start = (text.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
            start.checked_add(text.len()).filter(|end| *end <= source.len())?;
            Some(source.slice_ref(text))
        });
        Self(shared.unwrap_or_else(|| ByteString::from(text)))
    }

    /// The document's text.
    pub fn as_str(&self) -> &str {
        &self.0
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

/// Whether `text` is exactly one JSON value.
fn check(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<&RawValue>(text).map(drop)
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
        let raw: &RawValue = serde_json::from_str(self.as_str()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if STREAMING.with(Cell::get) {
            let raw = Box::<RawValue>::deserialize(deserializer)?;
            return Ok(Self(ByteString::from(String::from(Box::<str>::from(raw)))));
        }
        let raw = <&'de RawValue>::deserialize(deserializer)
            .map_err(|e| D::Error::custom(format!("{e}; opaque JSON is read from JSON text only")))?;
        Ok(Self::borrowed(raw.get()))
    }
}

impl From<JsonText> for Value {
    fn from(json: JsonText) -> Self {
        Value::String(Some(json.as_str().to_owned()))
    }
}

impl TryGetable for JsonText {
    /// Stored text was checked when it was written; writing it out checks
    /// it again.
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        Ok(Self(ByteString::from(String::try_get_by(res, index)?)))
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

    #[test]
    fn documents_read_from_a_body_share_its_memory() {
        #[derive(Deserialize)]
        struct Body {
            doc: JsonText,
        }
        let body = Bytes::from_static(br#"{"doc": {"deep": [1, 2, "x"]}}"#);
        let parsed: Body = JsonText::reading(&body, |bytes| serde_json::from_slice(bytes)).expect("parses");
        assert_eq!(parsed.doc.as_str(), r#"{"deep": [1, 2, "x"]}"#);
        let inside = parsed.doc.as_str().as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(inside, 8, "a view into the body, not a copy");
        // Outside of `reading`, a copy.
        let copied: Body = serde_json::from_slice(&body).expect("parses");
        assert_eq!(copied.doc, parsed.doc);
    }
}
