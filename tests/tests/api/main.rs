//! Integration tests: the real server on port 0, every test against SQLite
//! and PostgreSQL, through HTTP only.

mod helpers;

mod agents;
mod auth;
mod blob_races;
mod blob_reclaim;
mod blob_search;
mod citus_ddl;
mod concurrency;
mod connections;
mod console;
mod edges;
mod faults;
mod fork;
mod http;
mod leases;
mod listings;
mod messages;
mod multi_agents;
mod outage;
mod prometheus;
mod retention;
mod roundtrip;
mod sessions;
mod shards;
mod snapshot_sessions;
mod startup;
mod storage;
mod strands;
mod testcontainers_postgres;
mod transfer;
mod transfer_blobs;
mod versions;
