//! The one error type of the service and its mapping to the contract's
//! envelope: `{"detail": {"error": KIND, "message": TEXT, "request_id": ID}}`.
//!
//! Database errors are classified by kind ([`Failure`]: connection trouble,
//! time limits, a busy database → 503, anything else → 500); their text is
//! logged, never returned.

use chrono::{DateTime, Utc};
use poem::{
    Response,
    http::{StatusCode, header},
};
use sea_orm::DbErr;

use crate::{db::Failure, request_id};

/// Everything a request can fail with.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: malformed JSON, wrong types, invalid ids or query values.
    #[error("{0}")]
    Validation(String),
    /// No API key, or one the server does not know.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid credential that may not do this (a tenant's key on the
    /// operators' metrics).
    #[error("{0}")]
    Forbidden(String),
    /// The tenant's rate limit is used up; retry after this many seconds.
    #[error("the rate limit of this API key's tenant is used up; retry in {0} s")]
    TooManyRequests(u64),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The named thing already exists, or differs from what a retry sent.
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` named a version the row no longer has.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The session's lease refuses the write.
    #[error("{}", .0.message)]
    Locked(LeaseRefusal),
    /// The body is larger than the configured limit.
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not JSON (by its `Content-Type`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client stopped sending its request body.
    #[error("{0}")]
    RequestTimeout(String),
    /// Wrong HTTP method for an existing path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The database cannot be reached or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// The database refused the transaction for one that changed the same
    /// rows at once (a serialization failure or a deadlock): nothing was
    /// written, and the same work succeeds when tried again.
    #[error("another write to the same data went at the same time; nothing was written, retry")]
    Collision,
    /// No database connection became free in time (counted by the edge
    /// that answers it: `db_pool_acquire_timeouts_total`).
    #[error("the database is unavailable, retry shortly")]
    PoolTimeout,
    /// A bug or an unexpected database failure; details are only logged.
    #[error("internal server error")]
    Internal,
}

/// Why a session's lease refused a write, and the lease that did.
#[derive(Clone, Debug)]
pub struct LeaseRefusal {
    /// The write's token is not the current one (else: a live lease is
    /// held and the write sent none).
    pub lost: bool,
    pub message: String,
    /// The session's lease (its holder, empty once released, and when it
    /// ends or ended), if one was ever granted.
    pub lease: Option<(String, DateTime<Utc>)>,
    /// Seconds until the lease lapses (`Retry-After`), for a held one.
    pub retry_after: u64,
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::Locked(_) => StatusCode::LOCKED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::Collision | Self::PoolTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field of the envelope.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationError",
            Self::Unauthorized(_) => "UnauthorizedError",
            Self::Forbidden(_) => "ForbiddenError",
            Self::TooManyRequests(_) => "TooManyRequestsError",
            Self::NotFound(_) => "NotFoundError",
            Self::Conflict(_) => "ConflictError",
            Self::PreconditionFailed(_) => "PreconditionFailedError",
            Self::Locked(LeaseRefusal { lost: false, .. }) => "LeaseHeldError",
            Self::Locked(LeaseRefusal { lost: true, .. }) => "LeaseLostError",
            Self::PayloadTooLarge(_) => "PayloadTooLargeError",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaTypeError",
            Self::RequestTimeout(_) => "RequestTimeoutError",
            Self::MethodNotAllowed(_) => "MethodNotAllowedError",
            Self::Unavailable(_) | Self::Collision | Self::PoolTimeout => "ServiceUnavailableError",
            Self::Internal => "InternalServerError",
        }
    }

    /// The envelope for this error, tagged with the current request id.
    pub fn envelope(&self) -> serde_json::Value {
        let mut envelope = serde_json::json!({
            "detail": {
                "error": self.kind(),
                "message": self.to_string(),
                "request_id": request_id::current(),
            }
        });
        if let Self::Locked(LeaseRefusal { lease: Some((holder, expires_at)), .. }) = self {
            envelope["detail"]["lease"] = serde_json::json!({
                "holder": holder,
                "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
            });
        }
        envelope
    }

    /// Maps any error poem or poem-openapi produced (parse errors, unknown
    /// routes, wrong methods, …) onto the contract's kinds.
    pub fn from_poem(err: &poem::Error) -> Self {
        if let Some(err) = err.downcast_ref::<Error>() {
            return err.clone();
        }
        match err.status() {
            StatusCode::NOT_FOUND => Self::NotFound("no such route".into()),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::MethodNotAllowed("this method is not allowed on this path".into())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::unsupported_media_type(),
            status if status.is_client_error() => Self::Validation(err.to_string()),
            _ => {
                tracing::error!(error = %err, "unhandled error");
                Self::Internal
            }
        }
    }
}

impl Error {
    /// The answer to a body that is not JSON.
    pub fn unsupported_media_type() -> Self {
        Self::UnsupportedMediaType(
            "the request body must be JSON: send `Content-Type: application/json` (or none)".into(),
        )
    }
}

impl poem::error::ResponseError for Error {
    fn status(&self) -> StatusCode {
        Error::status(self)
    }
}

impl From<DbErr> for Error {
    /// Classifies a database error ([`Failure`]): a transient one is a 503
    /// (a pool timeout among them, which the edge counts when it answers),
    /// anything else a 500 whose cause is only logged.
    fn from(err: DbErr) -> Self {
        let failure = Failure::of(&err);
        if failure.is_timeout() {
            tracing::warn!(error = %err, "database statement timed out");
            Self::Unavailable(
                "the database did not finish in time (a lock or a slow statement); nothing was written, retry shortly"
                    .into(),
            )
        } else if failure == Failure::Collision {
            tracing::warn!(error = %err, "transaction collided with another");
            Self::Collision
        } else if failure == Failure::PoolTimeout {
            tracing::warn!(error = %err, "no database connection became free in time");
            Self::PoolTimeout
        } else if failure.is_transient() {
            tracing::warn!(error = %err, "database unavailable");
            Self::Unavailable("the database is unavailable, retry shortly".into())
        } else {
            tracing::error!(error = %err, "database error");
            Self::Internal
        }
    }
}

/// Renders an error as the contract's envelope.
pub fn response(err: &Error) -> Response {
    let mut resp = Response::builder().status(err.status()).content_type("application/json; charset=utf-8");
    match err {
        Error::Unauthorized(_) => resp = resp.header(header::WWW_AUTHENTICATE, WWW_AUTHENTICATE),
        Error::TooManyRequests(seconds) => resp = resp.header(header::RETRY_AFTER, seconds.to_string()),
        Error::Locked(refusal) if !refusal.lost => {
            resp = resp.header(header::RETRY_AFTER, refusal.retry_after.to_string());
        }
        _ => {}
    }
    resp.body(err.envelope().to_string())
}

/// The challenge of a 401: a bearer token (or the same key as `X-API-Key`).
const WWW_AUTHENTICATE: &str = "Bearer realm=\"session-backend\"";

#[cfg(test)]
mod tests {
    use sea_orm::{ConnAcquireErr, RuntimeErr};

    use super::*;

    #[test]
    fn transient_database_failures_are_503_and_pool_timeouts_are_told_apart() {
        let pool = Error::from(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert!(matches!(pool, Error::PoolTimeout));
        let gone =
            Error::from(DbErr::Conn(RuntimeErr::Internal("the group of writes was not committed".into())));
        assert!(matches!(gone, Error::Unavailable(_)));
        for err in [pool, gone] {
            assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(err.kind(), "ServiceUnavailableError");
        }
        assert!(matches!(Error::from(DbErr::Custom("a bug".into())), Error::Internal));
    }
}
