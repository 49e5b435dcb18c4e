//! Error responses as the OpenAPI document shows them: every operation
//! lists the error statuses it can answer, each with the envelope schema.

use std::marker::PhantomData;

use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::{Example, Type},
};

use crate::error::Error;

/// The body of every 4xx/5xx answer.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ErrorEnvelope {
    pub detail: ErrorDetail,
}

/// What went wrong, in words a user can act on.
#[derive(Debug, Object)]
pub struct ErrorDetail {
    /// One of `ValidationError`, `NotFoundError`, `ConflictError`,
    /// `PreconditionFailedError`, `LeaseHeldError`, `LeaseLostError`,
    /// `PayloadTooLargeError`, `UnsupportedMediaTypeError`,
    /// `RequestTimeoutError`, `MethodNotAllowedError`,
    /// `ServiceUnavailableError`, `InternalServerError`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
    /// The request's id, also in the `X-Request-Id` header and the logs.
    pub request_id: String,
    /// With a 423: the session's lease that refused the write.
    pub lease: Option<RefusingLease>,
}

/// The lease named by a 423.
#[derive(Debug, Object)]
pub struct RefusingLease {
    /// Who holds it (empty once released).
    pub holder: String,
    /// When it lapses (or lapsed).
    pub expires_at: String,
}

impl Example for ErrorEnvelope {
    fn example() -> Self {
        Self {
            detail: ErrorDetail {
                error: "NotFoundError".into(),
                message: "session `chat-42` not found".into(),
                request_id: "5f0c6b7e-2d7b-4f5e-9a43-1b2a3c4d5e6f".into(),
                lease: None,
            },
        }
    }
}

/// A set of error statuses an operation documents, beyond the ones every
/// operation has (422, 401, 429, 503, 500).
pub trait ErrorSet: Send + Sync + 'static {
    /// `(status, description)` pairs.
    const EXTRA: &'static [(u16, &'static str)];
}

const NOT_FOUND: (u16, &str) = (404, "The resource, or one of its parents, does not exist.");
const CONFLICT: (u16, &str) = (409, "A resource with this id already exists (with other content).");
const STALE: (u16, &str) = (412, "`If-Match` named a version the resource no longer has; nothing changed.");
const LOCKED: (u16, &str) = (
    423,
    "The session's lease refuses the write; nothing changed. `LeaseHeldError` (a live lease, no \
     `Lease-Token` sent; `Retry-After` says when it lapses) or `LeaseLostError` (not the current token).",
);
const TOO_LARGE: (u16, &str) = (413, "The request body exceeds the configured limit.");
const NOT_JSON: (u16, &str) = (415, "The body is not JSON (`Content-Type` other than `application/json`).");
const STALLED: (u16, &str) = (408, "The request body stopped arriving before it was complete.");

/// Listing at the top level.
pub struct Plain;
impl ErrorSet for Plain {
    const EXTRA: &'static [(u16, &'static str)] = &[];
}

/// Reads, deletes and listings below a parent.
pub struct Missing;
impl ErrorSet for Missing {
    const EXTRA: &'static [(u16, &'static str)] = &[NOT_FOUND];
}

/// Deletes in a session's tree, and releasing its lease.
pub struct MissingOrLeased;
impl ErrorSet for MissingOrLeased {
    const EXTRA: &'static [(u16, &'static str)] = &[NOT_FOUND, LOCKED];
}

/// Updates of messages.
pub struct MissingWithBody;
impl ErrorSet for MissingWithBody {
    const EXTRA: &'static [(u16, &'static str)] = &[NOT_FOUND, STALLED, LOCKED, TOO_LARGE, NOT_JSON];
}

/// Updates of versioned resources (sessions, agents, multi-agent states).
pub struct MissingOrStale;
impl ErrorSet for MissingOrStale {
    const EXTRA: &'static [(u16, &'static str)] = &[NOT_FOUND, STALLED, STALE, LOCKED, TOO_LARGE, NOT_JSON];
}

/// Taking or renewing a session's lease.
pub struct LeaseCall;
impl ErrorSet for LeaseCall {
    const EXTRA: &'static [(u16, &'static str)] = &[NOT_FOUND, STALLED, LOCKED, TOO_LARGE, NOT_JSON];
}

/// Writing a blob.
pub struct StorageWrite;
impl ErrorSet for StorageWrite {
    const EXTRA: &'static [(u16, &'static str)] = &[STALLED, STALE, TOO_LARGE];
}

/// Creating a session.
pub struct Duplicate;
impl ErrorSet for Duplicate {
    const EXTRA: &'static [(u16, &'static str)] = &[STALLED, CONFLICT, TOO_LARGE, NOT_JSON];
}

/// Forking a session.
pub struct Forking;
impl ErrorSet for Forking {
    const EXTRA: &'static [(u16, &'static str)] = &[NOT_FOUND, STALLED, CONFLICT, TOO_LARGE, NOT_JSON];
}

/// Importing a session.
pub struct Importing;
impl ErrorSet for Importing {
    const EXTRA: &'static [(u16, &'static str)] = &[STALLED, CONFLICT, TOO_LARGE, NOT_JSON];
}

/// Creating below a parent.
pub struct MissingOrDuplicate;
impl ErrorSet for MissingOrDuplicate {
    const EXTRA: &'static [(u16, &'static str)] =
        &[NOT_FOUND, STALLED, CONFLICT, LOCKED, TOO_LARGE, NOT_JSON];
}

/// The error side of an operation's result; `S` says which statuses the
/// document lists. The envelope itself is rendered by the middleware, which
/// knows the request id.
pub struct Failure<S>(Error, PhantomData<S>);

impl<S> From<Error> for Failure<S> {
    fn from(err: Error) -> Self {
        Self(err, PhantomData)
    }
}

impl<S> From<Failure<S>> for poem::Error {
    fn from(failure: Failure<S>) -> Self {
        failure.0.into()
    }
}

impl<S: ErrorSet> ApiResponse for Failure<S> {
    fn meta() -> MetaResponses {
        let header = |name: &str, description: &str, schema| {
            vec![MetaHeader {
                name: name.into(),
                description: Some(description.into()),
                required: true,
                deprecated: false,
                schema,
            }]
        };
        let unauthorized = (
            401,
            "No API key, or one the server does not know (only when keys are configured).",
            header("WWW-Authenticate", "`Bearer realm=\"session-backend\"`", String::schema_ref()),
        );
        let limited = (
            429,
            "The tenant's request rate limit is used up (only when one is configured).",
            header("Retry-After", "Seconds until a request is allowed again.", u64::schema_ref()),
        );
        let plain = |&(status, description): &(u16, &'static str)| (status, description, vec![]);
        let responses = [(
            422,
            "The request is invalid: malformed JSON, wrong types, missing fields, bad ids or query values.",
        )]
        .iter()
        .chain(S::EXTRA)
        .map(plain)
        .chain([unauthorized, limited])
        .chain(
            [
                (503, "The database is unavailable or did not answer in time; retry later."),
                (500, "An unexpected error; details are logged under the request id."),
            ]
            .iter()
            .map(plain),
        )
        .map(|(status, description, headers)| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: ErrorEnvelope::schema_ref(),
            }],
            headers,
        })
        .collect();
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        ErrorEnvelope::register(registry);
    }
}

/// Operation result with documented errors.
pub type ApiResult<T, S> = Result<T, Failure<S>>;
