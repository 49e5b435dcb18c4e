//! Schema migrations of the session backend, shared by SQLite and PostgreSQL.
//!
//! One module per change, named `mYYYYMMDD_HHMMSS_verb_noun`. A released
//! migration is never edited: add a new one.

pub use sea_orm_migration::{migrator::MigrationStatus, prelude::*};

mod m20261121_000001_create_tables;
mod m20261122_000001_create_blobs;
mod m20261201_000001_add_session_retention;
mod m20261204_000001_index_and_reclaim_blobs;
mod m20261205_000001_add_session_leases;

/// Every migration of the project, in the order they apply.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_tables::Migration),
            Box::new(m20261122_000001_create_blobs::Migration),
            Box::new(m20261201_000001_add_session_retention::Migration),
            Box::new(m20261204_000001_index_and_reclaim_blobs::Migration),
            Box::new(m20261205_000001_add_session_leases::Migration),
        ]
    }
}
