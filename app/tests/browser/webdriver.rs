//! Headless Chromium (Debian's chromium and chromedriver) driven over the
//! W3C WebDriver protocol with plain HTTP calls.
//!
//! `CHROMEDRIVER` names the driver (default `chromedriver`), `CHROMIUM` the
//! browser (default `/usr/bin/chromium`). Without a driver the tests say so
//! and pass, unless `REQUIRE_OPS_TOOLS=1` (CI).

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use serde_json::{Value, json};

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for the page lasts before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// The driver to use, if it runs here; fails under `REQUIRE_OPS_TOOLS=1`
/// when it does not.
pub fn driver() -> Option<String> {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let ok = Command::new(&driver).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("REQUIRE_OPS_TOOLS").as_deref() != Ok("1"),
            "REQUIRE_OPS_TOOLS=1 but `{driver}` is not available"
        );
        eprintln!("skipping: `{driver}` is not available");
    }
    ok.then_some(driver)
}

/// A chromedriver process and one browser session in it.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the driver and a browser with `extra` arguments, saving
    /// downloads into `downloads`.
    pub async fn start(driver: &str, extra: &[String], downloads: &Path) -> Self {
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
            assert!(started.elapsed() < PATIENCE, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile");
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().cloned());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
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

    /// One WebDriver command; its `value`.
    pub async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
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

    pub async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": args})).await
    }

    /// The elements matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<String> {
        let found = self
            .command(reqwest::Method::POST, "/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .map(|all| all.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting for it.
    pub async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(id) = self.all(css).await.into_iter().next() {
                return id;
            }
            assert!(started.elapsed() < PATIENCE, "no element `{css}` on the page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
    }

    /// Clicks the first element matching `css` whose text is `text`.
    pub async fn click_text(&self, css: &str, text: &str) {
        let started = Instant::now();
        loop {
            for id in self.all(css).await {
                if self.text_of(&id).await.trim() == text {
                    self.command(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
                    return;
                }
            }
            assert!(started.elapsed() < PATIENCE, "no `{css}` reading `{text}`");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text_of(&self, id: &str) -> String {
        let text = self.command(reqwest::Method::GET, &format!("/element/{id}/text"), json!({})).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    pub async fn clear(&self, css: &str) {
        let id = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/clear"), json!({})).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Waits for `css` to show text that satisfies `want`; the text.
    pub async fn text_when(&self, css: &str, want: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let id = self.find(css).await;
            let text = self.text_of(&id).await;
            if want(&text) {
                return text;
            }
            assert!(started.elapsed() < PATIENCE, "`{css}` shows `{text}`");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's text as a person reads it.
    pub async fn page_text(&self) -> String {
        self.text_of(&self.find("body").await).await
    }

    pub async fn window(&self, width: u32, height: u32) {
        self.command(reqwest::Method::POST, "/window/rect", json!({"width": width, "height": height})).await;
    }

    /// A Chrome DevTools command (emulation of dark mode, for one).
    pub async fn devtools(&self, cmd: &str, params: Value) {
        self.command(reqwest::Method::POST, "/goog/cdp/execute", json!({"cmd": cmd, "params": params})).await;
    }

    /// Saves what the window shows as PNG into `dir/name.png`, if `dir` is set.
    pub async fn screenshot(&self, dir: Option<&Path>, name: &str) {
        let Some(dir) = dir else { return };
        let png = self.command(reqwest::Method::GET, "/screenshot", json!({})).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .expect("base64 PNG");
        std::fs::create_dir_all(dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("screenshot");
    }

    pub async fn quit(self) {
        self.command(reqwest::Method::DELETE, "", json!({})).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.driver.kill());
        drop(self.driver.wait());
    }
}
