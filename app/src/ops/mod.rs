//! Operations for the binary, usable inside the image or pod: backup and
//! restore (also behind `cargo xtask backup|restore`), where a backup is a
//! dump plus a manifest (row counts, schema version, sha256) that the
//! restore checks before and after; and import/export of the SDK's
//! `FileSessionManager` layout.

pub mod backup;
pub mod file_sessions;
mod libpq;
mod manifest;
pub mod progress;
pub mod restore;
mod tools;
