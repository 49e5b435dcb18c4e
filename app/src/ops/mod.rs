//! Backup and restore, for the binary (`session-backend backup|restore`,
//! usable inside the image or pod) and for `cargo xtask backup|restore`.
//! A backup is a dump plus a manifest (row counts, schema version, sha256)
//! that the restore checks before and after.

pub mod backup;
mod libpq;
mod manifest;
pub mod restore;
pub mod tools;
