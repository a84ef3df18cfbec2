//! Tracing across services: the W3C trace context of each request ([`context`]), the spans the
//! gateway records (one per request, one per upstream attempt), and their optional export
//! over OTLP/HTTP ([`export`], encoded by [`otlp`]).
//!
//! With export off, a request costs a few random ids (its trace and span, one per attempt) and
//! one `traceparent` header per attempt: no span is recorded. With it on, a finished span is a small record handed to a bounded queue; the
//! exporter's own task encodes and sends batches, so a slow or absent collector never holds a
//! request back.

pub mod context;
pub(crate) mod export;
pub(crate) mod otlp;
pub(crate) mod settings;

use std::future::Future;
use std::time::SystemTime;

use http::header::HeaderValue;

pub use context::{Context, SpanId, TraceId, TRACEPARENT, TRACESTATE};
pub use export::Tracer;

tokio::task_local! {
    static CURRENT: Context;
}

/// Runs `f` (the rest of a request's handling) with `ctx` as the request's trace context.
/// A task-local rather than a request extension: the context reaches the proxy handler
/// without an allocation per request.
pub async fn scope<F: Future>(ctx: Context, f: F) -> F::Output {
    CURRENT.scope(ctx, f).await
}

/// The trace context of the request being handled, inside [`scope`].
pub fn current() -> Option<Context> {
    CURRENT.try_with(Context::clone).ok()
}

/// A finished span, on its way to the exporter.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    /// The caller's `tracestate`, when it was passed on.
    pub tracestate: Option<HeaderValue>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub kind: SpanKind,
}

/// What a span was about, with the attributes it is exported with.
#[derive(Debug, Clone)]
pub enum SpanKind {
    /// The gateway's span for a whole request (a server span).
    Request {
        method: http::Method,
        path: String,
        /// The endpoint table's name, or a fixed route's.
        endpoint: &'static str,
        status: u16,
        attempts: u32,
        request_id: String,
    },
    /// One attempt upstream (a client span, the request span's child).
    Attempt {
        method: http::Method,
        endpoint: &'static str,
        /// 1 for the first attempt.
        attempt: u32,
        /// `answered`, `timeout`, `not_sent`, `dropped` or `unusable`.
        outcome: &'static str,
        /// Stream's status, when it answered.
        status: Option<u16>,
    },
}
