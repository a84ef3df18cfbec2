//! The app's metrics recorder: its own Prometheus recorder (not a process-global one, so
//! several apps in one process, the tests, keep separate counts), and what a handler reports
//! about a request to the access log. Labels are bounded: the endpoint table's names, never raw paths.

use std::collections::HashMap;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use parking_lot::RwLock;

/// What became of one request, for its access-log line, its metrics and its span: which
/// endpoint it was, which caller sent it, and how many attempts went to Stream. The handler
/// that answers puts it once in the response's extensions; nothing else carries it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The endpoint table's name, or a fixed route's.
    pub endpoint: &'static str,
    /// The caller's name, when `[callers]` is configured and the request got that far.
    pub caller: Option<std::sync::Arc<str>>,
    /// Upstream attempts made.
    pub attempts: u32,
}

impl RequestRecord {
    /// A request to `endpoint` from no known caller, with no attempt made yet.
    pub fn new(endpoint: &'static str) -> Self {
        Self {
            endpoint,
            caller: None,
            attempts: 0,
        }
    }
}

/// Access log lines dropped in this process because stderr did not keep up (the access log
/// counts, every app's `gateway_log_lines_dropped_total` shows it).
pub static LOG_LINES_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Latency buckets, seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

/// The app's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// `gateway_in_flight_requests`, moved by the access log.
    pub(crate) in_flight: Gauge,
    /// The handles every request records, registered once per endpoint (and status): building
    /// a key and looking it up per request cost allocations and hashing on the hot path.
    /// Endpoint names are the table's, so these stay small.
    per_endpoint: RwLock<HashMap<&'static str, PerEndpoint>>,
    requests: RwLock<HashMap<(&'static str, u16), Counter>>,
    /// `gateway_log_lines_dropped_total`: the process's access log counts, this shows it.
    log_lines_dropped: Counter,
}

#[derive(Clone)]
struct PerEndpoint {
    request_duration: Histogram,
    upstream_attempts: Counter,
    upstream_duration: Histogram,
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

/// Every metric, described once: name, unit, help, kind (`c`ounter, `g`auge, `h`istogram).
#[rustfmt::skip]
const DESCRIBED: &[(&str, Option<Unit>, &str, char)] = &[
    ("gateway_requests_total", None, "Requests answered, by endpoint and status.", 'c'),
    ("gateway_upstream_attempts_total", None, "Attempts sent to Stream, by endpoint.", 'c'),
    ("gateway_retries_total", None, "Retries, by endpoint and reason.", 'c'),
    ("gateway_retry_budget_exhausted_total", None, "Retries refused because the retry budget was spent.", 'c'),
    ("gateway_upstream_duration_seconds", Some(Unit::Seconds), "Duration of one upstream attempt.", 'h'),
    ("gateway_request_duration_seconds", Some(Unit::Seconds), "Duration of a whole request at the gateway.", 'h'),
    ("gateway_in_flight_requests", None, "Requests being handled now.", 'g'),
    ("gateway_tokens_minted_total", None, "Tokens minted by POST /tokens, by kind, resource and action.", 'c'),
    ("gateway_overloaded_total", None, "Requests refused with 503 over server.max_concurrency.", 'c'),
    ("gateway_connections_refused_total", None, "Connections closed at once over a listener's connection limit, by listener (internal, public, admin).", 'c'),
    ("gateway_config_reloads_total", None, "Reloads of the secret or the configuration, by result (ok, error).", 'c'),
    ("gateway_config_last_reload_successful", None, "1 while the last reload of the secret or the configuration succeeded (or none failed), 0 from a failure until one succeeds.", 'g'),
    ("gateway_caller_requests_total", None, "Requests by caller ([callers]), endpoint and outcome: allowed, forbidden, rate_limited, upstream_limited, busy.", 'c'),
    ("gateway_upstream_ratelimit_remaining", None, "Calls left in Stream's rate-limit window, by endpoint, as Stream last reported ([callers]).", 'g'),
    ("gateway_otlp_spans_exported_total", None, "Spans the OTLP collector accepted.", 'c'),
    ("gateway_otlp_spans_failed_total", None, "Spans in exports that failed (collector down, slow or refusing).", 'c'),
    ("gateway_otlp_spans_dropped_total", None, "Spans dropped because the export queue was full.", 'c'),
    ("gateway_callers_redis_fallback_total", None, "Caller decisions made by this instance's bucket because Redis (callers.redis_url) was down or slow.", 'c'),
    ("gateway_upstream_auth_failures_total", None, "Answers in which Stream refused the gateway's own signature (a wrong API secret).", 'c'),
    ("gateway_build_info", None, "1, labelled with the gateway's version.", 'g'),
    ("gateway_callers_redis_up", None, "1 while caller decisions go to Redis (callers.redis_url), 0 while they fall back.", 'g'),
    ("gateway_api_key_refused_total", None, "Requests refused for their api_key (another app's, or given twice).", 'c'),
    ("gateway_tokens_refused_total", None, "Refusals of POST /tokens, by reason.", 'c'),
    ("gateway_oidc_keys", None, "Keys held from the identity provider's JWKS ([tokens.oidc]).", 'g'),
    ("gateway_oidc_fetch_total", None, "Fetches of the identity provider's discovery document and JWKS, by outcome (ok, error).", 'c'),
    ("gateway_webhooks_total", None, "Webhooks from Stream, by route and outcome: forwarded, replayed, refused, target_error, target_timeout.", 'c'),
    ("gateway_log_lines_dropped_total", None, "Access log lines dropped because stderr did not take them as fast as requests came (the log's buffer was full).", 'c'),
    ("gateway_webhooks_refused_total", None, "Webhooks refused before forwarding, by route and reason: api_key, no_signature, malformed_signature, bad_signature, too_large, compressed, body, overloaded.", 'c'),
];

/// The names of the gateway's own metrics (the process metrics are [`crate::process`]'s), for
/// the test that holds the docs' metric reference to them.
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    DESCRIBED.iter().map(|d| d.0)
}

impl Metrics {
    /// A fresh recorder with every metric described.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        for &(name, unit, help, kind) in DESCRIBED {
            match kind {
                'c' => recorder.describe_counter(name.into(), unit, help.into()),
                'g' => recorder.describe_gauge(name.into(), unit, help.into()),
                _ => recorder.describe_histogram(name.into(), unit, help.into()),
            }
        }
        let in_flight =
            recorder.register_gauge(&Key::from_name("gateway_in_flight_requests"), &META);
        recorder
            .register_gauge(
                &Self::key(
                    "gateway_build_info",
                    &[("version", env!("CARGO_PKG_VERSION"))],
                ),
                &META,
            )
            .set(1.0);
        let log_lines_dropped =
            recorder.register_counter(&Key::from_name("gateway_log_lines_dropped_total"), &META);
        Self {
            recorder,
            handle,
            in_flight,
            per_endpoint: RwLock::default(),
            requests: RwLock::default(),
            log_lines_dropped,
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

    /// A gauge with these labels.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder
            .register_gauge(&Self::key(name, labels), &META)
    }

    /// A histogram with these labels.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&Self::key(name, labels), &META)
    }

    fn endpoint(&self, endpoint: &'static str) -> PerEndpoint {
        if let Some(h) = self.per_endpoint.read().get(endpoint) {
            return h.clone();
        }
        let ep = [("endpoint", endpoint)];
        let h = PerEndpoint {
            request_duration: self.histogram("gateway_request_duration_seconds", &ep),
            upstream_attempts: self.counter("gateway_upstream_attempts_total", &ep),
            upstream_duration: self.histogram("gateway_upstream_duration_seconds", &ep),
        };
        self.per_endpoint.write().insert(endpoint, h.clone());
        h
    }

    /// Records a finished request: `gateway_requests_total` by endpoint and status, and its
    /// duration.
    pub fn request_done(&self, endpoint: &'static str, status: http::StatusCode, took: Duration) {
        let key = (endpoint, status.as_u16());
        let counter = self.requests.read().get(&key).cloned();
        let counter = counter.unwrap_or_else(|| {
            let c = self.counter(
                "gateway_requests_total",
                &[("endpoint", endpoint), ("status", status.as_str())],
            );
            self.requests.write().insert(key, c.clone());
            c
        });
        counter.increment(1);
        self.endpoint(endpoint)
            .request_duration
            .record(took.as_secs_f64());
    }

    /// Records one upstream attempt and how long it took.
    pub fn upstream_attempt(&self, endpoint: &'static str, took: Duration) {
        let h = self.endpoint(endpoint);
        h.upstream_attempts.increment(1);
        h.upstream_duration.record(took.as_secs_f64());
    }

    /// Drains the histograms' raw samples into their buckets. Until this runs, every
    /// recorded latency is kept as a sample: without it, a gateway nobody scrapes grows by
    /// three samples per request (seen as peak RSS growing with request count in bench/run).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition, the process's own metrics included.
    pub fn render(&self) -> String {
        self.log_lines_dropped
            .absolute(LOG_LINES_DROPPED.load(std::sync::atomic::Ordering::Relaxed));
        self.handle.run_upkeep();
        let mut text = self.handle.render();
        if let Some(p) = crate::process::sample() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&crate::process::render(&p));
        }
        text
    }
}
