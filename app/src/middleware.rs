//! What wraps every request: request id, access log and counters, the
//! error envelope (with `Allow` on 405), the body limits, the request
//! deadline, panic safety.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::PanicHandler,
};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::{
    api::Routes,
    drain::{BodyLimits, DRAIN_LIMIT},
    error::{self, Error},
    metrics::{self, Metrics},
    request_id, telemetry,
};

/// Blob keys follow this in a path.
const BLOB_PATHS: &str = "/api/v1/storage/";

/// Blob keys contain `/`, but the router matches a key as one segment:
/// the slashes of a key are encoded as `%2F` here and decoded again with
/// the rest of the key.
pub fn key_as_one_segment(mut req: Request) -> Request {
    let uri = req.uri();
    let Some(key) = uri.path().strip_prefix(BLOB_PATHS).filter(|key| key.contains('/')) else {
        return req;
    };
    let mut target = format!("{BLOB_PATHS}{}", key.replace('/', "%2F"));
    if let Some(query) = uri.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    if let Ok(target) = target.parse() {
        parts.path_and_query = Some(target);
        if let Ok(uri) = poem::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Outermost layer: assigns the request id, runs the request inside its
/// span (continuing the caller's trace), answers `OPTIONS`, turns every
/// error into the envelope (405s with `Allow`), logs and counts the result.
pub async fn observe<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    metrics: Arc<Metrics>,
    routes: &'static Routes,
) -> poem::Result<Response> {
    let started = Instant::now();
    let id =
        request_id::accept_or_generate(req.headers().get(request_id::HEADER).and_then(|v| v.to_str().ok()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let template = routes.template(&path).unwrap_or(metrics::UNMATCHED);
    let span = tracing::info_span!(
        "request",
        %method,
        %path,
        request_id = %id,
        tenant = tracing::field::Empty,
        otel.name = %format_args!("{method} {template}"),
        otel.kind = "server",
        http.route = %template,
        http.response.status_code = tracing::field::Empty,
    );
    telemetry::continue_trace(&span, req.headers());
    let work = async move {
        let _in_flight = metrics.request_started();
        let allow = || routes.allow(&path).and_then(|allow| HeaderValue::from_str(allow).ok());
        let options = if method == Method::OPTIONS { allow() } else { None };
        let (mut resp, route) = match options {
            Some(allow) => (
                Response::builder().status(StatusCode::NO_CONTENT).header(header::ALLOW, allow).finish(),
                None,
            ),
            None => match ep.call(req).await {
                Ok(resp) => {
                    let resp = resp.into_response();
                    let route = resp.data::<OperationId>().map(|op| op.0);
                    (resp, route)
                }
                Err(err) => {
                    let route = err.data::<OperationId>().map(|op| op.0);
                    let err = Error::from_poem(&err);
                    if matches!(err, Error::PoolTimeout) {
                        metrics.pool_timed_out();
                    }
                    (error::response(&err), route)
                }
            },
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = allow()
        {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        let status = resp.status();
        let latency = started.elapsed();
        metrics.record(&method, template, status.as_u16(), latency);
        tracing::Span::current().record("http.response.status_code", i64::from(status.as_u16()));
        let route = route.unwrap_or("-");
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(route, status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::info!(route, status = status.as_u16(), latency_ms, "request");
        }
        if let Ok(value) = HeaderValue::from_str(&request_id::current()) {
            resp.headers_mut().insert(request_id::HEADER, value);
        }
        Ok(resp)
    };
    request_id::scope(id, work.instrument(span)).await
}

/// Bodies larger than this are "large": they wait for room (see [`BodyLimits::large`]).
const LARGE_BODY: u64 = 1024 * 1024;

/// Reads the whole body before the handler runs, refusing bodies over the
/// limit with 413 (whether or not the client announced the length) and
/// clients that stall with 408; large bodies wait for their turn first.
/// Mounted on the routes that take JSON bodies.
pub async fn read_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    limits: BodyLimits,
) -> poem::Result<Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS) {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let limit = limits.max_bytes as u64;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit + DRAIN_LIMIT) {
        return Err(Error::PayloadTooLarge(limits.max_bytes).into());
    }
    let mut turn = None;
    if let Some(n) = announced.filter(|n| *n > LARGE_BODY) {
        turn = Some(limits.turn(n.min(limit)).await?);
    }
    let chunks = crate::drain::within_stall(req.take_body(), limits.stall, limits.draining.clone());
    let mut chunks = std::pin::pin!(chunks);
    let mut body = Vec::with_capacity(announced.map_or(0, |n| n.min(limit)) as usize);
    let mut received = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        received += chunk.len() as u64;
        if turn.is_none() && received > LARGE_BODY {
            // Length unknown: room for the largest body allowed.
            turn = Some(limits.turn(limit).await?);
        }
        if received <= limit {
            body.extend_from_slice(&chunk);
        } else if received > limit + DRAIN_LIMIT {
            break;
        }
    }
    if received > limit {
        return Err(Error::PayloadTooLarge(limits.max_bytes).into());
    }
    req.set_body(body);
    let response = ep.call(req).await.map(IntoResponse::into_response);
    drop(turn);
    response
}

/// Answers 503 when a request (in practice: the database behind it) takes
/// longer than `deadline`. Mounted on the API's routes; probes and docs
/// are not limited.
pub async fn deadline<E: Endpoint>(ep: Arc<E>, req: Request, deadline: Duration) -> poem::Result<Response> {
    match tokio::time::timeout(deadline, ep.call(req)).await {
        Ok(result) => result.map(IntoResponse::into_response),
        Err(_) => Err(Error::Unavailable(format!(
            "the request did not complete within {} ms; the database is slow or unreachable, retry shortly",
            deadline.as_millis()
        ))
        .into()),
    }
}

/// [`deadline`] for the blob store's routes, except a write, whose body
/// streams in as the handler reads it: its pauses are limited by the
/// handler, its statements by the database's timeouts and the whole
/// transfer by `storage.transfer_timeout_ms`.
pub async fn deadline_unless_streaming<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    limit: Duration,
) -> poem::Result<Response> {
    if req.method() == Method::PUT {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    deadline(ep, req, limit).await
}

/// `POST` to one endpoint, every other method to another: a path that is
/// both an action (`POST /api/v1/sessions/import`) and a resource (the
/// session called `import`).
pub struct PostOr<P, O> {
    pub post: P,
    pub other: O,
}

impl<P: Endpoint, O: Endpoint> Endpoint for PostOr<P, O> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.method() == Method::POST {
            self.post.call(req).await.map(IntoResponse::into_response)
        } else {
            self.other.call(req).await.map(IntoResponse::into_response)
        }
    }
}

/// Turns a panic into a 500 envelope (the panic itself is logged by poem).
#[derive(Clone, Copy, Debug)]
pub struct PanicToEnvelope;

impl PanicHandler for PanicToEnvelope {
    type Response = Response;

    fn get_response(&self, _err: Box<dyn std::any::Any + Send + 'static>) -> Response {
        tracing::error!("handler panicked");
        error::response(&Error::Internal)
    }
}
