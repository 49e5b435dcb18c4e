//! Logs and traces. Logs: text for people, JSON for machines. Traces:
//! OpenTelemetry over OTLP/HTTP (protobuf, or JSON with
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), on only when the standard
//! variables name an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and neither `OTEL_SDK_DISABLED=true`
//! nor `OTEL_TRACES_EXPORTER=none` says otherwise. The exporter reads the
//! rest itself (headers, timeout; `OTEL_BSP_*` for batching,
//! `OTEL_TRACES_SAMPLER`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).
//! Each request is a server span continuing a W3C `traceparent`, each
//! database statement a client span under it (sea-orm's spans).

use std::sync::OnceLock;

use opentelemetry::{propagation::Extractor, trace::TracerProvider as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use poem::http::HeaderMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogConfig, LogFormat};

/// Set once traces are exported.
static TRACING: OnceLock<()> = OnceLock::new();

/// Owns the trace pipeline; [`Telemetry::shutdown`] sends what is left.
#[derive(Debug)]
pub struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    /// Sends the spans still queued (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.0
            && let Err(err) = provider.shutdown()
        {
            eprintln!("warning: traces not all sent at exit: {err}");
        }
    }
}

/// Installs the global subscriber, exporting traces if `traces` and the
/// `OTEL_*` variables ask for it. `RUST_LOG`, when set, overrides
/// `log.level` with a full filter directive; it filters logs, not spans.
pub fn init(log: &LogConfig, traces: bool) -> Telemetry {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "{level},sqlx=warn,sea_orm=warn,sea_orm_migration=warn,poem=warn",
                level = log.level.as_str()
            ))
        });
    // Colours only for a person at a terminal: never in files, pipes or
    // log collectors, nor with `NO_COLOR` set.
    let colour =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour);
    let logs = match log.format {
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).with_filter(filter).boxed(),
        LogFormat::Text => fmt.compact().with_filter(filter).boxed(),
    };
    let (provider, problem) = match if traces { tracer_provider() } else { Ok(None) } {
        Ok(provider) => (provider, None),
        Err(problem) => (None, Some(problem)),
    };
    let traces = provider.as_ref().map(|provider| {
        let spans = Targets::new()
            .with_target("session_backend", tracing::Level::INFO)
            .with_target("sea_orm", tracing::Level::INFO);
        tracing_opentelemetry::layer().with_tracer(provider.tracer("session-backend")).with_filter(spans)
    });
    // Only fails when a subscriber is already installed (tests): keep it.
    if tracing_subscriber::registry().with(logs).with(traces).try_init().is_ok() && provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let _ = TRACING.set(());
    }
    if let Some(problem) = problem {
        tracing::warn!("traces are off: {problem}");
    }
    Telemetry(provider)
}

/// The provider the `OTEL_*` variables ask for, if they ask for one.
fn tracer_provider() -> Result<Option<SdkTracerProvider>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if endpoint.is_none() || disabled {
        return Ok(None);
    }
    let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    if protocol.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("grpc")) {
        return Err("OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not built in: use http/protobuf or http/json \
                    (an OpenTelemetry collector takes both on port 4318)"
            .into());
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("the OTLP exporter cannot be built: {e}"))?;
    let mut resource = Resource::builder();
    if var("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("session-backend");
    }
    Ok(Some(
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build(),
    ))
}

/// Continues the caller's trace (a W3C `traceparent`) in `span`, when
/// traces are exported.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if TRACING.get().is_none() {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    drop(span.set_parent(parent));
}

/// `stream`, polled inside the span current now: the statements of a
/// listing written after its handler returned stay in its request's trace.
pub fn in_current_span<S>(stream: S) -> impl futures::Stream<Item = S::Item> + Send
where
    S: futures::Stream + Send + 'static,
{
    let span = tracing::Span::current();
    let mut stream = Box::pin(stream);
    futures::stream::poll_fn(move |cx| {
        let _entered = span.enter();
        stream.as_mut().poll_next(cx)
    })
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
