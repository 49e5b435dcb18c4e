//! `GET /metrics`: the Prometheus text format, labelled by route template
//! (never a raw path, so ids never become labels), the same counts as
//! `/health/metrics`, and for operators' metrics keys (never a tenant's)
//! unless `metrics.public`.

use std::collections::BTreeMap;

use reqwest::Method;

use crate::{
    app, both_backends,
    helpers::{Backend, TestApp, spawn_app_with},
};

both_backends!(
    metrics_are_prometheus_text_by_route_template,
    labels_stay_few_whatever_the_paths,
    metrics_are_for_operators_keys_unless_public,
);

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(app: &TestApp) -> (String, BTreeMap<String, f64>) {
    let resp = app.client.get(app.url("/metrics")).send().await.expect("scrape");
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(kind.starts_with("text/plain") && kind.contains("version=0.0.4"), "{kind}");
    let text = resp.text().await.expect("text");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let parsed = samples(&text);
    (text, parsed)
}

async fn metrics_are_prometheus_text_by_route_template(backend: Backend) {
    let app = app!(backend);
    app.session("secret-id-1").await;
    app.get("/api/v1/sessions/secret-id-2").await.expect(404);
    app.get("/api/v1/sessions/secret-id-1").await.expect(200);
    app.get("/no/such/route/secret-id-3").await.expect(404);
    app.call(Method::PATCH, "/api/v1/sessions/secret-id-1", None).await.expect(405);
    let (text, samples) = scrape(&app).await;
    for id in ["secret-id-1", "secret-id-2", "secret-id-3"] {
        assert!(!text.contains(id), "a raw path leaked into a label: {id}");
    }
    let backend_name = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    for (series, value) in [
        (r#"http_requests_total{method="POST",route="/api/v1/sessions",status="201"}"#, 1.0),
        (r#"http_requests_total{method="GET",route="/api/v1/sessions/{session_id}",status="404"}"#, 1.0),
        (r#"http_requests_total{method="GET",route="/api/v1/sessions/{session_id}",status="200"}"#, 1.0),
        (r#"http_requests_total{method="GET",route="unmatched",status="404"}"#, 1.0),
        (r#"http_requests_total{method="PATCH",route="/api/v1/sessions/{session_id}",status="405"}"#, 1.0),
        (r#"http_request_duration_seconds_count{method="GET",route="/api/v1/sessions/{session_id}"}"#, 2.0),
        (
            r#"http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/v1/sessions/{session_id}"}"#,
            2.0,
        ),
        (
            &format!(
                r#"session_backend_build_info{{version="{}",backend="{backend_name}"}}"#,
                session_backend::VERSION
            ),
            1.0,
        ),
        // The scrape itself is in flight while it renders.
        ("http_requests_in_flight", 1.0),
        ("retention_sweeps_failed_total", 0.0),
        ("db_pool_acquire_timeouts_total", 0.0),
        ("http_connections_refused_total", 0.0),
    ] {
        assert_eq!(samples.get(series), Some(&value), "{series} in\n{text}");
    }
    for family in [
        "db_pool_connections",
        "db_pool_idle_connections",
        "db_pool_max_connections",
        "retention_sweeps_total",
        "retention_swept_sessions_total",
        "http_connections_open",
        "process_resident_memory_bytes",
    ] {
        assert!(samples.contains_key(family), "{family} in\n{text}");
    }
    assert_eq!(samples["db_pool_max_connections"], 5.0, "the test config's pool");
    assert!(samples["process_resident_memory_bytes"] > 1_000_000.0);
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(s, _)| {
            s.starts_with("http_request_duration_seconds_bucket")
                && s.contains("method=\"GET\",route=\"/api/v1/sessions/{session_id}\"")
        })
        .filter_map(|(s, v)| {
            let le = s.split("le=\"").nth(1)?.split('"').next()?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.len() >= 10 && buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative buckets: {buckets:?}"
    );

    // /health/metrics reads the same counters: everything so far plus the scrape.
    let requests: f64 =
        samples.iter().filter(|(s, _)| s.starts_with("http_requests_total{")).map(|(_, v)| v).sum();
    let json = app.get("/health/metrics").await.expect(200);
    assert_eq!(json["requests_total"].as_f64(), Some(requests + 1.0), "{json}");
    assert_eq!(json["requests_by_status"]["405"], 1);
}

async fn labels_stay_few_whatever_the_paths(backend: Backend) {
    let app = app!(backend);
    for i in 0..60 {
        app.get(&format!("/api/v1/sessions/s-{i}/agents/a-{i}/messages/{i}")).await.expect(404);
        app.get(&format!("/random/{i}/path")).await.expect(404);
        app.call(Method::from_bytes(format!("X{i}").as_bytes()).expect("method"), "/api/v1/sessions", None)
            .await;
    }
    let (text, samples) = scrape(&app).await;
    let series: Vec<&String> = samples.keys().filter(|s| s.starts_with("http_requests_total{")).collect();
    assert!(series.len() <= 4, "request series stay bounded: {series:#?}");
    assert!(text.contains(r#"method="other""#), "unknown methods share one label: {text}");
    assert_eq!(
        samples.get(r#"http_requests_total{method="GET",route="/api/v1/sessions/{session_id}/agents/{agent_id}/messages/{message_id}",status="404"}"#),
        Some(&60.0)
    );
}

async fn metrics_are_for_operators_keys_unless_public(backend: Backend) {
    use session_backend::domain::keys::mint;
    let (tenant, operator) = (mint().expect("key"), mint().expect("key"));
    let dir = tempfile::tempdir().expect("dir");
    let (api_keys, metrics_keys) = (dir.path().join("keys"), dir.path().join("metrics-keys"));
    std::fs::write(&api_keys, format!("team-a {}\n", tenant.hash)).expect("keys");
    std::fs::write(&metrics_keys, format!("prometheus {}\n", operator.hash)).expect("metrics keys");
    for public in [false, true] {
        let files = (api_keys.display().to_string(), metrics_keys.display().to_string());
        let Some(app) = spawn_app_with(backend, |c| {
            c.auth.keys_file = Some(files.0);
            c.metrics.keys_file = Some(files.1);
            c.metrics.public = public;
        })
        .await
        else {
            return;
        };
        let get = |path: &str, key: Option<&str>| {
            let mut req = app.client.get(app.url(path));
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            async move { TestApp::reply(req.send().await.expect("request")).await }
        };
        // An operator's key reads /metrics and opens nothing under /api/.
        assert_eq!(get("/metrics", Some(&operator.key)).await.status, 200);
        get("/api/v1/sessions", Some(&operator.key)).await.expect_error(401, "UnauthorizedError");
        let (anonymous, by_tenant) = (get("/metrics", None).await, get("/metrics", Some(&tenant.key)).await);
        if public {
            assert_eq!((anonymous.status.as_u16(), by_tenant.status.as_u16()), (200, 200));
        } else {
            anonymous.expect_error(401, "UnauthorizedError");
            let message = by_tenant.expect_error(403, "ForbiddenError");
            assert!(message.contains("metrics key"), "{message}");
        }
        // /health/metrics is a probe: always 200, the traffic figures only
        // for an operator (or when public), the process's own for anyone.
        for (key, full) in [(None, public), (Some(&tenant.key), public), (Some(&operator.key), true)] {
            let json = get("/health/metrics", key.map(String::as_str)).await.expect(200);
            assert_eq!(json["requests_total"].is_u64(), full, "{key:?}, public {public}: {json}");
            assert_eq!(json["requests_by_status"].is_object(), full, "{json}");
            assert!(
                json["uptime_seconds"].is_f64() && json["connection_pool"]["max_size"].is_u64(),
                "{json}"
            );
        }
        let twice = app
            .client
            .get(app.url("/health/metrics"))
            .bearer_auth(&operator.key)
            .header("x-api-key", &operator.key);
        let json = TestApp::reply(twice.send().await.expect("request")).await.expect(200);
        assert!(public || json["requests_total"].is_null(), "two credentials see the process alone: {json}");
    }
}
