//! Backup → wipe → restore with every row compared, on PostgreSQL and
//! SQLite; a corrupted dump and a non-empty target are refused and change
//! nothing.
//!
//! Over 400 lines: the round trip, refusals and the in-cluster path share
//! one snapshot-and-compare fixture.

use std::{path::Path, process::Command};

use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};
use serde_json::json;
use session_backend::{Server, config::Config, db::Database};

use crate::support::{POSTGRES_IMAGE, drop_postgres_schema, have, image, postgres_schema, text, xtask};

/// Every row of every table, in key order, as comparable text.
async fn snapshot(url: &str) -> Vec<String> {
    let db = Database::connect(&config(url)).await.expect("connect");
    let conn = db.orm();
    let mut rows = Vec::new();
    let sessions = entity::session::Entity::find()
        .order_by_asc(entity::session::Column::SessionId)
        .all(conn)
        .await
        .expect("sessions");
    rows.extend(sessions.iter().map(|r| format!("{r:?}")));
    let agents = entity::agent::Entity::find()
        .order_by_asc(entity::agent::Column::SessionId)
        .order_by_asc(entity::agent::Column::AgentId)
        .all(conn)
        .await
        .expect("agents");
    rows.extend(agents.iter().map(|r| format!("{r:?}")));
    let messages = entity::message::Entity::find()
        .order_by_asc(entity::message::Column::SessionId)
        .order_by_asc(entity::message::Column::AgentId)
        .order_by_asc(entity::message::Column::MessageId)
        .all(conn)
        .await
        .expect("messages");
    rows.extend(messages.iter().map(|r| format!("{r:?}")));
    let multi = entity::multi_agent::Entity::find()
        .order_by_asc(entity::multi_agent::Column::SessionId)
        .order_by_asc(entity::multi_agent::Column::MultiAgentId)
        .all(conn)
        .await
        .expect("multi_agents");
    rows.extend(multi.iter().map(|r| format!("{r:?}")));
    db.close().await;
    rows
}

fn config(url: &str) -> Config {
    let mut config = Config::default();
    config.server.port = 0;
    config.database.url = Some(session_backend::config::DatabaseUrl::new(url));
    config
}

/// Fills the database through the real server: awkward payloads included.
async fn populate(url: &str) {
    let server = Server::start(config(url)).await.expect("server");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        drop(rx.await);
    }));
    let client = reqwest::Client::new();
    for s in 0..3 {
        let session = format!("s{s}:é");
        let sid = session.replace(':', "%3A").replace('é', "%C3%A9");
        let body = json!({"session_id": session, "metadata": {"n": 9007199254740993_u64, "nul": "a\u{0}b"}});
        assert_eq!(
            client.post(format!("{base}/api/v1/sessions")).json(&body).send().await.expect("post").status(),
            201
        );
        for a in 0..2 {
            let agent = json!({"agent_id": format!("a{a}"), "state": {"deep": [[{"x": 1}]]}, "conversation_manager_state": {}, "_internal_state": {"i": a}});
            let r = client
                .post(format!("{base}/api/v1/sessions/{sid}/agents"))
                .json(&agent)
                .send()
                .await
                .expect("agent");
            assert_eq!(r.status(), 201);
            let batch: Vec<_> = (0..40)
                .map(|i| json!({"message_id": i, "message": {"role": "user", "content": [{"text": format!("m{i} ✓\u{0}")}]}}))
                .collect();
            let r = client
                .post(format!("{base}/api/v1/sessions/{sid}/agents/a{a}/messages/batch"))
                .json(&json!({"messages": batch}))
                .send()
                .await
                .expect("batch");
            assert_eq!(r.status(), 201);
        }
        let r = client
            .post(format!("{base}/api/v1/sessions/{sid}/multi-agents"))
            .json(&json!({"multi_agent_id": "default_graph", "state": {"status": "completed"}}))
            .send()
            .await
            .expect("multi");
        assert_eq!(r.status(), 201);
    }
    drop(tx);
    running.await.expect("server task").expect("server stops");
}

fn run_xtask(args: &[&str]) -> std::process::Output {
    xtask().args(args).output().expect("xtask runs")
}

async fn round_trip(url: &str, wipe: impl AsyncFnOnce(), dir: &Path) {
    populate(url).await;
    let before = snapshot(url).await;
    assert_eq!(before.len(), 3 + 6 + 240 + 3);
    let out = dir.display().to_string();
    let backup = run_xtask(&["backup", "--database-url", url, "--output", &out, "--name", "b1"]);
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    let manifest_path = dir.join("b1.manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("manifest")).expect("json");
    assert_eq!(
        manifest["tables"],
        json!({"sessions": 3, "agents": 6, "messages": 240, "multi_agents": 3, "blobs": 0, "blob_chunks": 0})
    );
    assert_eq!(manifest["schema_version"], latest_migration());
    assert_eq!(manifest["sha256"].as_str().map(str::len), Some(64));
    assert!(!manifest["source"].as_str().unwrap_or_default().contains(":pw@"), "{manifest}");
    let manifest_arg = manifest_path.display().to_string();

    // A non-empty target without --force: refused, untouched.
    let refused = run_xtask(&["restore", "--manifest", &manifest_arg, "--database-url", url]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--force"), "{}", text(&refused.stderr));
    assert_eq!(snapshot(url).await, before);

    wipe().await;
    assert!(snapshot_or_empty(url).await.is_empty(), "wipe left rows");

    // A corrupted dump: refused, target untouched.
    let dump = dir.join(manifest["file"].as_str().expect("file"));
    let original = std::fs::read(&dump).expect("dump");
    let mut corrupted = original.clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0xff;
    std::fs::write(&dump, &corrupted).expect("corrupt");
    let refused = run_xtask(&["restore", "--manifest", &manifest_arg, "--database-url", url]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("does not match its manifest"), "{}", text(&refused.stderr));
    assert!(snapshot_or_empty(url).await.is_empty());
    std::fs::write(&dump, &original).expect("restore the dump file");

    let restored = run_xtask(&["restore", "--manifest", &manifest_arg, "--database-url", url]);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert_eq!(snapshot(url).await, before, "every row must come back equal");
    // And --force replaces a non-empty target.
    let forced = run_xtask(&["restore", "--manifest", &manifest_arg, "--database-url", url, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_eq!(snapshot(url).await, before);
}

/// Rows, or none when the tables are gone.
async fn snapshot_or_empty(url: &str) -> Vec<String> {
    let db = Database::connect(&config(url)).await.expect("connect");
    let counts = Database::table_counts(db.orm()).await.expect("counts");
    db.close().await;
    if counts.values().all(|&n| n == 0) { vec![] } else { snapshot(url).await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_wipe_restore_keeps_every_row() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("live.db").display());
    let db_path = dir.path().join("live.db");
    let backups = dir.path().join("backups");
    round_trip(
        &url,
        async || {
            for suffix in ["", "-wal", "-shm"] {
                drop(std::fs::remove_file(format!("{}{suffix}", db_path.display())));
            }
        },
        &backups,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_wipe_restore_keeps_every_row() {
    if !have("pg_dump", &["--version"]) || !have("pg_restore", &["--version"]) {
        return;
    }
    let Some((url, schema)) = postgres_schema("ops_backup").await else { return };
    let admin = sea_orm::Database::connect(&url).await.expect("admin connection");
    let dir = tempfile::tempdir().expect("dir");
    let wipe_sql = format!("DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}");
    round_trip(
        &url,
        async || {
            admin.execute_unprepared(&wipe_sql).await.expect("wipe");
        },
        dir.path(),
    )
    .await;
    admin.close().await.expect("close");
    drop_postgres_schema(&schema).await;
}

/// `kubectl` for this test. `get pods -l SELECTOR` answers `$SHIM_POD`
/// when every label of the selector is among the pod's `$SHIM_LABELS` (as
/// the chart renders them); `exec -n NS POD -c C -- CMD…` runs CMD in the
/// Docker container `$SHIM_CONTAINER`. Every call is logged, so
/// `backup --release` streams a real pg_dump out of a real PostgreSQL
/// container exactly as it would out of the release's pod.
const KUBECTL_SHIM: &str = r#"#!/bin/sh
echo "$*" >> "$SHIM_LOG"
case "$1" in
  version) exit 0 ;;
  get)
    selector=""
    while [ "$#" -gt 0 ]; do [ "$1" = "-l" ] && selector="$2"; shift; done
    for label in $(echo "$selector" | tr ',' ' '); do
      case ",$SHIM_LABELS," in *",$label,"*) ;; *) exit 0 ;; esac
    done
    printf '%s' "$SHIM_POD"; exit 0 ;;
  exec) ;;
  *) echo "unsupported: $*" >&2; exit 2 ;;
esac
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec docker exec -i "$SHIM_CONTAINER" "$@"
"#;

/// A PostgreSQL container of its own, removed when dropped.
struct PgContainer {
    name: String,
    port: String,
}

impl PgContainer {
    /// Starts one with `user`, `password` and database `db`; `None` when
    /// Docker is not available (and not required).
    async fn start(user: &str, password: &str, db: &str) -> Option<Self> {
        if !have("docker", &["info"]) {
            return None;
        }
        let image = image("TEST_POSTGRES_IMAGE", POSTGRES_IMAGE)?;
        let name = format!(
            "sb-ops-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let started = Command::new("docker")
            .args(["run", "-d", "--name", &name, "-p", "127.0.0.1::5432"])
            .args(["-e", &format!("POSTGRES_USER={user}"), "-e", &format!("POSTGRES_PASSWORD={password}")])
            .args(["-e", &format!("POSTGRES_DB={db}")])
            .arg(&image)
            .output()
            .expect("docker run");
        assert!(started.status.success(), "{}", text(&started.stderr));
        let mut container = Self { name, port: String::new() };
        let ready = std::time::Instant::now();
        while !Command::new("docker")
            .args(["exec", &container.name, "pg_isready", "-U", user, "-d", db, "-h", "127.0.0.1"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(ready.elapsed().as_secs() < 60, "PostgreSQL container never became ready");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let port = text(
            &Command::new("docker")
                .args(["port", &container.name, "5432/tcp"])
                .output()
                .expect("port")
                .stdout,
        );
        let port = port
            .lines()
            .find_map(|l| l.strip_prefix("127.0.0.1:"))
            .expect("published port")
            .trim()
            .to_owned();
        container.port = port;
        Some(container)
    }
}

impl Drop for PgContainer {
    fn drop(&mut self) {
        drop(Command::new("docker").args(["rm", "-f", "-v", &self.name]).output());
    }
}

/// A password as people write it, raw and percent-encoded in the URL,
/// reaches pg_dump and pg_restore exactly as the server reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_with_url_characters_reach_pg_dump_as_the_server_reads_them() {
    if !have("pg_dump", &["--version"]) || !have("pg_restore", &["--version"]) {
        return;
    }
    let Some(pg) = PgContainer::start("app", "a+b&c", "sessions").await else { return };
    let dir = tempfile::tempdir().expect("dir");
    for (i, password) in ["a+b&c", "a%2Bb%26c"].iter().enumerate() {
        let url = format!("postgres://app:{password}@127.0.0.1:{}/sessions", pg.port);
        // The server itself starts with this URL (populate runs it) …
        populate(&url).await;
        let before = snapshot(&url).await;
        let out = dir.path().join(format!("b{i}"));
        let backup = run_xtask(&[
            "backup",
            "--database-url",
            &url,
            "--output",
            &out.display().to_string(),
            "--name",
            "b",
        ]);
        assert!(backup.status.success(), "{password}: {}", text(&backup.stderr));
        assert!(
            !text(&backup.stderr).contains("a+b&c") && !text(&backup.stderr).contains("a%2B"),
            "password shown"
        );
        let admin = sea_orm::Database::connect(&url).await.expect("admin");
        admin.execute_unprepared("DROP SCHEMA public CASCADE; CREATE SCHEMA public").await.expect("wipe");
        admin.close().await.expect("close");
        let manifest = out.join("b.manifest.json").display().to_string();
        let restored = run_xtask(&["restore", "--manifest", &manifest, "--database-url", &url]);
        assert!(restored.status.success(), "{password}: {}", text(&restored.stderr));
        assert_eq!(snapshot(&url).await, before, "{password}");
        let admin = sea_orm::Database::connect(&url).await.expect("admin");
        admin.execute_unprepared("DROP SCHEMA public CASCADE; CREATE SCHEMA public").await.expect("wipe");
        admin.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_backup_streams_pg_dump_out_of_the_release_pod() {
    if !have("pg_restore", &["--version"]) || !have("helm", &["version"]) {
        return;
    }
    let Some(pg) = PgContainer::start("session_backend", "pod-pw", "session_backend").await else { return };
    let url = format!("postgres://session_backend:pod-pw@127.0.0.1:{}/session_backend", pg.port);
    populate(&url).await;
    let before = snapshot(&url).await;
    // The release is named one way and its objects another: the pod is
    // found by the chart's own labels.
    let rendered = crate::support::ok(crate::support::run(
        "helm",
        &["template", "rel", "deploy/helm/session-backend", "--set", "fullnameOverride=custom-sessions"],
    ));
    let objects = crate::support::documents(&rendered);
    let statefulset = crate::support::find(&objects, "StatefulSet", None);
    let labels = statefulset["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels")
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",");
    let pod = format!("{}-0", statefulset["metadata"]["name"].as_str().expect("name"));
    assert_eq!(pod, "custom-sessions-postgresql-0");

    let dir = tempfile::tempdir().expect("dir");
    let shim = dir.path().join("kubectl");
    std::fs::write(&shim, KUBECTL_SHIM).expect("shim");
    let chmod = Command::new("chmod").args(["+x"]).arg(&shim).status().expect("chmod");
    assert!(chmod.success());
    let log = dir.path().join("kubectl.log");
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = dir.path().join("backups").display().to_string();
    let backup = xtask()
        .args(["backup", "--release", "rel", "--namespace", "sessions", "--output", &out, "--name", "c1"])
        .env("PATH", &path)
        .env("SHIM_CONTAINER", &pg.name)
        .env("SHIM_LOG", &log)
        .env("SHIM_POD", &pod)
        .env("SHIM_LABELS", &labels)
        .output()
        .expect("xtask backup");
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    let calls = std::fs::read_to_string(&log).expect("kubectl log");
    assert!(calls.contains("exec -n sessions custom-sessions-postgresql-0 -c postgresql --"), "{calls}");
    let manifest_path = dir.path().join("backups/c1.manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("manifest")).expect("json");
    assert_eq!(
        manifest["tables"],
        json!({"sessions": 3, "agents": 6, "messages": 240, "multi_agents": 3, "blobs": 0, "blob_chunks": 0})
    );
    assert_eq!(manifest["schema_version"], latest_migration());
    assert_eq!(manifest["source"], "release rel in namespace sessions");

    // The streamed dump restores to equal data.
    let admin = sea_orm::Database::connect(&url).await.expect("admin");
    admin.execute_unprepared("DROP SCHEMA public CASCADE; CREATE SCHEMA public").await.expect("wipe");
    admin.close().await.expect("close");
    let manifest_arg = manifest_path.display().to_string();
    let restored = xtask()
        .args(["restore", "--manifest", &manifest_arg, "--database-url", &url])
        .output()
        .expect("restore");
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert_eq!(snapshot(&url).await, before);
}

/// `restore --force` over a live SQLite file: at no moment is the file
/// missing or holding part of the new copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_sqlite_restore_never_leaves_the_target_missing_or_partial() {
    let dir = tempfile::tempdir().expect("dir");
    let big = format!("sqlite://{}?mode=rwc", dir.path().join("big.db").display());
    let server = Server::start(config(&big)).await.expect("server");
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        drop(rx.await);
    }));
    let client = reqwest::Client::new();
    let blob = "b".repeat(8 * 1024 * 1024);
    for i in 0..4 {
        let body = json!({"session_id": format!("big-{i}"), "metadata": {"blob": blob}});
        let status =
            client.post(format!("{base}/api/v1/sessions")).json(&body).send().await.expect("post").status();
        assert_eq!(status, 201);
    }
    drop(tx);
    running.await.expect("server task").expect("server stops");
    let before = snapshot(&big).await;
    let backups = dir.path().join("backups");
    let backup = run_xtask(&[
        "backup",
        "--database-url",
        &big,
        "--output",
        &backups.display().to_string(),
        "--name",
        "b",
    ]);
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    let dump_size = std::fs::metadata(backups.join("b.sqlite")).expect("dump").len();

    // The target: a small database that is replaced by force.
    let target_path = dir.path().join("small.db");
    let target = format!("sqlite://{}?mode=rwc", target_path.display());
    populate(&target).await;
    let small_max = std::fs::metadata(&target_path).expect("target").len() * 4;
    assert!(small_max < dump_size / 2, "the test needs a dump much larger than the target");
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (watching, path) = (watching.clone(), target_path.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(std::fs::metadata(&path).map(|m| m.len()).ok());
            }
            seen
        })
    };
    let manifest = backups.join("b.manifest.json").display().to_string();
    let restored = run_xtask(&["restore", "--manifest", &manifest, "--database-url", &target, "--force"]);
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().expect("watcher");
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert!(seen.len() > 100, "only {} looks at the file", seen.len());
    for size in &seen {
        match size {
            None => panic!("the target was missing during the restore"),
            Some(n) => assert!(
                *n <= small_max || *n == dump_size,
                "a partial copy was visible: {n} bytes of {dump_size}"
            ),
        }
    }
    assert_eq!(snapshot(&target).await, before);
}

/// The name of the newest migration, the schema version a backup names.
fn latest_migration() -> String {
    use migration::MigratorTrait;
    migration::Migrator::migrations().last().map(|m| m.name().to_owned()).expect("a migration")
}
