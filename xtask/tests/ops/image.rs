//! The container image: built by `cargo xtask image` from the prebuilt
//! release binary, run read-only as non-root against a PostgreSQL
//! container and on its SQLite volume, and exercised through the API.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{
    BASE_IMAGE, BUILDER_IMAGE, Cleanup, POSTGRES_IMAGE, answers_200, built_images, have, image, ok, root,
    run, text, xtask,
};

fn docker(args: &[&str]) -> String {
    ok(run("docker", args)).trim().to_owned()
}

async fn exercise_api(client: &reqwest::Client, base: &str) {
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body).send();
    assert_eq!(
        post("/api/v1/sessions", json!({"session_id": "tenant:1"})).await.expect("post").status(),
        201
    );
    let agent = json!({"agent_id": "a1", "state": {"k": "\u{0}"}, "conversation_manager_state": {}, "_internal_state": {"n": 9007199254740993_u64}});
    assert_eq!(post("/api/v1/sessions/tenant%3A1/agents", agent).await.expect("post").status(), 201);
    let message = json!({"message_id": 0, "message": {"role": "user", "content": [{"text": "hi"}]}});
    assert_eq!(
        post("/api/v1/sessions/tenant%3A1/agents/a1/messages", message).await.expect("post").status(),
        201
    );
    let got: Value = client
        .get(format!("{base}/api/v1/sessions/tenant%3A1/agents/a1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(got["_internal_state"]["n"], json!(9007199254740993_u64));
    let listed: Value = client
        .get(format!("{base}/api/v1/sessions/tenant%3A1/agents/a1/messages?offset=0"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["total"], 1);
}

fn published_port(container: &str) -> String {
    let mapping = docker(&["port", container, "8001/tcp"]);
    let line =
        mapping.lines().find(|l| l.starts_with("127.0.0.1:")).unwrap_or_else(|| panic!("port: {mapping}"));
    format!("http://{line}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_from_the_prebuilt_binary_serves_read_only_as_non_root() {
    if !have("docker", &["info"]) {
        return;
    }
    let (Some(base), Some(builder), Some(postgres)) = (
        image("TEST_BASE_IMAGE", BASE_IMAGE),
        image("TEST_BUILDER_IMAGE", BUILDER_IMAGE),
        image("TEST_POSTGRES_IMAGE", POSTGRES_IMAGE),
    ) else {
        return;
    };
    let repository = "session-backend-ops-test";
    let built = xtask()
        .args(["image", "--repository", repository])
        .args(["--base-image", &base])
        .args(["--builder-image", &builder])
        .current_dir(root())
        .output()
        .expect("xtask image");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let mut cleanup = Cleanup::default();
    built_images(&text(&built.stderr), &mut cleanup);
    let image = format!("{repository}:{}", env!("CARGO_PKG_VERSION"));
    let sha_tag = text(&run("git", &["rev-parse", "--short=12", "HEAD"]).stdout).trim().to_owned();
    assert!(
        text(&built.stderr).contains(&format!("{repository}:{sha_tag}")),
        "not tagged with the git sha: {}",
        text(&built.stderr)
    );

    let size: f64 = docker(&["image", "inspect", "--format", "{{.Size}}", &image]).parse().expect("size");
    let mib = size / 1024.0 / 1024.0;
    eprintln!("image {image}: {mib:.1} MiB");
    assert!(mib < 64.0, "image is {mib:.1} MiB");
    assert_eq!(docker(&["image", "inspect", "--format", "{{.Config.User}}", &image]), "65532:65532");
    assert!(
        docker(&["image", "inspect", "--format", "{{json .Config.Healthcheck}}", &image])
            .contains("healthcheck")
    );

    let id = uuid_like();
    let network = format!("sb-ops-{id}");
    let pg = format!("sb-ops-pg-{id}");
    let api = format!("sb-ops-api-{id}");
    let lite = format!("sb-ops-sqlite-{id}");
    docker(&["network", "create", &network]);
    cleanup.0.push(("network", network.clone()));
    docker(&[
        "run",
        "-d",
        "--name",
        &pg,
        "--network",
        &network,
        "-e",
        "POSTGRES_PASSWORD=ops-test-pw",
        "-e",
        "POSTGRES_DB=sessions",
        &postgres,
    ]);
    cleanup.0.push(("container", pg.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run("docker", &["exec", &pg, "pg_isready", "-U", "postgres", "-d", "sessions", "-h", "127.0.0.1"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "PostgreSQL container never became ready");
        std::thread::sleep(Duration::from_millis(250));
    }

    docker(&[
        "run",
        "-d",
        "--name",
        &api,
        "--network",
        &network,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--health-interval",
        "1s",
        "--health-start-period",
        "1s",
        "-e",
        &format!("POSTGRES_HOST={pg}"),
        "-e",
        "POSTGRES_USER=postgres",
        "-e",
        "POSTGRES_PASSWORD=ops-test-pw",
        "-e",
        "POSTGRES_DB=sessions",
        "-p",
        "127.0.0.1::8001",
        &image,
    ]);
    cleanup.0.push(("container", api.clone()));
    let client = reqwest::Client::new();
    let base = published_port(&api);
    answers_200(&format!("{base}/health/ready"), &api).await;
    exercise_api(&client, &base).await;
    let metrics: Value = client
        .get(format!("{base}/health/metrics"))
        .send()
        .await
        .expect("metrics")
        .json()
        .await
        .expect("json");
    assert_eq!(metrics["database_backend"], "postgres");
    let processes = docker(&["top", &api, "-o", "pid,uid"]);
    let uids: Vec<_> = processes.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(!uids.is_empty() && uids.iter().all(|&u| u == "65532"), "processes: {processes}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = docker(&["inspect", "--format", "{{.State.Health.Status}}", &api]);
        if health == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "HEALTHCHECK never passed: {health}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // SIGTERM: drained and exited 0.
    docker(&["stop", "--time", "20", &api]);
    assert_eq!(docker(&["inspect", "--format", "{{.State.ExitCode}}", &api]), "0");

    // Zero configuration: SQLite on the /data volume, root filesystem read-only.
    serves_on_its_sqlite_volume(&client, &image, &lite, &mut cleanup).await;
}

/// Runs `image` with no configuration (SQLite on a fresh /data volume,
/// read-only root) and exercises the API.
async fn serves_on_its_sqlite_volume(
    client: &reqwest::Client,
    image: &str,
    name: &str,
    cleanup: &mut Cleanup,
) {
    let volume = format!("{name}-data");
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "-v",
        &format!("{volume}:/data"),
        "-p",
        "127.0.0.1::8001",
        image,
    ]);
    cleanup.0.push(("container", name.to_owned()));
    let base = published_port(name);
    answers_200(&format!("{base}/health/ready"), name).await;
    exercise_api(client, &base).await;
    docker(&["rm", "-f", name]);
    drop(Command::new("docker").args(["volume", "rm", &volume]).output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_builds_from_source() {
    if !have("docker", &["info"]) {
        return;
    }
    let (Some(builder), Some(base)) =
        (image("TEST_RUST_BUILDER_IMAGE", "rust:1.95-slim-bookworm"), image("TEST_BASE_IMAGE", BASE_IMAGE))
    else {
        return;
    };
    let repository = "session-backend-ops-source-test";
    let built = xtask()
        .args(["image", "--from-source", "--repository", repository, "--builder-image", &builder])
        .args(["--base-image", &base])
        .current_dir(root())
        .output()
        .expect("xtask image --from-source");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let mut cleanup = Cleanup::default();
    built_images(&text(&built.stderr), &mut cleanup);
    let image = format!("{repository}:{}", env!("CARGO_PKG_VERSION"));
    let version = docker(&["run", "--rm", &image, "--version"]);
    assert_eq!(version, format!("session-backend {}", env!("CARGO_PKG_VERSION")));
    let client = reqwest::Client::new();
    serves_on_its_sqlite_volume(&client, &image, &format!("sb-ops-src-{}", uuid_like()), &mut cleanup).await;
}

fn uuid_like() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos)
}
