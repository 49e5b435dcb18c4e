//! Sessions, agents, messages and multi-agent states.
//!
//! Every table carries `tenant_id` in its primary key so that a later
//! authentication layer can map API keys to tenants without reshaping rows.
//! Children reference their parent through composite foreign keys with
//! `ON DELETE CASCADE`, so one `DELETE` of a session removes everything under
//! it, and an insert under a missing parent fails in the database itself
//! (the API maps that failure to 404 without a separate existence query).
//!
//! Opaque JSON payloads are stored as `text`, not `jsonb`: PostgreSQL's
//! `jsonb` rejects `\u0000` inside strings, normalises numbers and reorders
//! keys, while the contract promises exact round trips. `text` behaves the
//! same on SQLite and PostgreSQL. Timestamps are `timestamptz` on PostgreSQL
//! (text on SQLite, always written in UTC so that text order is time order).
//! `version` counts writes to a row, for optimistic concurrency (ETags).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(id(Sessions::TenantId))
                    .col(id(Sessions::SessionId))
                    .col(ColumnDef::new(Sessions::SessionType).string_len(64).not_null())
                    .col(json(Sessions::Metadata))
                    .col(version(Sessions::Version))
                    .col(timestamp(Sessions::CreatedAt))
                    .col(timestamp(Sessions::UpdatedAt))
                    .primary_key(Index::create().col(Sessions::TenantId).col(Sessions::SessionId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_by_created")
                    .table(Sessions::Table)
                    .col(Sessions::TenantId)
                    .col(Sessions::CreatedAt)
                    .col(Sessions::SessionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(id(Agents::TenantId))
                    .col(id(Agents::SessionId))
                    .col(id(Agents::AgentId))
                    .col(json(Agents::State))
                    .col(json(Agents::ConversationManagerState))
                    .col(json(Agents::InternalState))
                    .col(version(Agents::Version))
                    .col(timestamp(Agents::CreatedAt))
                    .col(timestamp(Agents::UpdatedAt))
                    .primary_key(
                        Index::create().col(Agents::TenantId).col(Agents::SessionId).col(Agents::AgentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agents_session")
                            .from(Agents::Table, (Agents::TenantId, Agents::SessionId))
                            .to(Sessions::Table, (Sessions::TenantId, Sessions::SessionId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_by_created")
                    .table(Agents::Table)
                    .col(Agents::TenantId)
                    .col(Agents::SessionId)
                    .col(Agents::CreatedAt)
                    .col(Agents::AgentId)
                    .to_owned(),
            )
            .await?;

        // The primary key (…, agent_id, message_id) serves every message
        // listing, ascending or descending, by offset or by keyset.
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(id(Messages::TenantId))
                    .col(id(Messages::SessionId))
                    .col(id(Messages::AgentId))
                    .col(ColumnDef::new(Messages::MessageId).big_integer().not_null())
                    .col(json(Messages::Message))
                    .col(ColumnDef::new(Messages::RedactMessage).text().null())
                    .col(timestamp(Messages::CreatedAt))
                    .col(timestamp(Messages::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(Messages::TenantId)
                            .col(Messages::SessionId)
                            .col(Messages::AgentId)
                            .col(Messages::MessageId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_agent")
                            .from(
                                Messages::Table,
                                (Messages::TenantId, Messages::SessionId, Messages::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::SessionId, Agents::AgentId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MultiAgents::Table)
                    .col(id(MultiAgents::TenantId))
                    .col(id(MultiAgents::SessionId))
                    .col(id(MultiAgents::MultiAgentId))
                    .col(json(MultiAgents::State))
                    .col(version(MultiAgents::Version))
                    .col(timestamp(MultiAgents::CreatedAt))
                    .col(timestamp(MultiAgents::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(MultiAgents::TenantId)
                            .col(MultiAgents::SessionId)
                            .col(MultiAgents::MultiAgentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_multi_agents_session")
                            .from(MultiAgents::Table, (MultiAgents::TenantId, MultiAgents::SessionId))
                            .to(Sessions::Table, (Sessions::TenantId, Sessions::SessionId))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_multi_agents_by_created")
                    .table(MultiAgents::Table)
                    .col(MultiAgents::TenantId)
                    .col(MultiAgents::SessionId)
                    .col(MultiAgents::CreatedAt)
                    .col(MultiAgents::MultiAgentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MultiAgents::Table.into_iden(),
            Messages::Table.into_iden(),
            Agents::Table.into_iden(),
            Sessions::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// An identifier column: 1 to 255 bytes of UTF-8, checked by the API.
fn id(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).string_len(255).not_null().to_owned()
}

/// An opaque JSON document, stored as its text (see the module docs).
fn json(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

fn version(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().default(1).to_owned()
}

fn timestamp(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name).timestamp_with_time_zone().not_null().to_owned()
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TenantId,
    SessionId,
    SessionType,
    Metadata,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    TenantId,
    SessionId,
    AgentId,
    State,
    ConversationManagerState,
    InternalState,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    TenantId,
    SessionId,
    AgentId,
    MessageId,
    Message,
    RedactMessage,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MultiAgents {
    Table,
    TenantId,
    SessionId,
    MultiAgentId,
    State,
    Version,
    CreatedAt,
    UpdatedAt,
}
