//! The one error type of the service and its mapping to the contract's
//! envelope: `{"detail": {"error": KIND, "message": TEXT, "request_id": ID}}`.
//!
//! Database errors are classified by kind (connection trouble → 503,
//! anything else → 500); their text is logged, never returned.

use poem::http::StatusCode;
use sea_orm::{DbErr, RuntimeErr};

use crate::request_id;

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
    /// A bug or an unexpected database failure; details are only logged.
    #[error("internal server error")]
    Internal,
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
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::PayloadTooLarge(_) => "PayloadTooLargeError",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaTypeError",
            Self::RequestTimeout(_) => "RequestTimeoutError",
            Self::MethodNotAllowed(_) => "MethodNotAllowedError",
            Self::Unavailable(_) => "ServiceUnavailableError",
            Self::Internal => "InternalServerError",
        }
    }

    /// The envelope for this error, tagged with the current request id.
    pub fn envelope(&self) -> serde_json::Value {
        serde_json::json!({
            "detail": {
                "error": self.kind(),
                "message": self.to_string(),
                "request_id": request_id::current(),
            }
        })
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

fn is_pool_timeout(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), sea_orm::sqlx::Error::PoolTimedOut)
        }
        _ => false,
    }
}

impl Error {
    /// `err` as the answer of every one of `requests` requests that shared
    /// the statement: a pool timeout is counted once for each.
    pub fn shared_by(err: DbErr, requests: usize) -> Self {
        if is_pool_timeout(&err) {
            (1..requests).for_each(|_| crate::metrics::pool_timed_out());
        }
        Self::from(err)
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        if is_pool_timeout(&err) {
            crate::metrics::pool_timed_out();
        }
        if is_timeout(&err) {
            tracing::warn!(error = %err, "database statement timed out");
            Self::Unavailable(
                "the database did not finish in time (a lock or a slow statement); nothing was written, retry shortly"
                    .into(),
            )
        } else if is_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Self::Unavailable("the database is unavailable, retry shortly".into())
        } else {
            tracing::error!(error = %err, "database error");
            Self::Internal
        }
    }
}

/// The SQLSTATE of a PostgreSQL error, if `err` is one.
fn postgres_code(err: &DbErr) -> Option<String> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err else {
        return None;
    };
    let db = e.as_database_error()?;
    db.try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()?;
    db.code().map(|c| c.into_owned())
}

/// Whether PostgreSQL aborted the statement for colliding with another
/// transaction (a serialization failure or a deadlock): the same work
/// succeeds when tried again.
pub fn is_collision(err: &DbErr) -> bool {
    postgres_code(err).is_some_and(|code| code == "40001" || code == "40P01")
}

/// Whether PostgreSQL cancelled the statement for running past
/// `statement_timeout` (57014) or waiting past `lock_timeout`.
fn is_timeout(err: &DbErr) -> bool {
    postgres_code(err).is_some_and(|code| code == "57014") || is_lock_timeout(err)
}

/// Whether PostgreSQL cancelled the statement for waiting past
/// `lock_timeout` (55P03) on a lock another transaction holds.
pub fn is_lock_timeout(err: &DbErr) -> bool {
    postgres_code(err).is_some_and(|code| code == "55P03")
}

/// Whether the error means "the database cannot be reached right now"
/// rather than "this statement is wrong".
fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5), SQLITE_LOCKED (6), and the storage
                // failing: NOMEM (7), READONLY (8), IOERR (10), FULL (13),
                // CANTOPEN (14); with extended codes.
                code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14))
            } else {
                // PostgreSQL: class 08 (connection exception), 57P01–03
                // (shutting down, cannot connect now), class 53 (out of
                // disk, memory or connections), 40001 and 40P01 (a
                // serialization failure or deadlock: a retry succeeds).
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53")
                    || code == "40001"
                    || code == "40P01"
            }
        }
        _ => false,
    }
}
