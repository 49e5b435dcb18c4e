//! Swagger UI's "Authorize", clicked in headless Chromium (Debian's
//! chromium and chromedriver, driven over the W3C WebDriver protocol): a
//! call without the key is 401, after entering it under "Authorize" the
//! same call is 200 and the shown curl carries the key.
//!
//! `CHROMEDRIVER` names the driver (default `chromedriver`), `CHROMIUM` the
//! browser (default `/usr/bin/chromium`).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{have, serve};

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(driver: &str) -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while !http.get(format!("{base}/status")).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile");
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self { driver: child, base, session, http, _profile: profile }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let reply: Value = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        reply["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    /// The first element matching `css`, waiting up to 15 s for it.
    async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .command(reqwest::Method::POST, "/elements", json!({"using": "css selector", "value": css}))
                .await;
            if let Some(id) = found.as_array().and_then(|all| all.first()).and_then(|e| e[ELEMENT].as_str()) {
                return id.to_owned();
            }
            assert!(started.elapsed() < Duration::from_secs(15), "no element `{css}` on the page");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Waits up to 15 s for `css` to show text that satisfies `want`; the text.
    async fn text_when(&self, css: &str, want: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let id = self.find(css).await;
            let text = self.command(reqwest::Method::GET, &format!("/element/{id}/text"), json!({})).await;
            let text = text.as_str().unwrap_or_default().to_owned();
            if want(&text) {
                return text;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "`{css}` shows `{text}`");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.driver.kill());
        drop(self.driver.wait());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_authorize_sends_the_key() {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    if !have(&driver, &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let key = session_backend::domain::keys::mint().expect("key");
    let server =
        serve(&format!("sqlite://{}?mode=rwc", dir.path().join("ui.db").display()), Some(&key)).await;
    let base = server.base.clone();

    let browser = Browser::start(&driver).await;
    browser.open(&format!("{base}/docs")).await;
    let operation = "#operations-Sessions-list_sessions";
    browser.click(&format!("{operation} .opblock-summary-control")).await;
    browser.click(&format!("{operation} .try-out__btn")).await;
    browser.click(&format!("{operation} .execute")).await;
    let status = format!("{operation} .live-responses-table .response .response-col_status");
    browser.text_when(&status, |t| t.starts_with("401")).await;

    // Authorize with the key as a bearer token, then the same call again.
    browser.click(".auth-wrapper .authorize").await;
    let bearer = ".modal-ux .auth-container:has(input[aria-label=auth-bearer-value])";
    browser.type_into(&format!("{bearer} input"), &key.key).await;
    browser.click(&format!("{bearer} .btn.modal-btn.auth.authorize")).await;
    browser.click(".modal-ux .btn-done").await;
    browser.click(&format!("{operation} .execute")).await;
    browser.text_when(&status, |t| t.starts_with("200")).await;
    let curl = browser.text_when(&format!("{operation} .curl"), |t| t.contains("Authorization")).await;
    assert!(curl.contains(&format!("Authorization: Bearer {}", key.key)), "{curl}");

    browser.command(reqwest::Method::DELETE, "", json!({})).await;
    server.stop().await;
}
