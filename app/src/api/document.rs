//! The OpenAPI document as served: poem-openapi's, plus what authentication
//! adds to it. Both security schemes (a bearer token, or the same key as
//! `X-API-Key`) are always declared, and every `/api/` operation lists its
//! 401 and 429 answers; a server with keys also requires one of the schemes
//! on those operations, so Swagger UI's "Authorize" sends the key and a
//! fuzzer knows to. Probes and docs never require one.

use std::sync::Arc;

use bytes::Bytes;
use poem::{
    Endpoint, Response,
    endpoint::{make, make_sync},
};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

const BEARER: &str = "bearerAuth";
const API_KEY: &str = "apiKeyAuth";

/// The document; `secured` when the server requires API keys.
pub fn document(secured: bool) -> String {
    let mut doc: Value = serde_json::from_str(&super::service().spec()).unwrap_or_default();
    doc["components"]["securitySchemes"] = json!({
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`sbk_…`) as a bearer token: `Authorization: Bearer <key>`.",
        },
        API_KEY: {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "The same API key in a header of its own.",
        },
    });
    let envelope = |description: &str, header: (&str, &str, &str)| {
        json!({
            "description": description,
            "headers": {header.0: {"description": header.1, "schema": {"type": header.2}}},
            "content": {"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
        })
    };
    let unauthorized = envelope(
        "No API key, or one the server does not know (only when keys are configured).",
        ("WWW-Authenticate", "`Bearer realm=\"session-backend\"`", "string"),
    );
    let limited = envelope(
        "The tenant's request rate limit is used up (only when one is configured).",
        ("Retry-After", "Seconds until a request is allowed again.", "integer"),
    );
    let paths = doc["paths"].as_object_mut().into_iter().flatten();
    for (_, item) in paths.filter(|(path, _)| path.starts_with("/api/")) {
        for (_, operation) in item.as_object_mut().into_iter().flatten() {
            let Some(operation) = operation.as_object_mut() else { continue };
            if secured {
                operation.insert("security".into(), json!([{BEARER: []}, {API_KEY: []}]));
            }
            if let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) {
                responses.insert("401".into(), unauthorized.clone());
                responses.insert("429".into(), limited.clone());
            }
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// `GET /openapi.json`.
pub fn endpoint(document: Bytes) -> impl Endpoint + 'static {
    make_sync(move |_| Response::builder().content_type("application/json").body(document.clone()))
}

/// `GET /docs`: poem-openapi's Swagger UI, showing `document`. The page
/// (1.7 MiB: Swagger UI's script and style, then the document) is built on
/// the first visit rather than at start-up, whose freed buffers an idle
/// server would otherwise keep, and on a blocking thread, so that first
/// visit does not hold up a runtime worker.
pub fn swagger_ui(document: Bytes) -> impl Endpoint + 'static {
    let page = Arc::new(OnceCell::<Bytes>::new());
    let endpoint = make(move |_| {
        let (page, document) = (page.clone(), document.clone());
        async move {
            let build = || tokio::task::spawn_blocking(move || swagger_page(&document));
            let html = page.get_or_try_init(build).await.map_err(|e| {
                tracing::error!(error = %e, "building the Swagger UI page");
                crate::error::Error::Internal
            })?;
            Ok::<_, crate::error::Error>(
                Response::builder().content_type("text/html; charset=utf-8").body(html.clone()),
            )
        }
    });
    poem::Route::new().at("/", endpoint)
}

fn swagger_page(document: &[u8]) -> Bytes {
    let api = super::service();
    // The page embeds the document it is given verbatim: swap ours in.
    let ours = String::from_utf8_lossy(document);
    api.swagger_ui_html().replacen(&api.spec(), &ours, 1).into()
}
