//! API keys and tenants. With keys configured (`auth.keys`, and/or the
//! `auth.keys_file` a Kubernetes Secret provides), every request to the
//! tenant routes ([`tenants_only`], mounted on them) must carry one (`Authorization: Bearer <key>` or `X-API-Key: <key>`),
//! and its tenant is the tenant of every store query it makes. Without
//! keys, every request is the tenant `default` (local use). Operators read
//! the service-wide figures (`/metrics`, [`operators_only`]; the traffic
//! counters of `/health/metrics`, [`Auth::metrics_view`]) with keys of their
//! own (`metrics.keys`, `metrics.keys_file`), never with a tenant's. Keys files are read again
//! every reload interval and on SIGHUP, so keys rotate without a restart
//! ([`key_source`]). A per-tenant token bucket ([`rate`]) may limit
//! requests. Without keys, browsers may call only from the server's own
//! pages ([`browsers`]).

mod browsers;
mod key_source;
mod rate;
mod scheme;

use std::{sync::Arc, time::Duration};

use poem::{Endpoint, IntoResponse, Request, Response, http::HeaderMap};

pub use self::browsers::same_site_only;
use self::{key_source::KeySource, rate::RateLimiter};
use crate::{config::Config, domain::hosts::HostPatterns, error::Error};

/// The tenant a request acts for; every store query is scoped by it.
#[derive(Clone, Debug)]
pub struct Tenant(Arc<str>);

impl Tenant {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request may see of the service-wide figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsView {
    /// Everything: an operator's metrics key, `metrics.public`, or no
    /// authentication at all.
    Full,
    /// The process alone (version, uptime, memory, pool), not the traffic
    /// of every tenant.
    ProcessOnly,
}

/// What authenticates and limits requests.
#[derive(Debug)]
pub struct Auth {
    /// The tenants' API keys; `None`: authentication is off.
    keys: Option<KeySource>,
    /// The operators' metrics keys, if configured.
    metrics_keys: Option<KeySource>,
    limiter: Option<RateLimiter>,
    default_tenant: Arc<str>,
    /// Whether the service-wide figures are shown to anyone.
    metrics_public: bool,
    /// The names answered while keys are off ([`browsers`]).
    hosts: HostPatterns,
    /// How much of a refused request's body is read (so its client gets
    /// the answer rather than a reset): the body limit plus a margin.
    drain_bytes: u64,
}

impl Auth {
    /// Reads the configured keys and the keys files. A file that cannot be
    /// read stops start-up; its bad lines are skipped and logged.
    pub fn load(whole: &Config) -> Result<Self, String> {
        let (auth, metrics) = (&whole.auth, &whole.metrics);
        let keys = if auth.enabled() {
            let configured = auth.keys.key_set("auth.keys")?;
            Some(KeySource::load("auth.keys_file", configured, auth.keys_file.as_deref(), "API key")?)
        } else {
            None
        };
        let metrics_keys = if metrics.keyed() {
            let configured = metrics.keys.key_set("metrics.keys")?;
            Some(KeySource::load(
                "metrics.keys_file",
                configured,
                metrics.keys_file.as_deref(),
                "metrics key",
            )?)
        } else {
            None
        };
        let limit = &whole.rate_limit;
        let hosts = whole.server.host_patterns()?;
        Ok(Self {
            hosts,
            keys,
            metrics_keys,
            limiter: RateLimiter::new(limit.requests_per_second, limit.burst),
            default_tenant: crate::domain::DEFAULT_TENANT.into(),
            metrics_public: metrics.public,
            drain_bytes: whole.server.body_limit_bytes as u64 + crate::drain::DRAIN_LIMIT,
        })
    }

    /// Whether requests need a key.
    pub fn enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// How many API keys are accepted now.
    pub fn key_count(&self) -> usize {
        self.keys.as_ref().map_or(0, KeySource::len)
    }

    /// Whether keys are required but none is listed (every request refused).
    pub fn lists_no_key(&self) -> bool {
        self.keys.as_ref().is_some_and(|k| k.len() == 0)
    }

    /// The key sources with a file to read again, each with what it holds.
    fn files(&self) -> impl Iterator<Item = (&KeySource, &'static str)> {
        [(self.keys.as_ref(), "API key"), (self.metrics_keys.as_ref(), "metrics key")]
            .into_iter()
            .filter_map(|(source, what)| Some((source.filter(|s| s.file().is_some())?, what)))
    }

    /// Whether a keys file is configured (the watcher has work).
    pub fn has_files(&self) -> bool {
        self.files().next().is_some()
    }

    /// Reads every keys file again, logging what each reload found;
    /// whether any failed.
    pub fn reload(&self, why: &str) -> bool {
        let mut failed = false;
        for (source, what) in self.files() {
            let reload = source.reload();
            reload.log(what, source.len(), why);
            failed |= reload.failed();
        }
        failed
    }

    /// How many lines of the keys files in use were skipped as bad.
    pub fn bad_line_count(&self) -> usize {
        self.files().map(|(source, _)| source.bad_line_count()).sum()
    }

    /// The tenant of a request with these headers.
    fn tenant_for(&self, headers: &HeaderMap) -> Result<Arc<str>, Error> {
        let Some(keys) = &self.keys else { return Ok(self.default_tenant.clone()) };
        let Some(key) = presented_key(headers)? else {
            return Err(Error::Unauthorized(
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`".into(),
            ));
        };
        keys.current().tenant_of(key).ok_or_else(|| Error::Unauthorized("the API key is not valid".into()))
    }

    /// What a request with these headers may see of the service-wide
    /// figures: everything with an operator's metrics key (or when they
    /// are public, or authentication is off and no metrics key is set),
    /// else the process alone; an error for a request carrying two
    /// credentials.
    pub fn metrics_view(&self, headers: &HeaderMap) -> Result<MetricsView, Error> {
        let open = self.metrics_public || (self.keys.is_none() && self.metrics_keys.is_none());
        if open {
            return Ok(MetricsView::Full);
        }
        let key = presented_key(headers)?;
        let operator = self
            .metrics_keys
            .as_ref()
            .zip(key)
            .is_some_and(|(keys, key)| keys.current().tenant_of(key).is_some());
        Ok(if operator { MetricsView::Full } else { MetricsView::ProcessOnly })
    }

    /// Why `/metrics` is refused to a request that may not see it: a
    /// tenant's key is forbidden, anything else unauthorized.
    fn metrics_refusal(&self, headers: &HeaderMap) -> Error {
        let tenant_key = presented_key(headers)
            .ok()
            .flatten()
            .zip(self.keys.as_ref())
            .is_some_and(|(key, keys)| keys.current().tenant_of(key).is_some());
        if tenant_key {
            Error::Forbidden(
                "a tenant's API key does not read the service-wide metrics; use a metrics key (metrics.keys_file)"
                    .into(),
            )
        } else {
            Error::Unauthorized(
                "a metrics key is required: send `Authorization: Bearer <key>` (metrics.keys_file)".into(),
            )
        }
    }
}

/// The key a request carries: `Authorization: Bearer …` (scheme in any
/// case), or `X-API-Key`. A request carrying more than one credential
/// (either header twice, or one of each) is refused rather than resolved
/// by picking one: a proxy or client that adds its own must not decide
/// silently which tenant acts.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let authorization = headers.get_all(poem::http::header::AUTHORIZATION);
    let api_key = headers.get_all("x-api-key");
    let credentials = authorization.iter().count() + api_key.iter().count();
    if credentials > 1 {
        return Err(Error::Unauthorized(format!(
            "send one API key: this request carries {credentials} credentials (`Authorization` and `X-API-Key` lines)"
        )));
    }
    let bearer = authorization.iter().find_map(|value| {
        let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    Ok(bearer.or_else(|| api_key.iter().next()?.to_str().ok().map(str::trim)))
}

/// Whether a tree of tenant routes counts against the tenant's rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Rate,
    /// Never refused for the rate (session leases: a worker must be able
    /// to renew and release whatever its tenant's traffic).
    None,
}

/// Authenticates a request of the tenant API and applies the rate limit
/// (per `limit`), before its body is read; the tenant goes into the
/// request for handlers. Mounted on the trees of tenant routes.
pub async fn tenants_only<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    auth: Arc<Auth>,
    limit: Limit,
) -> poem::Result<Response> {
    let admitted = auth.tenant_for(req.headers()).and_then(|tenant| {
        if let Some(limiter) = auth.limiter.as_ref().filter(|_| limit == Limit::Rate) {
            limiter
                .take(&tenant)
                .map_err(|wait| Error::TooManyRequests((wait.as_secs_f64().ceil() as u64).max(1)))?;
        }
        Ok(tenant)
    });
    match admitted {
        Ok(tenant) => {
            tracing::Span::current().record("tenant", &*tenant);
            req.extensions_mut().insert(Tenant(tenant));
            ep.call(req).await.map(IntoResponse::into_response)
        }
        Err(refused) => Err(refuse(&auth, req, refused).await),
    }
}

/// Admits only what may read the service-wide figures: an operator's
/// metrics key (or anyone, when they are public or nothing is keyed).
/// Mounted on `/metrics`.
pub async fn operators_only<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    auth: Arc<Auth>,
) -> poem::Result<Response> {
    match auth.metrics_view(req.headers()) {
        Ok(MetricsView::Full) => ep.call(req).await.map(IntoResponse::into_response),
        Ok(MetricsView::ProcessOnly) => {
            let refused = auth.metrics_refusal(req.headers());
            Err(refuse(&auth, req, refused).await)
        }
        Err(refused) => Err(refuse(&auth, req, refused).await),
    }
}

/// Refuses `req` with `refused`, reading what its client is still sending
/// first (unless it announced more than could ever be read), so the client
/// gets the answer rather than a reset.
async fn refuse(auth: &Auth, mut req: Request, refused: Error) -> poem::Error {
    let announced = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_none_or(|n| n <= auth.drain_bytes) {
        crate::drain::discard(req.take_body().into_bytes_stream(), auth.drain_bytes).await;
    }
    refused.into()
}

/// Re-reads the keys files every `interval` and on SIGHUP, until the
/// returned task is aborted; logs what each reload found and counts it in
/// `metrics`.
pub fn watch(
    auth: Arc<Auth>,
    interval: Duration,
    metrics: Arc<crate::metrics::Metrics>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !auth.has_files() {
        return None;
    }
    Some(tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let why = tokio::select! {
                _ = tick.tick() => "changed",
                Some(()) = async { hangup.as_mut()?.recv().await } => "SIGHUP",
            };
            #[cfg(not(unix))]
            let why = {
                tick.tick().await;
                "changed"
            };
            let failed = auth.reload(why);
            metrics.keys_reloaded(failed, auth.key_count(), auth.bad_line_count());
        }
    }))
}
