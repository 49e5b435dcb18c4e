//! Row versions, what an `ETag` names and an `If-Match` asks for.
//!
//! A version changes on every write. A new row starts at its creation clock
//! in microseconds, not at 1, so a row deleted and made again never reuses
//! its predecessor's versions: a stale `If-Match` cannot match the new row.

use super::now;
use crate::error::Error;

/// The version a new row starts at.
pub fn first() -> i64 {
    now().timestamp_micros()
}

/// What an update requires of the row's current version: `None` accepts
/// any (no `If-Match`, or `*`), `Some` one of the listed versions.
pub type Expected<'a> = Option<&'a [i64]>;

/// The answer to a conditional update that matched no row, given whether
/// the row exists: 412 when it does (at another version), else why not.
pub fn stale_or(exists: Result<(), Error>) -> Error {
    match exists {
        Ok(()) => Error::PreconditionFailed(
            "the resource has changed since the version named in `If-Match`; read it again and retry".into(),
        ),
        Err(err) => err,
    }
}
