//! Operations, exercised for real: the Helm chart (lint, render, schema
//! validation, assertions on the objects), `cargo xtask deploy --dry-run`,
//! the container image against a PostgreSQL container, and backup → wipe →
//! restore on PostgreSQL and SQLite, Schemathesis, cargo-deny over the
//! dependency graph, and a brief run of `cargo xtask bench`.
//!
//! They need helm, Docker, pg_dump and a manifest validator. Without them
//! a test says what is missing and passes, unless `REQUIRE_OPS_TOOLS=1`
//! (CI sets it, after `.ci/run` has installed everything).

mod backup;
mod bench;
mod chart;
mod fuzz;
mod image;
mod pod;
mod supply_chain;
mod support;
mod wheel;
