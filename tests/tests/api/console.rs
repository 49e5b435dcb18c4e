//! The console's files at `/ui` and what guards the API from browsers:
//! with keys off, only the server's own names (DNS rebinding) and pages of
//! the same origin (other sites' forms and scripts) are answered.

use reqwest::{Method, header};
use serde_json::json;
use session_backend::config::TextList;

use crate::helpers::{Backend, TestApp, spawn_app_with};

async fn app(adjust: impl FnOnce(&mut session_backend::config::Config)) -> TestApp {
    spawn_app_with(Backend::Sqlite, adjust).await.expect("SQLite always runs")
}

/// The status and envelope kind of `method path` with `headers`.
async fn status(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = app.client.request(method.clone(), app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if method == Method::POST {
        request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({"session_id": "made"}).to_string());
    }
    let reply = request.send().await.expect("request");
    let status = reply.status().as_u16();
    let body: serde_json::Value = reply.json().await.unwrap_or_default();
    (status, body["detail"]["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_policy() {
    let app = app(|_| {}).await;
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let moved = client.get(app.url("/ui")).send().await.expect("ui");
    assert_eq!(
        (moved.status().as_u16(), &moved.headers()[header::LOCATION]),
        (308, &"ui/".parse().expect("value"))
    );

    let followed = reqwest::get(app.url("/ui")).await.expect("followed");
    assert_eq!(followed.url().path(), "/ui/", "the relative location leads to the page");
    let page = client.get(app.url("/ui/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().expect("ascii");
    for directive in
        ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.expect("html");
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing from another host");

    // Every file the page and its modules name is served, as what it is.
    for (file, kind) in
        [("main.js", "text/javascript"), ("views.js", "text/javascript"), ("console.css", "text/css")]
    {
        let reply = client.get(app.url(&format!("/ui/{file}"))).send().await.expect("file");
        assert_eq!(reply.status(), 200, "{file}");
        assert!(reply.headers()[header::CONTENT_TYPE].to_str().is_ok_and(|t| t.starts_with(kind)), "{file}");
        assert!(reply.headers().contains_key("content-security-policy"));
    }
    app.get("/ui/secrets.txt").await.expect_error(404, "NotFoundError");
    app.get("/ui/../openapi.json").await.expect(200);
    let wrong = app.call(Method::POST, "/ui/", None).await;
    assert_eq!(wrong.headers.get("allow").and_then(|v| v.to_str().ok()), Some("GET, HEAD, OPTIONS"));
    wrong.expect_error(405, "MethodNotAllowedError");
    app.call(Method::HEAD, "/ui/main.js", None).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_off_only_own_names_and_same_origin_pages_are_answered() {
    let app = app(|_| {}).await;
    let port = app.url("").rsplit(':').next().expect("port").to_owned();
    for host in ["127.0.0.1", "[::1]:8001", "localhost:8001", "session-backend:8000", "sb.default.svc"] {
        assert_eq!(status(&app, Method::GET, "/api/v1/sessions", &[("host", host)]).await.0, 200, "{host}");
    }
    for host in
        ["attacker.example", "attacker.example:8001", "127.0.0.1.nip.io", "localhost.attacker.example"]
    {
        let refused = status(&app, Method::GET, "/api/v1/sessions", &[("host", host)]).await;
        assert_eq!(refused, (403, "ForbiddenError".to_owned()), "{host}");
        let refused = status(&app, Method::GET, "/ui/", &[("host", host)]).await;
        assert_eq!(refused.0, 403, "the console for {host}");
    }
    // Probes come from the kubelet by any name; the counters of every
    // tenant's traffic do not go to a rebound page.
    for probe in ["/health", "/health/live", "/health/ready", "/health/db"] {
        assert_eq!(status(&app, Method::GET, probe, &[("host", "attacker.example")]).await.0, 200, "{probe}");
    }
    assert_eq!(status(&app, Method::GET, "/health/metrics", &[("host", "attacker.example")]).await.0, 403);

    // Another page's request is refused and changes nothing; a page of the
    // server itself (any scheme, as behind a TLS proxy) is answered.
    let same = format!("http://127.0.0.1:{port}");
    for origin in ["https://attacker.example", "null", "http://localhost:1", "http://127.0.0.1"] {
        let refused = status(&app, Method::POST, "/api/v1/sessions", &[("origin", origin)]).await;
        assert_eq!(refused, (403, "ForbiddenError".to_owned()), "{origin}");
    }
    app.get("/api/v1/sessions/made").await.expect_error(404, "NotFoundError");
    assert_eq!(status(&app, Method::POST, "/api/v1/sessions", &[("origin", &same)]).await.0, 201);
    let proxied = [("host", "localhost"), ("origin", "https://localhost")];
    assert_eq!(status(&app, Method::GET, "/api/v1/sessions", &proxied).await.0, 200);

    // Names are added by configuration: one domain, or any.
    let listed =
        self::app(|c| c.server.allowed_hosts = [".example.com"].into_iter().collect::<TextList>()).await;
    assert_eq!(status(&listed, Method::GET, "/api/v1/sessions", &[("host", "sb.example.com")]).await.0, 200);
    assert_eq!(status(&listed, Method::GET, "/api/v1/sessions", &[("host", "sb.example.org")]).await.0, 403);
    let any = self::app(|c| c.server.allowed_hosts = ["*"].into_iter().collect::<TextList>()).await;
    assert_eq!(status(&any, Method::GET, "/api/v1/sessions", &[("host", "anything.example")]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_on_the_key_is_the_guard() {
    let key = session_backend::domain::keys::mint().expect("key");
    let app = app(|c| c.auth.keys = [format!("t {}", key.hash)].into_iter().collect::<TextList>()).await;
    let other = [("host", "sessions.example.org"), ("origin", "https://console.example.org")];
    assert_eq!(
        status(&app, Method::GET, "/api/v1/sessions", &other).await,
        (401, "UnauthorizedError".to_owned())
    );
    let bearer = format!("Bearer {}", key.key);
    let keyed = [other[0], other[1], ("authorization", bearer.as_str())];
    assert_eq!(status(&app, Method::GET, "/api/v1/sessions", &keyed).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_hosts_must_be_names() {
    for bad in ["http://sb.example.com", "sb.example.com:8001", "a/b", "a.*.example.com"] {
        let mut config = session_backend::config::Config::for_database("sqlite::memory:");
        config.server.allowed_hosts = [bad].into_iter().collect::<TextList>();
        let problem = session_backend::Server::start(config).await.err().expect("refused").to_string();
        assert!(
            problem.contains("server.allowed_hosts") && problem.contains("host name"),
            "{bad}: {problem}"
        );
    }
}
