//! JSON bodies read and written with serde, straight between bytes and
//! the API's types: opaque documents inside them pass through as text and
//! are never built into trees (poem-openapi's own `Json` goes through a
//! `serde_json::Value`, which costs many times the size of the text).

use bytes::Bytes;
use entity::JsonText;
use futures::{Stream, StreamExt};
use poem::{Body, IntoResponse, Request, RequestBody, Response, http::header};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions,
    payload::{ParsePayload, Payload},
    registry::{MetaMediaType, MetaRequest, MetaResponse, MetaResponses, MetaSchemaRef, Registry},
    types::Type,
};
use serde::{Serialize, de::DeserializeOwned};

use super::fields::ObjectOf;
use crate::error::Error;

/// The content type of every JSON answer.
pub const JSON: &str = "application/json; charset=utf-8";

/// Whether `content_type` names JSON (`application/json`, `…+json`).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON request or response body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: DeserializeOwned + Send> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        // The body limits have read it already (see `middleware::read_body`).
        let bytes = body
            .take()?
            .into_bytes()
            .await
            .map_err(|e| Error::Validation(format!("cannot read the request body: {e}")))?;
        heavy(bytes.len(), || parse(&bytes)).map(Self).map_err(Into::into)
    }
}

/// Runs `work` over `bytes` bytes; large pieces run where blocking is
/// allowed, so other requests keep being served meanwhile.
fn heavy<T>(bytes: usize, work: impl FnOnce() -> T) -> T {
    const LARGE: usize = 1024 * 1024;
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if bytes > LARGE && multi_thread { tokio::task::block_in_place(work) } else { work() }
}

/// Reads `T` from JSON, naming the field at fault: `messages[2].message_id: …`.
/// Opaque documents in it stay views into `bytes`.
fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Validation("the request body is empty; send a JSON object".into()));
    }
    JsonText::reading(bytes, |bytes| {
        let mut reader = serde_json::Deserializer::from_slice(bytes);
        let ObjectOf(value) = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path == "." { Error::Validation(inner) } else { Error::Validation(format!("{path}: {inner}")) }
        })?;
        reader.end().map_err(|e| Error::Validation(format!("unexpected data after the JSON body: {e}")))?;
        Ok(value)
    })
}

impl<'a, T: Type + DeserializeOwned + Send> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType { content_type: JSON, schema: T::schema_ref() }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        // The earlier service's clients send JSON without a Content-Type.
        match request.header(header::CONTENT_TYPE) {
            Some(content_type) if !is_json(content_type) => Err(Error::unsupported_media_type().into()),
            _ => <Self as ParsePayload>::from_request(request, body).await,
        }
    }
}

/// How many bytes a value's JSON takes, about: the documents it carries
/// plus room for the rest. Buffers are made this size up front, because a
/// document of many MiB written into a growing buffer would briefly need
/// three times its size.
pub trait JsonSize {
    fn json_size(&self) -> usize;
}

/// Room for the fields around the documents of one object.
pub const FIELDS: usize = 512;

impl<T: Serialize + Send + JsonSize> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        let mut bytes = Vec::with_capacity(self.0.json_size());
        match serde_json::to_writer(&mut bytes, &self.0) {
            Ok(()) => Response::builder().content_type(JSON).body(bytes),
            Err(e) => {
                tracing::error!(error = %e, "serializing a response");
                crate::error::response(&Error::Internal)
            }
        }
    }
}

impl<T: Type + Serialize + Send + JsonSize> ApiResponse for JsonBody<T> {
    fn meta() -> MetaResponses {
        ok_meta::<T>()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

fn ok_meta<T: Type>() -> MetaResponses {
    MetaResponses {
        responses: vec![MetaResponse {
            description: "",
            status: Some(200),
            status_range: None,
            content: vec![MetaMediaType { content_type: JSON, schema: T::schema_ref() }],
            headers: vec![],
        }],
    }
}

/// A JSON listing written piece by piece as its rows arrive, so its size
/// in memory is a row or two whatever the page holds. `T` is the shape the
/// document describes.
pub struct JsonStream<T> {
    body: Body,
    shape: std::marker::PhantomData<T>,
}

impl<T> JsonStream<T> {
    /// A body from chunks of JSON text; an error ends the response early
    /// (the client sees a cut connection, never a well-formed lie).
    pub fn new(chunks: impl Stream<Item = Result<Bytes, Error>> + Send + 'static) -> Self {
        let chunks = chunks.map(|chunk| {
            chunk.map_err(|e| {
                tracing::warn!(error = %e, "a listing failed while it was being sent");
                std::io::Error::other(e)
            })
        });
        Self { body: Body::from_bytes_stream(chunks), shape: std::marker::PhantomData }
    }
}

impl<T: Type> Payload for JsonStream<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for JsonStream<T> {
    fn into_response(self) -> Response {
        Response::builder().content_type(JSON).body(self.body)
    }
}

impl<T: Type + Send> ApiResponse for JsonStream<T> {
    fn meta() -> MetaResponses {
        ok_meta::<T>()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
