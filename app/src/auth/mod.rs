//! API keys and tenants. With keys configured (`auth.keys`, and/or the
//! `auth.keys_file` a Kubernetes Secret provides), every `/api/` request
//! must carry one (`Authorization: Bearer <key>` or `X-API-Key: <key>`),
//! and its tenant is the tenant of every store query it makes. Without
//! keys, every request is the tenant `default` (local use). The keys file
//! is read again when it changes and on SIGHUP, so keys rotate without a
//! restart. A per-tenant token bucket ([`rate`]) may limit requests.

pub mod keys;
mod rate;

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use poem::{Endpoint, IntoResponse, Request, Response, http::HeaderMap};

pub use self::keys::KeySet;
use self::rate::RateLimiter;
use crate::{config::Config, error::Error};

/// The tenant a request acts for; every store query is scoped by it.
#[derive(Clone, Debug)]
pub struct Tenant(Arc<str>);

impl Tenant {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What authenticates and limits requests.
#[derive(Debug)]
pub struct Auth {
    /// `None`: authentication is off.
    keys: Option<Keys>,
    limiter: Option<RateLimiter>,
    default_tenant: Arc<str>,
    /// Whether `/metrics` answers without a key.
    metrics_public: bool,
    /// How much of a refused request's body is read (so its client gets
    /// the answer rather than a reset): the body limit plus a margin.
    drain_bytes: u64,
}

#[derive(Debug)]
struct Keys {
    /// Keys from the configuration itself (kept across reloads).
    configured: KeySet,
    file: Option<PathBuf>,
    /// What the file held when it was last read.
    file_text: RwLock<Option<String>>,
    current: RwLock<Arc<KeySet>>,
}

impl Auth {
    /// Reads the configured keys and the keys file; a bad line or a file
    /// that cannot be read stops start-up.
    pub fn load(whole: &Config) -> Result<Self, String> {
        let config = &whole.auth;
        let keys = if config.enabled() {
            let configured = config.keys.key_set()?;
            let file = config.keys_file.as_ref().map(PathBuf::from);
            let keys = Keys {
                current: RwLock::new(Arc::new(configured.clone())),
                configured,
                file,
                file_text: RwLock::new(None),
            };
            keys.reload()?;
            Some(keys)
        } else {
            None
        };
        let limit = &whole.rate_limit;
        Ok(Self {
            keys,
            limiter: RateLimiter::new(limit.requests_per_second, limit.burst),
            default_tenant: crate::store::DEFAULT_TENANT.into(),
            metrics_public: whole.metrics.public,
            drain_bytes: whole.server.body_limit_bytes as u64 + crate::drain::DRAIN_LIMIT,
        })
    }

    /// Whether requests need a key.
    pub fn enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// How many keys are accepted now.
    pub fn key_count(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| read(&k.current).len())
    }

    /// Whether keys are required but none is listed (every request refused).
    pub fn lists_no_key(&self) -> bool {
        self.keys.as_ref().is_some_and(|k| read(&k.current).is_empty())
    }

    /// Reads the keys file again if it changed; `Ok(true)` when the keys
    /// were replaced. On error the keys in use stay as they are.
    pub fn reload(&self) -> Result<bool, String> {
        self.keys.as_ref().map_or(Ok(false), Keys::reload)
    }

    /// The keys file, if one is configured.
    pub fn keys_file(&self) -> Option<&std::path::Path> {
        self.keys.as_ref().and_then(|k| k.file.as_deref())
    }

    /// The tenant of a request with these headers.
    fn tenant_for(&self, headers: &HeaderMap) -> Result<Arc<str>, Error> {
        let Some(keys) = &self.keys else { return Ok(self.default_tenant.clone()) };
        let Some(key) = presented_key(headers) else {
            return Err(Error::Unauthorized(
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`".into(),
            ));
        };
        read(&keys.current)
            .tenant_of(key)
            .ok_or_else(|| Error::Unauthorized("the API key is not valid".into()))
    }
}

impl Keys {
    fn reload(&self) -> Result<bool, String> {
        let Some(file) = &self.file else { return Ok(false) };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read auth.keys_file `{}`: {e}", file.display()))?;
        if read(&self.file_text).as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let from_file = KeySet::parse(&text, &format!("auth.keys_file `{}`", file.display()))?;
        let keys = self.configured.clone().merged(&from_file)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        *self.file_text.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
        Ok(true)
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// The key a request carries: `Authorization: Bearer …` (scheme in any
/// case), else `X-API-Key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers.get_all(poem::http::header::AUTHORIZATION).iter().find_map(|value| {
        let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    bearer.or_else(|| headers.get("x-api-key")?.to_str().ok().map(str::trim))
}

/// Authenticates `/api/` requests and applies the rate limit, before
/// their bodies are read; the tenant goes into the request for handlers.
/// `/metrics` needs a key too (any tenant's) unless `metrics.public`.
pub async fn authenticate<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    auth: Arc<Auth>,
) -> poem::Result<Response> {
    match admit(&auth, &req) {
        Ok(Some(tenant)) => {
            tracing::Span::current().record("tenant", &*tenant);
            req.extensions_mut().insert(Tenant(tenant));
        }
        Ok(None) => {}
        Err(refused) => {
            // Read what the client is still sending (unless it announced
            // more than could ever be read), so it gets the answer.
            let announced = req
                .headers()
                .get(poem::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if announced.is_none_or(|n| n <= auth.drain_bytes) {
                crate::drain::discard(req.take_body().into_bytes_stream(), auth.drain_bytes).await;
            }
            return Err(refused.into());
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// The tenant of an `/api/` request (`None` for other paths), or why it
/// is refused.
fn admit(auth: &Auth, req: &Request) -> Result<Option<Arc<str>>, Error> {
    let path = req.uri().path();
    if path == "/metrics" && !auth.metrics_public {
        auth.tenant_for(req.headers())?;
        return Ok(None);
    }
    if !path.starts_with("/api/") {
        return Ok(None);
    }
    let tenant = auth.tenant_for(req.headers())?;
    if let Some(limiter) = &auth.limiter {
        limiter
            .take(&tenant)
            .map_err(|wait| Error::TooManyRequests((wait.as_secs_f64().ceil() as u64).max(1)))?;
    }
    Ok(Some(tenant))
}

/// Re-reads the keys file every `interval` and on SIGHUP, until the
/// returned task is aborted. Problems are logged; the keys in use stay.
pub fn watch(auth: Arc<Auth>, interval: Duration) -> Option<tokio::task::JoinHandle<()>> {
    auth.keys_file()?;
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
            match auth.reload() {
                Ok(true) => tracing::info!(keys = auth.key_count(), why, "API keys reloaded"),
                Ok(false) => {}
                Err(e) => tracing::error!("API keys not reloaded, the previous keys stay in use: {e}"),
            }
        }
    }))
}
