//! Telemetry: the tracing subscriber, request ids, and the access-log middleware that writes
//! one line and records the request metrics (and, when exported, the request's span) for
//! every request. It needs only the metrics ([`crate::recorder`]) and the tracer
//! ([`crate::trace`]), not the rest of the application state.

pub(crate) mod settings;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::Gauge;
use tokio::time::Instant;
use tracing_subscriber::EnvFilter;

use crate::access_log;
use crate::config::LogFormat;
use crate::recorder::{Metrics, RequestRecord};
use crate::trace::{self, Context, SpanKind, SpanRecord, Tracer};

/// What [`init`] set up, for the start-up line: the level filter in force, and a `RUST_LOG`
/// that could not be read (the default then applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSetup {
    /// The directives in force (`RUST_LOG`'s, else `info`).
    pub filter: String,
    /// `RUST_LOG`, when it was set but malformed.
    pub rejected: Option<RejectedFilter>,
}

/// A malformed `RUST_LOG`: its value and the parser's complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedFilter {
    /// The variable's value.
    pub value: String,
    /// Why it was refused.
    pub error: String,
}

/// The default level when `RUST_LOG` is unset or malformed.
pub const DEFAULT_FILTER: &str = "info";

/// The level filter for a `RUST_LOG` value (none: unset), and the setup to report.
pub fn filter_for(rust_log: Option<&str>) -> (EnvFilter, LogSetup) {
    let fallback = |rejected| {
        (
            EnvFilter::new(DEFAULT_FILTER),
            LogSetup {
                filter: DEFAULT_FILTER.to_owned(),
                rejected,
            },
        )
    };
    match rust_log {
        None => fallback(None),
        Some(v) => match EnvFilter::try_new(v) {
            Ok(f) => (
                f,
                LogSetup {
                    filter: v.to_owned(),
                    rejected: None,
                },
            ),
            Err(e) => fallback(Some(RejectedFilter {
                value: v.to_owned(),
                error: e.to_string(),
            })),
        },
    }
}

/// Installs the global subscriber, writing to stderr at `RUST_LOG`'s levels (default `info`),
/// and the access log's buffered writer ([`access_log::install`]); a second call is a no-op
/// (tests build several apps).
pub fn init(format: LogFormat) -> LogSetup {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, setup) = filter_for(rust_log.as_deref());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, not for files and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // The access log's own writer, in the same format, once the subscriber is the process's.
    if installed.is_ok() {
        access_log::install(format);
    }
    setup
}

/// Counts a request in flight until dropped, even if the request is cancelled.
struct InFlight(Gauge);

impl Drop for InFlight {
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

/// One request's access-log entry, from its head to its answer: [`Access::begin`] takes up
/// the caller's trace (or starts one) and counts the request in flight; [`Access::end`]
/// writes the one log line, records the request metrics and, when exported, the request's
/// span, from the answer's [`RequestRecord`]. The router's middleware ([`access_log`]) and
/// the proxy's own service both write their lines with it.
pub struct Access {
    started: Instant,
    ctx: Context,
    wall: Option<SystemTime>,
    method: http::Method,
    path: String,
    request_id: String,
    in_flight: InFlight,
}

impl Access {
    /// Begins the entry of a request whose `x-request-id` is set.
    pub fn begin<B>(req: &http::Request<B>, metrics: &Metrics, tracer: &Tracer) -> Self {
        let started = Instant::now();
        let ctx = Context::from_headers(req.headers(), tracer.exporting());
        let wall = tracer.recording(&ctx).then(SystemTime::now);
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        metrics.in_flight.increment(1.0);
        Self {
            started,
            ctx,
            wall,
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            request_id,
            in_flight: InFlight(metrics.in_flight.clone()),
        }
    }

    /// The request's trace context: the caller's trace, or a new one.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Ends the entry with the request's answer.
    pub fn end<B>(self, resp: &http::Response<B>, metrics: &Metrics, tracer: &Tracer) {
        let Self {
            started,
            ctx,
            wall,
            method,
            path,
            request_id,
            in_flight,
        } = self;
        drop(in_flight);
        let fixed = RequestRecord::new(fixed_route(&path));
        let info = resp.extensions().get::<RequestRecord>().unwrap_or(&fixed);
        let caller: Option<&str> = info.caller.as_deref();
        let took: Duration = started.elapsed();
        let status = resp.status();
        metrics.request_done(info.endpoint, status, took);
        // Probes and scrapes: quiet in the logs, and no span.
        let probe = matches!(info.endpoint, "healthz" | "readyz" | "metrics");
        access_log::write(&access_log::Line {
            request_id: &request_id,
            trace_id: ctx.trace_id,
            method: &method,
            path: &path,
            endpoint: info.endpoint,
            caller,
            status: status.as_u16(),
            attempts: info.attempts,
            duration: took,
            probe,
        });
        if let Some(start) = wall.filter(|_| !probe) {
            tracer.record(SpanRecord {
                trace_id: ctx.trace_id,
                span_id: ctx.span_id,
                parent: ctx.parent,
                tracestate: ctx.tracestate,
                start,
                end: start + took,
                kind: SpanKind::Request {
                    method,
                    path: capped(path, MAX_SPAN_PATH_BYTES),
                    endpoint: info.endpoint,
                    status: status.as_u16(),
                    attempts: info.attempts,
                    request_id,
                },
            });
        }
    }
}

/// One log line and the request metrics for every request the router serves. Runs inside
/// the request-id layer, so `x-request-id` is always set. The request's trace context is
/// made here, from the caller's `traceparent` or new, and the rest of the request runs in it.
pub async fn access_log(
    State((metrics, tracer)): State<(Arc<Metrics>, Tracer)>,
    req: Request,
    next: Next,
) -> Response {
    let access = Access::begin(&req, &metrics, &tracer);
    let resp = trace::scope(access.context().clone(), next.run(req)).await;
    access.end(&resp, &metrics, &tracer);
    resp
}

pub use crate::access_log::log_safe;

/// The most of a request's path a span keeps: paths up to hyper's 64 KiB head would make the
/// export queue (`telemetry.max_queue_spans` spans) hold far more than its size suggests.
pub const MAX_SPAN_PATH_BYTES: usize = 512;

/// `s` cut to at most `max` bytes, on a character boundary.
fn capped(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
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
        Some(tower_http::request_id::RequestId::new(new_request_id()))
    }
}

/// A new request id: 128 random bits as 32 lowercase hex digits, written on the stack (one
/// allocation, the header value's, instead of a formatted `String` and then its copy).
pub fn new_request_id() -> http::HeaderValue {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    let bits = fastrand::u128(..);
    for (i, d) in id.iter_mut().enumerate() {
        *d = DIGITS[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    http::HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_rust_log_is_reported_and_info_applies() {
        let (_, setup) = filter_for(Some("stream_gateway=loud"));
        assert_eq!(setup.filter, "info");
        let rejected = setup.rejected.expect("reported");
        assert_eq!(rejected.value, "stream_gateway=loud");
        assert!(!rejected.error.is_empty());
        assert_eq!(
            filter_for(Some("warn,stream_gateway=debug")).1,
            LogSetup {
                filter: "warn,stream_gateway=debug".into(),
                rejected: None
            }
        );
        assert_eq!(filter_for(None).1.filter, "info");
    }

    #[test]
    fn a_new_request_id_is_32_lowercase_hex_digits_of_the_random_bits_in_order() {
        fastrand::seed(7);
        let bits = fastrand::u128(..);
        fastrand::seed(7);
        let id = new_request_id();
        assert_eq!(id.to_str().unwrap(), format!("{bits:032x}"));
        assert!(is_valid_request_id(id.as_bytes()));
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn a_span_keeps_at_most_512_bytes_of_the_path_cut_on_a_character() {
        assert_eq!(capped("/a".into(), 512), "/a");
        assert_eq!(capped("x".repeat(600), MAX_SPAN_PATH_BYTES).len(), 512);
        assert_eq!(capped("ab\u{e9}".into(), 3), "ab");
    }

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
