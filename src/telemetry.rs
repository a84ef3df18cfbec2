//! Telemetry: the tracing subscriber, the Prometheus metrics, and the access-log middleware
//! that writes one line and records the request metrics for every request.
//!
//! Metrics are recorded against the app's own recorder (not a process-global one), so several
//! apps in one process (the tests) keep separate counts. Labels are bounded: the endpoint
//! table's names, never raw paths.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::time::Instant;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::proxy::Gateway;

/// Installs the global subscriber; a second call is a no-op (tests build several apps).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, not for files and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// What a handler tells the access log about a request (in the response's extensions).
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo {
    /// The endpoint table's name, or a fixed route's.
    pub endpoint: &'static str,
    /// Upstream attempts made.
    pub attempts: u32,
}

/// Latency buckets, seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

/// The app's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    in_flight: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with every metric described.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str, kind: char| {
            let k = name.into();
            match kind {
                'c' => recorder.describe_counter(k, unit, help.into()),
                'g' => recorder.describe_gauge(k, unit, help.into()),
                _ => recorder.describe_histogram(k, unit, help.into()),
            }
        };
        describe(
            "gateway_requests_total",
            None,
            "Requests answered, by endpoint and status.",
            'c',
        );
        describe(
            "gateway_upstream_attempts_total",
            None,
            "Attempts sent to Stream, by endpoint.",
            'c',
        );
        describe(
            "gateway_retries_total",
            None,
            "Retries, by endpoint and reason.",
            'c',
        );
        describe(
            "gateway_retry_budget_exhausted_total",
            None,
            "Retries refused because the retry budget was spent.",
            'c',
        );
        describe(
            "gateway_upstream_duration_seconds",
            Some(Unit::Seconds),
            "Duration of one upstream attempt.",
            'h',
        );
        describe(
            "gateway_request_duration_seconds",
            Some(Unit::Seconds),
            "Duration of a whole request at the gateway.",
            'h',
        );
        describe(
            "gateway_in_flight_requests",
            None,
            "Requests being handled now.",
            'g',
        );
        describe(
            "gateway_tokens_minted_total",
            None,
            "Tokens minted by POST /tokens, by kind, resource and action.",
            'c',
        );
        describe(
            "gateway_overloaded_total",
            None,
            "Requests refused with 503 over server.max_concurrency.",
            'c',
        );
        describe(
            "gateway_connections_refused_total",
            None,
            "Connections closed at once over server.max_connections.",
            'c',
        );
        let in_flight =
            recorder.register_gauge(&Key::from_name("gateway_in_flight_requests"), &META);
        Self {
            recorder,
            handle,
            in_flight,
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect();
        Key::from_parts(name, labels)
    }

    /// A counter with these labels.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&Self::key(name, labels), &META)
    }

    /// A histogram with these labels.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&Self::key(name, labels), &META)
    }

    /// Drains the histograms' raw samples into their buckets. Until this runs, every
    /// recorded latency is kept as a sample: without it, a gateway nobody scrapes grows by
    /// three samples per request (seen as peak RSS growing with request count in bench/run).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Counts a request in flight until dropped, even if the request is cancelled.
struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn fixed_route(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/tokens" => "tokens",
        _ => "unknown",
    }
}

/// One log line and the request metrics for every request. Runs inside the request-id
/// layer, so `x-request-id` is always set.
pub async fn access_log(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    gw.metrics.in_flight.increment(1.0);
    let guard = InFlight(&gw.metrics.in_flight);
    let resp = next.run(req).await;
    drop(guard);
    let info = resp
        .extensions()
        .get::<RequestInfo>()
        .copied()
        .unwrap_or(RequestInfo {
            endpoint: fixed_route(&path),
            attempts: 0,
        });
    let took: Duration = started.elapsed();
    let status = resp.status();
    gw.metrics
        .counter(
            "gateway_requests_total",
            &[("endpoint", info.endpoint), ("status", status.as_str())],
        )
        .increment(1);
    gw.metrics
        .histogram(
            "gateway_request_duration_seconds",
            &[("endpoint", info.endpoint)],
        )
        .record(took.as_secs_f64());
    let duration_ms = took.as_secs_f64() * 1000.0;
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                request_id = %request_id,
                method = %method,
                path = %path,
                endpoint = info.endpoint,
                status = status.as_u16(),
                attempts = info.attempts,
                duration_ms,
                "request"
            )
        };
    }
    if matches!(info.endpoint, "healthz" | "readyz" | "metrics") {
        line!(debug);
    } else {
        line!(info);
    }
    resp
}

/// Whether a caller's request id may be kept: `[A-Za-z0-9._:-]{1,128}`. Anything else
/// could forge fields in text logs (spaces, `=`), or carry kilobytes or non-ASCII upstream.
pub fn is_valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
}

/// Removes the caller's `x-request-id` unless it is one valid id, so the request-id layer
/// that runs next makes a new one. Two ids are both dropped: neither is trusted over the other.
pub fn screen_request_id<B>(mut req: http::Request<B>) -> http::Request<B> {
    let headers = req.headers_mut();
    let mut ids = headers.get_all("x-request-id").iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(id), None) => is_valid_request_id(id.as_bytes()),
        _ => false,
    };
    if !keep {
        headers.remove("x-request-id");
    }
    req
}

/// Request ids for requests that arrive without one: 128 random bits from a thread-local
/// generator, as hex. tower-http's UUID maker asks the kernel for randomness on every
/// request (one `getrandom` syscall each, seen in the profile); an id needs to be unique,
/// not unpredictable.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastRequestId;

impl tower_http::request_id::MakeRequestId for FastRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let v = http::HeaderValue::from_str(&format!("{:032x}", fastrand::u128(..))).ok()?;
        Some(tower_http::request_id::RequestId::new(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_1_to_128_of_letters_digits_and_dot_underscore_colon_dash() {
        assert!(is_valid_request_id(b"a"));
        assert!(is_valid_request_id(b"Req-1.2_3:4"));
        assert!(is_valid_request_id(&[b'x'; 128]));
        assert!(!is_valid_request_id(&[b'x'; 129]));
        assert!(!is_valid_request_id(b""));
        for bad in [
            &b"a b"[..],
            b"a=b",
            b"a\"b",
            "\u{e9}".as_bytes(),
            b"a/b",
            b"a\tb",
        ] {
            assert!(!is_valid_request_id(bad), "{bad:?}");
        }
    }
}
