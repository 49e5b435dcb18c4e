//! The console at `/ui`, clicked through in headless Chromium against the
//! real binary with seeded conversations: a tool-using chat holding markup,
//! a multi-agent run, a snapshot session and 10,000 messages seeded with
//! one import. It asks for the API key and says when one is wrong, shows
//! what a person should see, forks at a message, exports, deletes, and
//! keeps stored markup inert; with keys off it refuses other sites' pages,
//! DNS rebinding included.
//!
//! Screenshots go to `CONSOLE_SCREENSHOTS` (the README's come from
//! `CONSOLE_SCREENSHOTS=docs/console`, relative to the workspace root),
//! else under the target directory.
//! The test prints the page weight and the time to the first rendered page
//! of the 10,000-message conversation.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{running, webdriver::Browser};

const AT: &str = "2026-12-04T09:30:00.000000+00:00";

/// Markup a message might hold; shown as text, it must never run.
const MARKUP: &str =
    r#"<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold?</b>"#;

/// Where screenshots go; a relative `CONSOLE_SCREENSHOTS` is taken from
/// the workspace root.
fn screenshots() -> PathBuf {
    match std::env::var_os("CONSOLE_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"),
    }
}

/// The API, as the seeding and the checks call it.
struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let reply = request.send().await.expect("request");
        let status = reply.status().as_u16();
        let bytes = reply.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, reply) =
            self.send(reqwest::Method::POST, path, Some(body.to_string().into_bytes())).await;
        assert!(status == 201 || status == 200, "POST {path}: {status} {reply}");
        reply
    }

    async fn put_blob(&self, key: &str, value: &Value) {
        let url = format!("{}/api/v1/storage/{key}", self.base);
        let reply =
            self.http.put(url).bearer_auth(&self.key).body(value.to_string()).send().await.expect("put");
        assert_eq!(reply.status(), 204, "PUT {key}");
    }

    async fn status(&self, path: &str) -> u16 {
        self.send(reqwest::Method::GET, path, None).await.0
    }
}

fn text(role: &str, words: &str) -> Value {
    json!({"role": role, "content": [{"text": words}]})
}

/// A chat with reasoning, a tool call and its result, an image, a
/// document and markup, in three batches of messages.
async fn seed_tool_chat(api: &Api) {
    api.post(
        "/api/v1/sessions",
        json!({"session_id": "weather-chat", "metadata": {"user": "ada", "note": MARKUP}}),
    )
    .await;
    api.post(
        "/api/v1/sessions/weather-chat/agents",
        json!({"agent_id": "default", "state": {"city": "Oslo", "html": MARKUP},
               "conversation_manager_state": {"__name__": "SlidingWindowConversationManager", "removed_message_count": 0}}),
    )
    .await;
    let png =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let messages = [
        text("user", &format!("What is the weather in Oslo? {MARKUP}")),
        json!({"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "The user wants today's weather: ask the weather tool.", "signature": "sig"}}},
            {"text": "Let me check the forecast."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo", "units": "metric"}}}]}),
        json!({"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "status": "success",
            "content": [{"json": {"temp_c": -3, "sky": "light snow"}}]}}]}),
        text("assistant", "It is -3 °C with light snow in Oslo."),
        json!({"role": "user", "content": [{"text": "Here is the forecast chart and the report."},
            {"image": {"format": "png", "source": {"bytes": {"__bytes_encoded__": true, "data": png}}}},
            {"document": {"format": "pdf", "name": "oslo-report", "source": {"bytes": {"__bytes_encoded__": true, "data": "JVBERi0xLjQKJcfsj6IK"}}}}]}),
        text("assistant", "Thanks — the chart shows the snow easing by evening."),
    ];
    let batch: Vec<Value> = messages
        .into_iter()
        .enumerate()
        .map(|(id, message)| json!({"message_id": id, "message": message}))
        .collect();
    api.post("/api/v1/sessions/weather-chat/agents/default/messages/batch", json!({"messages": batch})).await;
}

/// A swarm: two agents and the orchestrator's state.
async fn seed_multi_agent(api: &Api) {
    api.post("/api/v1/sessions", json!({"session_id": "swarm-run", "session_type": "AGENT"})).await;
    for (agent, words) in
        [("researcher", "Penguins live in the southern hemisphere."), ("writer", "A short poem on penguins.")]
    {
        api.post(
            "/api/v1/sessions/swarm-run/agents",
            json!({"agent_id": agent, "state": {}, "conversation_manager_state": {}}),
        )
        .await;
        let path = format!("/api/v1/sessions/swarm-run/agents/{agent}/messages");
        api.post(&path, json!({"message_id": 0, "message": text("user", words)})).await;
    }
    api.post(
        "/api/v1/sessions/swarm-run/multi-agents",
        json!({"multi_agent_id": "swarm", "state": {"type": "swarm", "status": "completed",
               "node_history": ["researcher", "writer"], "current_node": "writer"}}),
    )
    .await;
}

/// What the SDK's SnapshotSessionManager keeps: blobs, no session row.
async fn seed_snapshot_session(api: &Api) {
    let snapshot = json!({"scope": "agent", "schema_version": "1.0", "created_at": "2026-12-04T09:00:00Z",
        "data": {"messages": [text("user", "Where do emperor penguins breed?"),
                              text("assistant", "On the sea ice around Antarctica, in the middle of winter.")],
                 "state": {"topic": "penguins"},
                 "conversation_manager_state": {"__name__": "NullConversationManager"}},
        "app_data": {}});
    let scope = "session/snap-chat/scopes/agent/default";
    api.put_blob(&format!("{scope}/snapshots/snapshot_latest.json"), &snapshot).await;
    api.put_blob(&format!("{scope}/immutable_history/snapshot_0193a000.json"), &snapshot).await;
}

/// 10,000 messages in one import.
async fn seed_long_chat(api: &Api) {
    let messages: Vec<Value> = (0..10_000)
        .map(|n| {
            let role = if n % 2 == 0 { "user" } else { "assistant" };
            json!({"message_id": n, "message": text(role, &format!("Message {n} of a long conversation.")),
                   "redact_message": null, "created_at": AT, "updated_at": AT})
        })
        .collect();
    let document = json!({"format": "session-backend/1",
        "session": {"session_id": "long-chat", "session_type": "AGENT", "metadata": {}, "created_at": AT, "updated_at": AT},
        "agents": [{"agent_id": "default", "state": {}, "conversation_manager_state": {}, "internal_state": {},
                    "created_at": AT, "updated_at": AT, "messages": messages}],
        "multi_agents": [], "complete": true});
    let (status, reply) = api
        .send(reqwest::Method::POST, "/api/v1/sessions/import", Some(document.to_string().into_bytes()))
        .await;
    assert_eq!(status, 201, "{reply}");
}

/// Every visible control without an accessible name (the page's own markup).
const UNNAMED: &str = r#"
return [...document.querySelectorAll('a[href], button, input, select, summary, [tabindex]')]
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || el.getAttribute('title')
    || (el.labels && [...el.labels].some((l) => l.textContent.trim()))))
  .map((el) => el.outerHTML.slice(0, 120));"#;

async fn accessible(browser: &Browser, page: &str) {
    let unnamed = browser.run(UNNAMED, json!([])).await;
    assert_eq!(unnamed, json!([]), "controls without an accessible name on {page}");
}

async fn heading(browser: &Browser, want: &str) {
    browser.text_when("main h1", |t| t == want).await;
}

/// Waits for a file in `dir` named `name` that is complete JSON.
async fn downloaded(dir: &Path, name: &str) -> Value {
    let started = Instant::now();
    loop {
        if let Ok(bytes) = std::fs::read(dir.join(name))
            && let Ok(document) = serde_json::from_slice::<Value>(&bytes)
        {
            return document;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no download `{name}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_reads_forks_exports_and_deletes() {
    let Some(driver) = crate::webdriver::driver() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let key = session_backend::domain::keys::mint().expect("key");
    let keys = format!("console {}", key.hash);
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("console.db").display());
    let (_server, base) = running::start(&url, dir.path(), &[("SESSION_BACKEND_AUTH__KEYS", &keys)]).await;
    let api = Api { base: base.clone(), key: key.key.clone(), http: reqwest::Client::new() };
    seed_tool_chat(&api).await;
    seed_multi_agent(&api).await;
    seed_snapshot_session(&api).await;
    seed_long_chat(&api).await;
    api.post("/api/v1/sessions", json!({"session_id": MARKUP.replace('/', "|"), "metadata": {"x": MARKUP}}))
        .await;

    // Every file of the console carries the policy; nothing is inline.
    let page = reqwest::get(format!("{base}/ui/")).await.expect("page");
    let policy = page.headers()["content-security-policy"].to_str().expect("policy").to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!page.text().await.expect("html").contains("<script>"), "no inline script");

    let shots = screenshots();
    let downloads = tempfile::tempdir().expect("downloads");
    let browser = Browser::start(&driver, &[], downloads.path()).await;

    // The key: asked for once, a wrong one said so, then kept for the tab.
    browser.open(&format!("{base}/ui/")).await;
    browser.find("#key-dialog[open]").await;
    browser.type_into("#key-dialog input[name=key]", "sb_wrong_key").await;
    browser.click("#key-dialog button[value=use]").await;
    browser.text_when("#key-problem", |t| t.contains("refused")).await;
    browser.screenshot(Some(&shots), "key").await;
    browser.clear("#key-dialog input[name=key]").await;
    browser.type_into("#key-dialog input[name=key]", &key.key).await;
    browser.click("#key-dialog button[value=use]").await;
    heading(&browser, "Sessions").await;
    browser.text_when("main .count", |t| t == "4 sessions").await;
    browser.text_when(".snapshots .names", |t| t.contains("snap-chat")).await;
    let stored = browser.run("return sessionStorage.getItem('session-backend.api-key')", json!([])).await;
    assert_eq!(stored, json!(key.key), "the key is kept for the tab");
    accessible(&browser, "the session list").await;
    browser.screenshot(Some(&shots), "sessions").await;

    // Filters narrow the list.
    browser.type_into("input[name=id_prefix]", "weather").await;
    browser.click(".filters button[type=submit]").await;
    browser.text_when("main .count", |t| t == "1 session").await;
    browser.click_text(".filters button", "Clear").await;
    browser.text_when("main .count", |t| t == "4 sessions").await;

    // A session, opened from the keyboard, then an agent's conversation.
    let link = browser.find("table.list a[href='#/session/weather-chat']").await;
    browser
        .command(reqwest::Method::POST, &format!("/element/{link}/value"), json!({"text": "\u{E007}"}))
        .await;
    heading(&browser, "weather-chat").await;
    browser.click("table.list a[href='#/session/weather-chat/agent/default']").await;
    heading(&browser, "default").await;
    browser.text_when("main .count", |t| t == "6 of 6 messages").await;
    let conversation = browser.text_when(".chat", |t| t.contains("light snow in Oslo")).await;
    assert!(conversation.contains(MARKUP), "markup is shown as text: {conversation}");
    assert!(
        conversation.contains("Tool call · get_weather") && conversation.contains("success"),
        "{conversation}"
    );
    assert!(conversation.contains("Result of get_weather"), "the result is paired with its call");
    assert!(conversation.contains("Image png · 70 B"), "{conversation}");
    assert!(conversation.contains("Document “oslo-report” · pdf · 15 B"), "{conversation}");
    browser.click(".tool summary").await;
    browser
        .text_when(".tool", |t| t.contains("\"units\": \"metric\"") && t.contains("\"sky\": \"light snow\""))
        .await;
    browser.click(".reasoning summary").await;
    browser.text_when(".reasoning", |t| t.contains("ask the weather tool")).await;
    browser.click("details.json summary").await;
    browser.text_when("details.json pre", |t| t.contains("\"city\": \"Oslo\"")).await;
    accessible(&browser, "a conversation").await;
    browser.screenshot(Some(&shots), "conversation").await;

    // Stored markup stayed text: nothing ran, no element came of it.
    let injected = browser
        .run("return [window.__pwned ?? null, document.querySelectorAll('main img, main script, main b').length]", json!([]))
        .await;
    assert_eq!(injected, json!([null, 0]), "markup in stored data ran or became elements");

    // Fork after the tool call: the fork keeps messages 0 and 1.
    browser.click("article[data-message-id='1'] header button").await;
    browser.find("#ask-dialog[open]").await;
    browser.clear("#ask-dialog input").await;
    browser.type_into("#ask-dialog input", "weather-fork").await;
    browser.click("#ask-dialog button[value=ok]").await;
    heading(&browser, "weather-fork").await;
    let (status, forked) =
        api.send(reqwest::Method::GET, "/api/v1/sessions/weather-fork/agents/default/messages", None).await;
    assert_eq!((status, forked["total"].clone()), (200, json!(2)), "{forked}");

    // Export downloads the whole document.
    browser.click_text(".toolbar button", "Export").await;
    let document = downloaded(downloads.path(), "weather-fork.session.json").await;
    assert_eq!(document["complete"], true);
    assert_eq!(document["agents"][0]["messages"].as_array().map(Vec::len), Some(2));
    browser.text_when("#notice", |t| t.starts_with("Exported weather-fork")).await;
    browser.screenshot(Some(&shots), "session").await;

    // Delete asks first; cancelling keeps the session.
    browser.click_text(".toolbar button", "Delete").await;
    browser.click("#ask-dialog button[value=cancel]").await;
    assert_eq!(api.status("/api/v1/sessions/weather-fork").await, 200);
    browser.click_text(".toolbar button", "Delete").await;
    browser.click("#ask-dialog button[value=ok]").await;
    heading(&browser, "Sessions").await;
    assert_eq!(api.status("/api/v1/sessions/weather-fork").await, 404);

    // The multi-agent run: both agents and the orchestrator's state.
    browser.open(&format!("{base}/ui/#/session/swarm-run")).await;
    heading(&browser, "swarm-run").await;
    let page = browser.text_when("main", |t| t.contains("Multi-agent states (1)")).await;
    assert!(page.contains("researcher") && page.contains("writer") && page.contains("Agents (2)"), "{page}");

    // The snapshot session: its latest snapshot's conversation.
    browser.open(&format!("{base}/ui/#/snapshot/snap-chat")).await;
    heading(&browser, "snap-chat").await;
    browser.text_when(".chat", |t| t.contains("On the sea ice around Antarctica")).await;
    browser.screenshot(Some(&shots), "snapshot").await;
    // Its export carries its blobs (no row).
    browser.click_text(".toolbar button", "Export").await;
    let document = downloaded(downloads.path(), "snap-chat.session.json").await;
    assert_eq!(
        (document["session_id"].clone(), document["session"].clone()),
        (json!("snap-chat"), Value::Null)
    );
    let keys: Vec<&str> =
        document["blobs"].as_array().expect("blobs").iter().filter_map(|b| b["key"].as_str()).collect();
    assert!(keys.contains(&"scopes/agent/default/snapshots/snapshot_latest.json"), "{keys:?}");
    // Its fork is a snapshot session too, with the same conversation.
    browser.click_text(".toolbar button", "Fork").await;
    browser.find("#ask-dialog[open]").await;
    browser.clear("#ask-dialog input").await;
    browser.type_into("#ask-dialog input", "snap-branch").await;
    browser.click("#ask-dialog button[value=ok]").await;
    heading(&browser, "snap-branch").await;
    browser.text_when(".chat", |t| t.contains("On the sea ice around Antarctica")).await;
    let latest = "/api/v1/storage/session/snap-branch/scopes/agent/default/snapshots/snapshot_latest.json";
    assert_eq!(api.status(latest).await, 200, "the fork's latest snapshot");

    // Search across snapshots finds it.
    browser.open(&format!("{base}/ui/#/search?q=antarctica")).await;
    browser.text_when("ol.results", |t| t.contains("snap-chat")).await;

    // 10,000 messages: the first page at once, the next on demand. The
    // page is loaded afresh, so the time counts from the navigation.
    browser.open("about:blank").await;
    browser.open(&format!("{base}/ui/#/session/long-chat/agent/default")).await;
    browser.text_when("main .count", |t| t == "100 of 10000 messages").await;
    let rendered = browser
        .run(
            "const m = performance.getEntriesByName('page-rendered').at(-1); \
             return [m.startTime + m.duration, m.duration];",
            json!([]),
        )
        .await;
    browser.click("button.more").await;
    browser.text_when("main .count", |t| t == "200 of 10000 messages").await;
    browser.text_when(".chat", |t| t.contains("Message 199 of a long conversation.")).await;
    // The newest first, then the page before them above.
    browser.click_text("main .heading a", "Jump to the newest").await;
    browser.text_when("main .count", |t| t == "100 of 10000 messages").await;
    let newest = browser.text_when(".chat", |t| t.contains("Message 9999 of a long conversation.")).await;
    assert!(newest.contains("Message 9900 of") && !newest.contains("Message 9899 of"), "the newest 100");
    browser.click("button.more").await;
    browser.text_when("main .count", |t| t == "200 of 10000 messages").await;
    let order = browser
        .run(
            "return [...document.querySelectorAll('.chat article')].map((a) => Number(a.dataset.messageId))",
            json!([]),
        )
        .await;
    let ids: Vec<i64> = order.as_array().expect("ids").iter().filter_map(Value::as_i64).collect();
    assert_eq!(ids, (9800..10_000).collect::<Vec<i64>>(), "oldest first, no gap");

    // What the page weighs, and that it came from this server alone.
    let weight = browser
        .run(
            "const all = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]; \
             return [all.filter((e) => e.name.includes('/ui/')).reduce((n, e) => n + e.encodedBodySize, 0), \
                     all.map((e) => e.name)];",
            json!([]),
        )
        .await;
    for name in weight[1].as_array().expect("names") {
        assert!(name.as_str().is_some_and(|n| n.starts_with(&base)), "a request to another host: {name}");
    }
    eprintln!(
        "console: page weight {} bytes; 10,000-message conversation: first page rendered {:.0} ms after \
         navigation ({:.0} ms after the route started)",
        weight[0],
        rendered[0].as_f64().unwrap_or_default(),
        rendered[1].as_f64().unwrap_or_default()
    );

    // A phone, and dark mode following the system.
    browser.open(&format!("{base}/ui/#/session/weather-chat/agent/default")).await;
    browser.window(390, 844).await;
    browser.text_when(".chat", |t| t.contains("light snow in Oslo")).await;
    let overflow =
        browser.run("return document.documentElement.scrollWidth - window.innerWidth", json!([])).await;
    assert!(overflow.as_i64().is_some_and(|o| o <= 0), "the page scrolls sideways on a phone: {overflow}");
    browser.run("window.scrollTo(0, 0)", json!([])).await;
    browser.screenshot(Some(&shots), "phone").await;
    browser.window(1280, 900).await;
    browser
        .devtools(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
        )
        .await;
    let background = browser.run("return getComputedStyle(document.body).backgroundColor", json!([])).await;
    assert_eq!(background, json!("rgb(20, 24, 23)"), "dark mode follows the system");
    browser.run("window.scrollTo(0, 0)", json!([])).await;
    browser.screenshot(Some(&shots), "dark").await;

    // Forgetting the key asks for it again.
    browser.click("#key-button").await;
    browser.find("#key-dialog[open]").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_off_other_sites_cannot_drive_the_api() {
    let Some(driver) = crate::webdriver::driver() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("open.db").display());
    let (_server, base) = running::start(&url, dir.path(), &[]).await;
    let port = base.rsplit(':').next().expect("port").to_owned();

    // A page of another site that tries a form post and a fetch.
    let attacker = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let attacker_port = attacker.local_addr().expect("addr").port();
    let page = format!(
        r#"<!doctype html><form id=f method=post enctype=text/plain action="http://127.0.0.1:{port}/api/v1/sessions">
<input name='{{"session_id":"by-form","x":"' value='"}}'></form>
<script>
fetch("http://127.0.0.1:{port}/api/v1/sessions", {{method: "POST", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{session_id: "by-fetch"}})}})
  .finally(() => document.getElementById("f").submit());
</script>"#
    );
    let served = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = attacker.accept().await {
            let mut request = vec![0; 4096];
            drop(socket.read(&mut request).await);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            drop(socket.write_all(reply.as_bytes()).await);
        }
    });

    // `rebind.example` resolves to this machine, as a rebinding attacker's
    // name would after its first answer.
    let rules =
        "--host-resolver-rules=MAP rebind.example 127.0.0.1, MAP attacker.example 127.0.0.1".to_owned();
    let downloads = tempfile::tempdir().expect("downloads");
    let browser = Browser::start(&driver, &[rules], downloads.path()).await;
    browser.open(&format!("http://attacker.example:{attacker_port}/")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = reqwest::Client::new();
    for id in ["by-form", "by-fetch"] {
        let status = http.get(format!("{base}/api/v1/sessions/{id}")).send().await.expect("get").status();
        assert_eq!(status, 404, "another site's page created `{id}`");
    }

    // The rebound name gets a refusal, not the console or the data.
    browser.open(&format!("http://rebind.example:{port}/api/v1/sessions")).await;
    let shown = browser.page_text().await;
    assert!(shown.contains("ForbiddenError") && shown.contains("rebind.example"), "{shown}");
    browser.open(&format!("http://rebind.example:{port}/ui/")).await;
    assert!(browser.page_text().await.contains("ForbiddenError"));

    // The console itself, on the server's own address, works without a
    // key: its own writes (a fork, a delete) pass the origin check.
    let created = http
        .post(format!("{base}/api/v1/sessions"))
        .header("content-type", "application/json")
        .body(json!({"session_id": "local"}).to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    browser.open(&format!("{base}/ui/#/session/local")).await;
    heading(&browser, "local").await;
    browser.click_text(".toolbar button", "Fork").await;
    browser.clear("#ask-dialog input").await;
    browser.type_into("#ask-dialog input", "local-copy").await;
    browser.click("#ask-dialog button[value=ok]").await;
    heading(&browser, "local-copy").await;
    browser.click_text(".toolbar button", "Delete").await;
    browser.click("#ask-dialog button[value=ok]").await;
    heading(&browser, "Sessions").await;
    browser.text_when("main .count", |t| t == "1 session").await;
    let gone = http.get(format!("{base}/api/v1/sessions/local-copy")).send().await.expect("get");
    assert_eq!(gone.status(), 404);

    // A refused action says why and leaves the page as it was.
    browser.open(&format!("{base}/ui/#/session/local")).await;
    heading(&browser, "local").await;
    browser.click_text(".toolbar button", "Fork").await;
    browser.clear("#ask-dialog input").await;
    browser.type_into("#ask-dialog input", "local").await;
    browser.click("#ask-dialog button[value=ok]").await;
    browser.text_when("#notice", |t| t.starts_with("409 ConflictError")).await;
    heading(&browser, "local").await;
    browser.quit().await;
    served.abort();
}
