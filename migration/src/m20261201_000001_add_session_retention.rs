//! Retention: a session may carry a time to live.
//!
//! `ttl_seconds` is the session's own TTL (NULL: kept forever) and
//! `expires_at` the instant it lapses, in microseconds since the Unix
//! epoch (UTC), kept as an integer so that both backends compute and
//! compare it the same way, in SQL: an update sets it to the update's time
//! plus `ttl_seconds`. A partial index over the sessions that expire at all
//! lets the sweeper find the lapsed ones without reading the others.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TtlSeconds,
    ExpiresAt,
}

const INDEX: &str = "idx_sessions_expiring";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in [Sessions::TtlSeconds, Sessions::ExpiresAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX {INDEX} ON sessions (expires_at) WHERE expires_at IS NOT NULL"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(Sessions::Table).to_owned()).await?;
        for column in [Sessions::ExpiresAt, Sessions::TtlSeconds] {
            manager.alter_table(Table::alter().table(Sessions::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
