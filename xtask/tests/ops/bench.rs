//! `cargo xtask bench` end to end, briefly: every scenario on both
//! backends for a second (the search-index one writes its snapshots once
//! each), with the debug binary the test build made. It checks that the
//! benchmark runs and reports, not how fast anything is.

use crate::support::{have, root, text, xtask};

#[test]
fn bench_runs_every_scenario_on_both_backends_and_prints_the_table() {
    let Ok(database_url) = std::env::var("TEST_DATABASE_URL") else {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "REQUIRE_POSTGRES=1 but no TEST_DATABASE_URL"
        );
        eprintln!("skipping: no TEST_DATABASE_URL");
        return;
    };
    if !have("pgbench", &["--version"]) || !have("psql", &["--version"]) {
        return;
    }
    let binary = root().join("target/debug/session-backend");
    assert!(binary.exists(), "the test build makes {}", binary.display());
    let out = xtask()
        .args(["bench", "--seconds", "1", "--concurrency", "2", "--database-url", &database_url])
        .arg("--binary")
        .arg(&binary)
        .current_dir(root())
        .output()
        .expect("xtask bench");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("| PostgreSQL |") || l.starts_with("| SQLite |")).collect();
    let cells = |row: &str| -> Vec<String> { row.split('|').map(|c| c.trim().to_owned()).collect() };
    // Load scenarios (12 columns), start-up lines (3), search-index sizes (6).
    let load: Vec<&&str> = rows.iter().filter(|r| cells(r).len() == 14).collect();
    let index: Vec<&&str> = rows.iter().filter(|r| cells(r).len() == 8).collect();
    assert_eq!((load.len(), index.len(), rows.len()), (2 * 8, 2 * 3, 2 * (8 + 1 + 3)), "{stdout}");
    for row in load {
        let cells = cells(row);
        let per_second: f64 = cells[3].parse().unwrap_or(0.0);
        assert!(per_second > 0.0, "{row}");
        assert_eq!(cells[6], "0", "errors in {row}\n{stderr}");
    }
    for row in index {
        let cells = cells(row);
        let (indexed, unindexed): (f64, f64) =
            (cells[3].parse().unwrap_or(0.0), cells[4].parse().unwrap_or(0.0));
        assert!(indexed > 0.0 && unindexed > 0.0, "{row}");
    }
    for scenario in ["append one message", "read a 100-message page"] {
        let row = rows.iter().find(|r| r.starts_with("| PostgreSQL |") && r.contains(scenario)).expect("row");
        let ratio: f64 = row.split('|').map(str::trim).nth(12).and_then(|r| r.parse().ok()).unwrap_or(0.0);
        assert!(ratio > 0.0, "pgbench ran beside {scenario}: {row}");
    }
}
