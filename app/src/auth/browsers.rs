//! With API keys off, anyone who can reach the port may use the API, and
//! every browser on the machine can reach it: a page from another site may
//! send it requests, and a page on a name its owner later points at
//! `127.0.0.1` (DNS rebinding) may even read the answers. So while keys are
//! off, requests must name a host the server knows as its own
//! ([`crate::domain::hosts`], `server.allowed_hosts`), and a request a browser
//! marks as coming from a page (`Origin`) must come from a page of that
//! same host. With keys on, the key is the guard: another site's page has
//! no way to learn it. Health probes are never refused.
//!
//! The API sends no CORS headers, so no other origin reads its answers.

use std::sync::Arc;

use poem::{Endpoint, IntoResponse, Request, Response, http::header};

use super::Auth;
use crate::{
    domain::hosts::{origin_authority, without_default_port},
    error::Error,
};

/// The kubelet's probes, answered whatever the name.
const PROBES: [&str; 4] = ["/health", "/health/live", "/health/ready", "/health/db"];

/// Refuses, while keys are off, requests for an unknown host and requests
/// from another origin (403).
pub async fn same_site_only<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    auth: Arc<Auth>,
) -> poem::Result<Response> {
    if auth.enabled() || PROBES.contains(&req.uri().path()) {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    if let Some(host) = &host
        && !auth.hosts.allows(host)
    {
        return Err(Error::Forbidden(format!(
            "this server does not answer for the host `{host}`: with API keys off it answers only IP addresses, \
             one-label names and server.allowed_hosts (SESSION_BACKEND_SERVER__ALLOWED_HOSTS); add the name there \
             or turn API keys on"
        ))
        .into());
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let same = origin_authority(origin).zip(host.as_deref()).is_some_and(|((scheme, from), host)| {
            from == without_default_port(&scheme, &host.to_ascii_lowercase())
        });
        if !same {
            return Err(Error::Forbidden(format!(
                "a request from the page `{origin}` is refused: with API keys off only pages of this server \
                 may call it from a browser"
            ))
            .into());
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}
