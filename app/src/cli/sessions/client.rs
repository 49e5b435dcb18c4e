//! The service's API as the `sessions` commands call it: one base URL, the
//! API key on every request, refusals turned into one readable line.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// A client of one running service.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    /// A client of the service at `url`. Plain `http://`: the service
    /// speaks plain HTTP, and TLS ends at the ingress (from outside a
    /// cluster, `kubectl port-forward` reaches it).
    pub fn new(url: &str, key: Option<String>) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("--url `{url}`: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "--url `{url}`: only http:// is supported; reach a service behind TLS through \
                 `kubectl port-forward` or from inside its network"
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("session-backend-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let key = key.filter(|k| !k.trim().is_empty());
        Ok(Self { http, base: url.trim_end_matches('/').to_owned(), key })
    }

    /// A request to `path` (already encoded) with the key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends `request`; the response if it succeeded, else what went wrong.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, String> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        Err(refusal(status, &body))
    }

    /// `method path` with an optional JSON body; the JSON answer (`null`
    /// for an empty one).
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("the service answered something other than JSON: {e}"))
    }

    /// A request that failed before an answer, in words.
    pub fn unreachable(&self, error: &reqwest::Error) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        format!("cannot reach the service at {}: {text}", self.base)
    }
}

/// The error envelope as one line: `404 NotFoundError: … (request id …)`.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> String {
    let detail = serde_json::from_slice::<Value>(body).ok().map(|v| v["detail"].clone()).unwrap_or_default();
    let kind = detail["error"].as_str().unwrap_or_default();
    let message = detail["message"]
        .as_str()
        .map_or_else(|| String::from_utf8_lossy(body).trim().to_owned(), str::to_owned);
    let request = detail["request_id"].as_str().map(|id| format!(" (request id {id})")).unwrap_or_default();
    let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
        "; pass --api-key or set SESSION_BACKEND_API_KEY"
    } else {
        ""
    };
    format!("{} {kind}: {message}{request}{hint}", status.as_u16())
}

/// One path segment, percent-encoded (ids may hold any character but `/`).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A blob key as a path: each of its segments encoded.
pub fn key_path(key: &str) -> String {
    key.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// `path?name=value&…`, values encoded, empty ones left out.
pub fn with_query(path: &str, query: &[(&str, String)]) -> String {
    let pairs: Vec<String> =
        query.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", segment(v))).collect();
    if pairs.is_empty() { path.to_owned() } else { format!("{path}?{}", pairs.join("&")) }
}
