//! Logging and tracing setup. Logs go to stderr so that a subcommand's stdout stays
//! machine-readable. Spans (a reconcile, a run) carry ids only, never personal data.
//!
//! Optional trace export: with `--otlp-endpoint URL` (or `OTEL_EXPORTER_OTLP_ENDPOINT`; off when
//! neither is set) the same spans go to an OpenTelemetry collector over OTLP/HTTP (protobuf, to
//! `URL/v1/traces`), from the SDK's batch thread; [`Telemetry`] flushes them when dropped.
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The environment variable of the OTLP endpoint (the OpenTelemetry convention).
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The OTLP endpoint this process exports to, for the sync Jobs it starts.
static OTLP_ENDPOINT: OnceLock<String> = OnceLock::new();

/// How long one export (and the flush at exit) may take: a collector that is down delays a sync
/// Job's exit by at most this.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The variables a process passes on to the sync Jobs it starts, so that their logs and traces
/// go where its own go: `RUST_LOG`, `ROSTERSYNC_LOG_FORMAT` (those that are set) and the OTLP
/// endpoint when trace export is on.
pub fn inherited_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ["RUST_LOG", "ROSTERSYNC_LOG_FORMAT"]
        .into_iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
        .collect();
    if let Some(endpoint) = OTLP_ENDPOINT.get() {
        env.push((OTLP_ENDPOINT_ENV.to_string(), endpoint.clone()));
    }
    env
}

/// Initialises `tracing` from `RUST_LOG` (default `info`); `ROSTERSYNC_LOG_FORMAT=json` selects JSON lines.
pub fn init_logging() {
    let _ = init(None, "rostersync");
}

/// Keeps the trace export running; dropping it flushes the spans not yet exported.
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("warning: cannot flush the traces to the OTLP endpoint: {err}");
        }
    }
}

/// The URL spans are sent to: `endpoint` as a base (`/v1/traces` appended, as the OpenTelemetry
/// specification says for `OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// Logging as [`init_logging`], and, with an `otlp_endpoint`, span export to it as service
/// `service` (`OTEL_SERVICE_NAME` wins). A broken endpoint is said on stderr; logging goes on.
pub fn init(otlp_endpoint: Option<&str>, service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("ROSTERSYNC_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colours only on a terminal: `kubectl logs`, log collectors and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let provider =
        otlp_endpoint
            .filter(|e| !e.trim().is_empty())
            .and_then(|endpoint| match provider(endpoint, service) {
                Ok(p) => {
                    let _ = OTLP_ENDPOINT.set(endpoint.to_string());
                    Some(p)
                }
                Err(err) => {
                    eprintln!("warning: traces are not exported: {err}");
                    None
                }
            });
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("rostersync")));
    // A second initialisation (tests) is harmless: ignore "already set".
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Telemetry { provider }
}

fn provider(endpoint: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    use anyhow::Context as _;
    let url = traces_url(endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("cannot export to the OTLP endpoint {url}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_string());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn traces_go_to_the_signal_path_of_the_endpoint() {
        for (endpoint, url) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://otel.example/otlp",
                "https://otel.example/otlp/v1/traces",
            ),
        ] {
            assert_eq!(super::traces_url(endpoint), url);
        }
    }
}
