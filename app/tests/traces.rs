//! Traces from the real binary to an OTLP/HTTP receiver run by the test
//! (JSON encoding, so the test reads it without protobuf): the standard
//! `OTEL_*` variables configure the export, a W3C `traceparent` is
//! continued, each request is a server span and each database statement a
//! child span of it (on SQLite and, when `TEST_DATABASE_URL` names one,
//! on PostgreSQL); nothing is exported without an endpoint.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

mod raw_http;

const BIN: &str = env!("CARGO_BIN_EXE_session-backend");

/// An OTLP/HTTP receiver on loopback: every body POSTed to it, parsed.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        Self { port, bodies }
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<(Value, Value)> {
        let bodies = self.bodies.lock().expect("bodies");
        let mut spans = Vec::new();
        for body in bodies.iter() {
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        spans.push((resource["resource"].clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

/// Answers each request on a (keep-alive) connection with `200 {}`.
fn serve(stream: TcpStream, bodies: &Mutex<Vec<Value>>) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(parsed) = serde_json::from_slice(&body) {
            bodies.lock().expect("bodies").push(parsed);
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// One HTTP/1.1 exchange: the status (0 when nothing listens).
fn http(port: u16, method: &str, path: &str, headers: &str, body: &str) -> u16 {
    raw_http::exchange(port, method, path, headers, body).0
}

fn attribute<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

/// Runs the server with `env`, makes the requests, stops it with SIGTERM.
fn run_server(env: &[(&str, String)], requests: impl FnOnce(u16)) {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd.env("API_PORT", port.to_string()).stdout(Stdio::null()).stderr(Stdio::null());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("spawn");
    let started = Instant::now();
    while http(port, "GET", "/health", "", "") != 200 {
        if started.elapsed() > Duration::from_secs(20) || child.try_wait().ok().flatten().is_some() {
            drop(child.kill());
            drop(child.wait());
            panic!("server did not come up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    requests(port);
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[test]
fn requests_and_statements_are_exported_as_spans_continuing_the_callers_trace() {
    spans_continue_the_callers_trace(None);
}

#[test]
fn postgres_statements_are_spans_of_their_request() {
    let Some(base) = std::env::var("TEST_DATABASE_URL").ok() else {
        assert!(
            std::env::var("REQUIRE_POSTGRES").is_err(),
            "REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not"
        );
        return;
    };
    let schema = format!("traces_{}", std::process::id());
    let admin = |sql: String| {
        use sea_orm::ConnectionTrait;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let db = sea_orm::Database::connect(&base).await.expect("connect");
            db.execute_unprepared(&sql).await.expect("schema");
        });
    };
    admin(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    spans_continue_the_callers_trace(Some(format!("{base}{separator}options=-c%20search_path%3D{schema}")));
    admin(format!("DROP SCHEMA {schema} CASCADE"));
}

fn spans_continue_the_callers_trace(database_url: Option<String>) {
    let receiver = Receiver::start();
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{}", receiver.port)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_SERVICE_NAME", "sessions-under-test".to_owned()),
    ];
    env.extend(database_url.map(|url| ("DATABASE_URL", url)));
    run_server(&env, |port| {
        let traceparent = format!("traceparent: 00-{TRACE}-{PARENT}-01\r\n");
        assert_eq!(http(port, "POST", "/api/v1/sessions", &traceparent, r#"{"session_id": "t1"}"#), 201);
        assert_eq!(http(port, "GET", "/api/v1/sessions?page=1", "", ""), 200);
    });
    // The exporter sent what was left at exit; give the receiver a moment.
    let started = Instant::now();
    let spans = loop {
        let spans = receiver.spans();
        if spans.iter().any(|(_, s)| s["name"] == "GET /api/v1/sessions")
            || started.elapsed() > Duration::from_secs(5)
        {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let names: Vec<&Value> = spans.iter().map(|(_, s)| &s["name"]).collect();
    let (resource, create) = spans
        .iter()
        .find(|(_, s)| s["name"] == "POST /api/v1/sessions")
        .unwrap_or_else(|| panic!("no span for the create: {names:?}"));
    assert_eq!(create["traceId"], TRACE, "the caller's trace continues: {create}");
    assert_eq!(create["parentSpanId"], PARENT, "{create}");
    assert!(create["kind"] == 2 || create["kind"] == "SPAN_KIND_SERVER", "a server span: {create}");
    assert_eq!(
        attribute(create, "http.route").and_then(|v| v["stringValue"].as_str()),
        Some("/api/v1/sessions")
    );
    let status = attribute(create, "http.response.status_code").expect("status attribute");
    assert!(status["intValue"] == 201 || status["intValue"] == "201", "{status}");
    let service =
        resource["attributes"].as_array().and_then(|a| a.iter().find(|a| a["key"] == "service.name"));
    assert_eq!(service.map(|s| &s["value"]["stringValue"]), Some(&Value::from("sessions-under-test")));
    // Its statements are client spans under it, with the SQL (never values).
    let statements: Vec<&Value> =
        spans.iter().map(|(_, s)| s).filter(|s| s["parentSpanId"] == create["spanId"]).collect();
    assert!(!statements.is_empty(), "no statement spans under the request: {names:?}");
    for statement in &statements {
        assert_eq!(statement["traceId"], TRACE);
        assert!(statement["kind"] == 3 || statement["kind"] == "SPAN_KIND_CLIENT", "{statement}");
        let sql =
            attribute(statement, "db.statement").and_then(|v| v["stringValue"].as_str()).unwrap_or_default();
        assert!(sql.contains("sessions") && !sql.contains("t1"), "{sql}");
    }
    // A request without a traceparent starts a trace of its own; the
    // statements of a streamed listing stay in it.
    let list = spans.iter().map(|(_, s)| s).find(|s| s["name"] == "GET /api/v1/sessions").expect("list span");
    assert_ne!(list["traceId"], TRACE);
    assert!(list["parentSpanId"].as_str().is_none_or(str::is_empty), "{list}");
    assert!(spans.iter().any(|(_, s)| s["parentSpanId"] == list["spanId"]), "listing statements: {names:?}");
}

#[test]
fn nothing_is_exported_without_an_endpoint_or_when_disabled() {
    let receiver = Receiver::start();
    let disabled = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{}", receiver.port)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_SDK_DISABLED", "true".to_owned()),
    ];
    for env in [&disabled[..], &disabled[1..3]] {
        run_server(env, |port| {
            assert_eq!(http(port, "POST", "/api/v1/sessions", "", r#"{"session_id": "t1"}"#), 201);
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.spans().is_empty(), "spans were exported: {:?}", receiver.spans());
}
