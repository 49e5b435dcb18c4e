//! What the storage routes read from a request: keys and prefixes
//! normalised as the SDK normalises them (each described in the document
//! by the same rules), and the value of a write, read as it arrives.

use poem::{Body, Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromParameter, ParseResult},
};

use crate::{api::fields::openapi_type, store::blobs::KEY_MAX_BYTES};

/// Collapses runs of `/`, drops leading ones and rejects `\`, NUL and
/// `..` segments (a trailing `/` is kept).
fn collapse(raw: &str) -> Result<String, String> {
    if raw.contains('\\') {
        return Err("backslashes are not allowed".into());
    }
    if raw.contains('\0') {
        return Err("NUL characters are not allowed".into());
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if !(c == '/' && (out.is_empty() || out.ends_with('/'))) {
            out.push(c);
        }
    }
    if out.split('/').any(|segment| segment == "..") {
        return Err("`..` path segments are not allowed".into());
    }
    Ok(out)
}

fn within_limit(text: String) -> Result<String, String> {
    if text.len() > KEY_MAX_BYTES { Err(format!("longer than {KEY_MAX_BYTES} bytes")) } else { Ok(text) }
}

/// The SDK's `_normalize_prefix`: collapsed, a trailing `/` kept, empty
/// for "everything".
fn normalize_prefix(raw: &str) -> Result<String, String> {
    within_limit(collapse(raw)?)
}

/// The SDK's `_normalize_key`: collapsed, no trailing `/`, never empty.
pub(crate) fn normalize_key(raw: &str) -> Result<String, String> {
    let mut key = collapse(raw)?;
    if key.ends_with('/') {
        key.pop();
    }
    if key.is_empty() { Err("the key is empty".into()) } else { within_limit(key) }
}

/// A text parameter read through `parse` (422 on failure) and described
/// by `schema` in the document.
macro_rules! text_param {
    ($ty:ident, $name:literal, $parse:expr, $schema:expr) => {
        impl ParseFromParameter for $ty {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                let parse: fn(&str) -> Result<String, String> = $parse;
                parse(value)
                    .map(Self)
                    .map_err(|problem| ParseError::custom(format!("invalid {}: {problem}", $name)))
            }
        }

        openapi_type!($ty, concat!("string(", $name, ")"), $schema);
    };
}

/// No `..` segment anywhere (for the document's patterns).
const NO_DOTDOT: &str = r"(?!(?:[\s\S]*/)?\.\.(?:/[\s\S]*)?$)";

fn text_schema(pattern: String, min_length: Option<usize>, description: &'static str) -> MetaSchema {
    MetaSchema {
        min_length,
        max_length: Some(KEY_MAX_BYTES),
        pattern: Some(pattern),
        description: Some(description),
        ..MetaSchema::new("string")
    }
}

/// A blob key from the path, normalised.
#[derive(Debug)]
pub struct Key(pub String);

text_param!(
    Key,
    "key",
    normalize_key,
    text_schema(
        format!(r"^{NO_DOTDOT}(?=[\s\S]*[^/])[^\\\x00]+$"),
        Some(1),
        "A storage key, `/` included (sent as it is, other reserved characters \
         percent-encoded). Runs of `/` collapse and leading/trailing `/` are dropped; \
         at most 1024 bytes of UTF-8 then; no `\\`, NUL or `..` segment."
    )
);

/// A key prefix, normalised; empty for every key.
#[derive(Debug)]
pub struct Prefix(pub String);

text_param!(
    Prefix,
    "prefix",
    normalize_prefix,
    text_schema(
        format!(r"^{NO_DOTDOT}[^\\\x00]*$"),
        None,
        "Keys starting with this; normalised like a key, but a trailing `/` is kept \
         and empty means every key."
    )
);

/// A key prefix that names some keys, not all.
#[derive(Debug)]
pub struct SomePrefix(pub String);

text_param!(
    SomePrefix,
    "prefix",
    |raw| normalize_prefix(raw).and_then(|p| if p.is_empty() {
        Err("must name some keys, not all".into())
    } else {
        Ok(p)
    }),
    text_schema(
        format!(r"^{NO_DOTDOT}(?=[\s\S]*[^/])[^\\\x00]+$"),
        Some(1),
        "Keys starting with this are deleted; normalised like a key (a trailing `/` \
         kept), and not empty."
    )
);

/// A key to continue a listing after.
#[derive(Debug)]
pub struct StartAfter(pub String);

text_param!(
    StartAfter,
    "start_after",
    |raw| if raw.contains('\0') { Err("NUL characters are not allowed".into()) } else { Ok(raw.to_owned()) },
    MetaSchema {
        pattern: Some(r"^[^\x00]*$".into()),
        description: Some("Continue after this key (a listing's `next_start_after`)."),
        ..MetaSchema::new("string")
    }
);

/// A value being written: any bytes, any content type, read as it arrives.
pub struct Value(pub Body);

impl<'a> ApiExtractor<'a> for Value {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(_registry: &mut Registry) {}

    fn request_meta() -> Option<MetaRequest> {
        let mut schema = MetaSchema::new("string");
        schema.format = Some("binary");
        Some(MetaRequest {
            description: Some("The value: any bytes (any `Content-Type`)."),
            content: vec![MetaMediaType {
                content_type: "application/octet-stream",
                schema: MetaSchemaRef::Inline(Box::new(schema)),
            }],
            // No body is an empty value.
            required: false,
        })
    }

    async fn from_request(
        _request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self(body.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_as_the_sdk_does() {
        assert_eq!(normalize_key("//a///b/").as_deref(), Ok("a/b"));
        assert_eq!(normalize_key("a/./b").as_deref(), Ok("a/./b"));
        assert_eq!(normalize_key("a/..b").as_deref(), Ok("a/..b"));
        for bad in ["", "/", "///", "a\\b", "a/../b", "..", "a/..", "a\0b"] {
            assert!(normalize_key(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_key(&"k".repeat(1024)).is_ok());
        assert!(normalize_key(&"k".repeat(1025)).is_err());
        assert!(normalize_key(&format!("/{}/", "k".repeat(1024))).is_ok());
    }

    #[test]
    fn prefixes_keep_their_trailing_slash() {
        assert_eq!(normalize_prefix("/session//s1/").as_deref(), Ok("session/s1/"));
        assert_eq!(normalize_prefix("").as_deref(), Ok(""));
        assert_eq!(normalize_prefix("///").as_deref(), Ok(""));
        assert!(normalize_prefix("a/../").is_err());
    }
}
