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
    sync::{Arc, Mutex, RwLock},
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
    /// What was last read of the file.
    state: Mutex<FileState>,
    current: RwLock<Arc<KeySet>>,
}

#[derive(Debug, Default)]
struct FileState {
    /// The file's text when it was last read.
    text: Option<String>,
    /// Its lines that were skipped, each named with its number.
    bad_lines: Vec<String>,
    /// Reads that failed in a row (the file missing or unreadable).
    failed_reads: u32,
}

/// What a reload of the keys file found.
#[derive(Debug, Default)]
pub struct Reload {
    /// The keys in use changed.
    pub changed: bool,
    /// Lines of a new text that were skipped, each named with its number.
    pub bad_lines: Vec<String>,
    /// Why the file could not be read, if it could not.
    pub unreadable: Option<String>,
    /// The file stayed unreadable, so its keys no longer work.
    pub file_keys_dropped: bool,
}

impl Reload {
    /// Whether the reload failed in any way (counted in `/metrics`).
    pub fn failed(&self) -> bool {
        !self.bad_lines.is_empty() || self.unreadable.is_some()
    }
}

impl Auth {
    /// Reads the configured keys and the keys file. A file that cannot be
    /// read stops start-up; its bad lines are skipped and logged.
    pub fn load(whole: &Config) -> Result<Self, String> {
        let config = &whole.auth;
        let keys = if config.enabled() {
            let configured = config.keys.key_set()?;
            let file = config.keys_file.as_ref().map(PathBuf::from);
            let keys = Keys {
                current: RwLock::new(Arc::new(configured.clone())),
                configured,
                file,
                state: Mutex::new(FileState::default()),
            };
            let loaded = keys.reload();
            if let Some(why) = loaded.unreadable {
                return Err(why);
            }
            for line in &loaded.bad_lines {
                tracing::error!("API key skipped: {line}");
            }
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

    /// Reads the keys file again; what it found (see [`Keys::reload`]).
    pub fn reload(&self) -> Reload {
        self.keys.as_ref().map_or_else(Reload::default, Keys::reload)
    }

    /// How many lines of the keys file in use were skipped as bad.
    pub fn bad_line_count(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| lock(&k.state).bad_lines.len())
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
    /// Reads the file. A changed text replaces the file's keys with the
    /// keys of its good lines (a bad line is skipped, never a reason to keep
    /// keys the file no longer lists). A failed read keeps the keys in use
    /// once, as a file being swapped may be missing for a moment; a second
    /// failed read in a row (one reload interval later) drops the file's
    /// keys, leaving only those of the configuration itself.
    fn reload(&self) -> Reload {
        let Some(file) = &self.file else { return Reload::default() };
        let mut state = lock(&self.state);
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                state.failed_reads += 1;
                let unreadable = Some(format!("cannot read auth.keys_file `{}`: {e}", file.display()));
                if state.failed_reads < 2 || state.text.is_none() {
                    return Reload { unreadable, ..Reload::default() };
                }
                *state = FileState { failed_reads: state.failed_reads, ..FileState::default() };
                self.replace(self.configured.clone());
                return Reload { changed: true, unreadable, file_keys_dropped: true, ..Reload::default() };
            }
        };
        state.failed_reads = 0;
        if state.text.as_deref() == Some(text.as_str()) {
            return Reload::default();
        }
        let origin = format!("auth.keys_file `{}`", file.display());
        let (from_file, mut bad_lines) = KeySet::parse_lenient(&text, &origin);
        let (keys, conflicts) = self.configured.clone().merged(&from_file);
        bad_lines.extend(conflicts.into_iter().map(|conflict| format!("{origin}: {conflict}")));
        self.replace(keys);
        *state = FileState { text: Some(text), bad_lines: bad_lines.clone(), failed_reads: 0 };
        Reload { changed: true, bad_lines, ..Reload::default() }
    }

    fn replace(&self, keys: KeySet) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
/// returned task is aborted; logs what each reload found and counts it in
/// `metrics`.
pub fn watch(
    auth: Arc<Auth>,
    interval: Duration,
    metrics: Arc<crate::metrics::Metrics>,
) -> Option<tokio::task::JoinHandle<()>> {
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
            let reload = auth.reload();
            log_reload(&reload, auth.key_count(), why);
            metrics.keys_reloaded(reload.failed(), auth.key_count(), auth.bad_line_count());
        }
    }))
}

fn log_reload(reload: &Reload, keys: usize, why: &str) {
    for line in &reload.bad_lines {
        tracing::error!("API key skipped: {line}");
    }
    match &reload.unreadable {
        Some(problem) if reload.file_keys_dropped => {
            tracing::error!("{problem}; read again and still failing, so its keys no longer work");
        }
        Some(problem) => tracing::warn!("{problem}; its keys stay in use until the next read fails too"),
        None => {}
    }
    if reload.changed {
        tracing::info!(keys, why, "API keys reloaded");
    }
}
