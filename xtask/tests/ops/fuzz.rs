//! Schemathesis (from PyPI) against the real server on SQLite and on
//! PostgreSQL: every check, every phase including the stateful one, about
//! a hundred cases per operation, and not a single failure. The document
//! promises exactly what the server does, so a generated client or a fuzzer
//! can trust it.
//!
//! `schemathesis.toml` beside this file adds 412 to the statuses a valid
//! request may get (a stale `If-Match`), as 404 and 409 already are.
//!
//! SQLite runs with authentication off, PostgreSQL with API keys on: the
//! fuzzer sends the key, and its `ignored_auth` check proves every
//! operation the document secures refuses requests without one.
//!
//! `SCHEMATHESIS` names the `st` program (CI installs a pinned one);
//! `SCHEMATHESIS_SEED` replays another seed (CI keeps one, so a red run
//! can be reproduced exactly).

use std::{process::Command, time::Instant};

use crate::support::{drop_postgres_schema, have, postgres_schema, serve, text};
use serde_json::Value;

const DEFAULT_SEED: &str = "20261122";

fn st() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "st".into())
}

/// Runs the fuzzer against a server on `database_url`, with API keys on
/// when `keyed`; the run's summary.
async fn fuzz(database_url: &str, label: &str, keyed: bool) {
    let key = session_backend::domain::keys::mint().expect("key");
    let server = serve(database_url, keyed.then_some(&key)).await;
    let base = server.base.clone();
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("report.json");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let settings = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ops/schemathesis.toml");
    let mut args: Vec<String> = vec![
        "--config-file".into(),
        settings.into(),
        "run".into(),
        format!("{base}/openapi.json"),
        "--checks".into(),
        "all".into(),
        "--phases".into(),
        "examples,coverage,fuzzing,stateful".into(),
        "--max-examples".into(),
        "100".into(),
        "--workers".into(),
        "1".into(),
        "--seed".into(),
        seed.clone(),
        "--generation-database".into(),
        "none".into(),
        "--no-color".into(),
        "--report".into(),
        "ndjson".into(),
        "--report-ndjson-path".into(),
        report.display().to_string(),
    ];
    if keyed {
        args.extend(["--header".into(), format!("Authorization: Bearer {}", key.key)]);
    }
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || Command::new(st()).args(&args).output())
        .await
        .expect("fuzzer task")
        .expect("schemathesis runs");
    server.stop().await;
    let stdout = text(&output.stdout);
    let summary =
        stdout.lines().rev().find(|l| l.contains("generated")).unwrap_or_default().trim().to_owned();
    eprintln!("{label}: schemathesis (seed {seed}) in {:?}: {summary}", started.elapsed());
    assert!(
        output.status.success(),
        "{label}: schemathesis found failures (seed {seed}):\n{stdout}\n{}",
        text(&output.stderr)
    );
    let cases: u64 = summary.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(cases >= 2000, "{label}: only {cases} cases ({summary})");
    assert!(summary.contains(&format!("{cases} passed")), "{label}: {summary}");
    // Every phase ran, the stateful one included.
    let events = std::fs::read_to_string(&report).unwrap_or_default();
    let phases: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["PhaseFinished"]["phase"]["is_enabled"] == true && e["PhaseFinished"]["status"] != "skip"
        })
        .filter_map(|e| e["PhaseFinished"]["phase"]["name"].as_str().map(str::to_owned))
        .collect();
    for phase in ["examples", "coverage", "fuzzing", "stateful"] {
        assert!(
            phases.iter().any(|p| p.eq_ignore_ascii_case(phase)),
            "{label}: phase {phase} did not run: {phases:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_on_sqlite_and_postgresql() {
    if !have(&st(), &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    fuzz(&format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display()), "sqlite", false).await;
    let Some((url, schema)) = postgres_schema("fuzz").await else { return };
    fuzz(&url, "postgres with API keys", true).await;
    drop_postgres_schema(&schema).await;
}
