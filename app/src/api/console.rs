//! `/ui`: the console, a few plain HTML, CSS and JavaScript module files
//! compiled into the binary (no build step, nothing fetched from another
//! host). The pages call the API like any client; what they may do in the
//! browser is pinned by a strict Content-Security-Policy.

use poem::{
    Endpoint, IntoResponse, Response,
    http::{StatusCode, header},
    web::Redirect,
};

use crate::error::Error;

/// Where the console lives.
pub const CONSOLE_PATH: &str = "/ui";

/// The route template of one console file (for `Allow` and metrics labels).
pub const CONSOLE_FILE_PATH: &str = "/ui/{file}";

/// Scripts, styles, images and requests from this origin only; no inline
/// script or style, no plugins, no framing, no `<base>`, forms post nowhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                      connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../../console/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console; `index.html` is the page at `/ui/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("chat.js", JS),
    asset!("views.js", JS),
];

/// The console's routes, to be nested at [`CONSOLE_PATH`].
pub fn console_routes() -> impl Endpoint + 'static {
    poem::Route::new()
        .at("/", poem::get(poem::endpoint::make_sync(|req| file(req.original_uri().path()))))
        .at("/:file", poem::get(poem::endpoint::make_sync(|req| file(req.original_uri().path()))))
}

/// The answer for a console path: `/ui` moves to `/ui/` (so relative module
/// paths resolve; the location is relative too, for proxies that add a
/// path prefix), `/ui/` is the page, `/ui/<name>` one of the files.
fn file(path: &str) -> poem::Result<Response> {
    let name = path.strip_prefix(CONSOLE_PATH).unwrap_or_default();
    if name.is_empty() {
        return Ok(Redirect::permanent("ui/").into_response());
    }
    let name = match name.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return Err(Error::NotFound(format!("the console has no file `{name}`")).into());
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .content_type(asset.content_type)
        .header(header::CONTENT_SECURITY_POLICY, POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(asset.body))
}
