//! The OpenAPI document as served. poem-openapi builds all of it: the
//! security schemes and each operation's requirement come from the
//! operations that take a [`Tenant`](crate::auth::Tenant), and their 401 and
//! 429 answers from [`Failure`](super::errors::Failure). A server without keys
//! requires none, so its document drops the requirement; probes and docs
//! never have one.

use std::sync::Arc;

use bytes::Bytes;
use poem::{
    Endpoint, Response,
    endpoint::{make, make_sync},
};
use serde_json::Value;
use tokio::sync::OnceCell;

/// The tags in the order a user needs them, which Swagger UI keeps:
/// sessions first, probes last (poem-openapi sorts them by name).
const TAG_ORDER: [&str; 7] =
    ["Sessions", "Agents", "Messages", "Multi-agents", "Leases", "Storage", "Health"];

/// The document; `secured` when the server requires API keys.
pub fn document(secured: bool) -> String {
    let mut doc: Value = serde_json::from_str(&super::service().spec()).unwrap_or_default();
    if let Some(tags) = doc["tags"].as_array_mut() {
        let rank =
            |tag: &Value| TAG_ORDER.iter().position(|name| tag["name"] == *name).unwrap_or(TAG_ORDER.len());
        tags.sort_by_key(rank);
    }
    if !secured {
        for item in doc["paths"].as_object_mut().into_iter().flat_map(|paths| paths.values_mut()) {
            for operation in item.as_object_mut().into_iter().flat_map(|item| item.values_mut()) {
                if let Some(operation) = operation.as_object_mut() {
                    operation.remove("security");
                }
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
