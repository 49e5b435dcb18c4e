//! Leases: one writer per session, fenced by tokens.
//!
//! Three nullable columns on `sessions`, so that the check every write of a
//! session's tree makes reads the same row its `EXISTS` already locks:
//! `lease_holder` (who asked), `lease_token` (the current grant's token,
//! NULL while none was ever granted) and `lease_expires_at` (microseconds
//! since the epoch, the database's clock). A release or a forced break
//! sets the expiry to now and keeps the token, so the next grant's token
//! still grows past it.
//!
//! Expand only: a release that predates leases reads and writes sessions
//! as before (it names its columns), so it keeps working during a rolling
//! upgrade; leases hold once every replica runs this release.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    LeaseHolder,
    LeaseToken,
    LeaseExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let columns = [
            ColumnDef::new(Sessions::LeaseHolder).string_len(256).null().to_owned(),
            ColumnDef::new(Sessions::LeaseToken).big_integer().null().to_owned(),
            ColumnDef::new(Sessions::LeaseExpiresAt).big_integer().null().to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(Table::alter().table(Sessions::Table).add_column(&mut column).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Sessions::LeaseExpiresAt, Sessions::LeaseToken, Sessions::LeaseHolder] {
            manager.alter_table(Table::alter().table(Sessions::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
