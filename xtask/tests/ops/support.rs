//! Shared helpers: tool checks, the xtask binary, helm rendering.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde::Deserialize;
use serde_json::Value;

/// The `cargo xtask` binary under test.
const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// `cargo xtask`, running the server binary built beside it (by `cargo
/// test --workspace`) for the commands it passes on to the binary.
pub fn xtask() -> Command {
    let mut command = Command::new(XTASK);
    command.env("SESSION_BACKEND_BIN", std::path::Path::new(XTASK).with_file_name("session-backend"));
    command
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Whether `tool` can run; when it cannot, says so, and fails the test
/// under `REQUIRE_OPS_TOOLS=1`.
pub fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool).args(probe).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("REQUIRE_OPS_TOOLS").as_deref() != Ok("1"),
            "REQUIRE_OPS_TOOLS=1 but `{tool}` is not available"
        );
        eprintln!("skipping: `{tool}` is not available");
    }
    ok
}

/// The images the Dockerfile and the tests use when no variable names others.
pub const BASE_IMAGE: &str = "gcr.io/distroless/cc-debian12";
pub const BUILDER_IMAGE: &str = "gcr.io/distroless/cc-debian12:debug";
pub const POSTGRES_IMAGE: &str = "postgres:16";

/// The image `variable` names, else `default`, once Docker has it (here
/// already, or pulled within two minutes); `None` when it cannot be had,
/// which, like a missing tool, is said and passes, unless
/// `REQUIRE_OPS_TOOLS=1`.
pub fn image(variable: &str, default: &str) -> Option<String> {
    let image = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    let here =
        Command::new("docker").args(["image", "inspect", &image]).output().is_ok_and(|o| o.status.success());
    if here || pulled(&image) {
        return Some(image);
    }
    assert!(
        std::env::var("REQUIRE_OPS_TOOLS").as_deref() != Ok("1"),
        "REQUIRE_OPS_TOOLS=1 but the image `{image}` ({variable}) is not here and cannot be pulled"
    );
    eprintln!(
        "skipping: the image `{image}` is not here and cannot be pulled (set {variable} to one that is)"
    );
    None
}

/// Whether `docker pull` fetches `image` within two minutes.
fn pulled(image: &str) -> bool {
    let Ok(mut pull) = Command::new("docker")
        .args(["pull", "--quiet", image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        match pull.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            _ => {
                drop(pull.kill());
                drop(pull.wait());
                return false;
            }
        }
    }
}

/// The manifest validator: `K8S_VALIDATOR` (a command, words separated by
/// spaces; CI names its offline validator there), else kubeconform.
pub fn validator() -> Option<Vec<String>> {
    if let Ok(command) = std::env::var("K8S_VALIDATOR") {
        return Some(command.split_whitespace().map(str::to_owned).collect());
    }
    have("kubeconform", &["-v"]).then(|| vec!["kubeconform".into(), "-strict".into()])
}

/// Runs a command in the workspace root and returns its output.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).current_dir(root()).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed ({}):\n{}\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Parses a multi-document YAML stream into JSON values (empty documents dropped).
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The rendered object of `kind` named `name` (or the only one of its kind).
#[track_caller]
pub fn find<'a>(objects: &'a [Value], kind: &str, name: Option<&str>) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && name.is_none_or(|n| o["metadata"]["name"] == n))
        .unwrap_or_else(|| panic!("no {kind} {name:?} rendered"))
}

pub fn kinds(objects: &[Value]) -> Vec<String> {
    objects.iter().map(|o| o["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Docker objects removed when the test ends, however it ends.
#[derive(Default)]
pub struct Cleanup(pub Vec<(&'static str, String)>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (what, id) in self.0.iter().rev() {
            let args: &[&str] = match *what {
                "network" => &["network", "rm", id],
                "volume" => &["volume", "rm", "-f", id],
                "image" => &["image", "rm", "-f", id],
                _ => &["rm", "-f", "-v", id],
            };
            drop(Command::new("docker").args(args).output());
        }
    }
}

/// The tags `cargo xtask image` reports it built (its `built <tag>, <tag> (…)`
/// line), each to be removed by `cleanup` when the test ends.
pub fn built_images(stderr: &str, cleanup: &mut Cleanup) {
    let line = stderr.lines().find_map(|l| l.strip_prefix("built ")).expect("a `built` line");
    let tags = line.split(" (").next().unwrap_or_default();
    cleanup.0.extend(tags.split(", ").map(|tag| ("image", tag.to_owned())));
}

/// Waits until `GET url` answers 200; the container's log when it never does.
pub async fn answers_200(url: &str, container: &str) {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if client.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let logs = run("docker", &["logs", container]);
    panic!("{url} never answered 200:\n{}{}", text(&logs.stdout), text(&logs.stderr));
}

/// A schema of its own in the `TEST_DATABASE_URL` database, and a URL that
/// uses it; `None` (after saying why) when there is no such database and
/// none is required.
pub async fn postgres_schema(name: &str) -> Option<(String, String)> {
    use sea_orm::ConnectionTrait;
    let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "REQUIRE_POSTGRES=1 but no TEST_DATABASE_URL"
        );
        eprintln!("skipping the PostgreSQL part: no TEST_DATABASE_URL");
        return None;
    };
    let schema = format!("{name}_{}", std::process::id());
    let admin = sea_orm::Database::connect(&base).await.expect("admin connection");
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    admin.close().await.expect("close");
    let separator = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{separator}options=-c%20search_path%3D{schema}"), schema))
}

/// Drops a schema [`postgres_schema`] made.
pub async fn drop_postgres_schema(schema: &str) {
    use sea_orm::ConnectionTrait;
    let base = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    let admin = sea_orm::Database::connect(&base).await.expect("admin connection");
    admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await.expect("drop schema");
    admin.close().await.expect("close");
}

/// The server in-process on a free port, serving until [`Running::stop`].
pub struct Running {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _keys: tempfile::TempDir,
}

/// Starts the server on `database_url`; with `key`, it requires that key
/// (of the tenant `ops`) on the API.
pub async fn serve(database_url: &str, key: Option<&session_backend::domain::keys::Minted>) -> Running {
    let mut config = session_backend::config::Config::for_database(database_url);
    config.server.port = 0;
    let keys = tempfile::tempdir().expect("dir");
    if let Some(key) = key {
        let file = keys.path().join("keys");
        std::fs::write(&file, format!("ops {}\n", key.hash)).expect("keys file");
        config.auth.keys_file = Some(file.display().to_string());
    }
    let server = session_backend::Server::start(config).await.expect("server");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        drop(stopped.await);
    }));
    Running { base, stop, task, _keys: keys }
}

impl Running {
    /// Stops the server and waits for it to drain.
    pub async fn stop(self) {
        drop(self.stop);
        self.task.await.expect("server task").expect("server stops");
    }
}
