//! Span export over OTLP/HTTP (protobuf), off unless `telemetry.otlp_endpoint` is set.
//!
//! A request hands its finished spans to a bounded queue with `try_send`: when the queue is
//! full (the collector is slow or down), the span is dropped and counted, and the request goes
//! on. The exporter's own task takes up to `telemetry.max_batch_spans` spans at a time, waits at
//! most `telemetry.batch_delay_ms` for a batch to fill, and posts it with its own timeout. A
//! failed batch is counted and dropped, not retried: traces are worth less than the memory and
//! the connections a backlog would hold. On shutdown, [`Tracer::flush`] sends what is waiting at
//! once, bounded by `telemetry.otlp_timeout_ms`.
//!
//! Its own small client (hyper's, as for Stream, with rustls and hickory DNS), not the OpenTelemetry
//! SDK: the SDK and its OTLP exporter add several crates and a second HTTP stack to a build that
//! CI times, and `tracing` spans on every request to a hot path that is measured; the gateway
//! records two kinds of span with fixed attributes. Like the upstream client it never reads
//! `HTTP_PROXY` or `HTTPS_PROXY`: traces go straight to the configured collector.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use metrics::Counter;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::settings::TelemetryConfig;
use super::{otlp, Context, SpanRecord};
use crate::net::Dns;
use crate::recorder::Metrics;

/// Where finished spans go: nowhere (export off), or the exporter's queue. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Tracer {
    queue: Option<Arc<Queue>>,
}

#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<Item>,
    dropped: Counter,
    timeout: Duration,
}

/// What the exporter's queue carries: spans, and requests to send what is before them now.
#[derive(Debug)]
enum Item {
    Span(SpanRecord),
    Flush(oneshot::Sender<()>),
}

impl Tracer {
    /// No export: spans are not even recorded.
    pub fn off() -> Self {
        Self::default()
    }

    /// Whether spans are exported (a new trace is then sampled).
    pub fn exporting(&self) -> bool {
        self.queue.is_some()
    }

    /// Whether the spans of a request in `ctx` are recorded: export is on and the trace
    /// sampled (a caller that does not sample its trace is not overruled).
    pub fn recording(&self, ctx: &Context) -> bool {
        self.exporting() && ctx.sampled
    }

    /// Hands a finished span to the exporter, or drops and counts it when the queue is full.
    pub fn record(&self, span: SpanRecord) {
        if let Some(q) = &self.queue {
            if q.tx.try_send(Item::Span(span)).is_err() {
                q.dropped.increment(1);
            }
        }
    }

    /// Sends every span recorded so far without waiting for its batch to fill, and returns
    /// once the collector has answered, or after `telemetry.otlp_timeout_ms` at most (twice
    /// that when the queue is full and a batch is being posted). For shutdown.
    pub async fn flush(&self) {
        let Some(q) = &self.queue else {
            return;
        };
        let (done, answered) = oneshot::channel();
        let _ = tokio::time::timeout(q.timeout * 2, async {
            if q.tx.send(Item::Flush(done)).await.is_ok() {
                let _ = answered.await;
            }
        })
        .await;
    }

    /// Starts the exporter's task (on the current runtime) for `cfg.otlp_endpoint`; off when
    /// it is unset.
    pub fn start(cfg: &TelemetryConfig, metrics: &Metrics) -> Result<Self, rustls::Error> {
        let Some(endpoint) = cfg.otlp_endpoint.clone() else {
            return Ok(Self::off());
        };
        let (tx, rx) = mpsc::channel(cfg.max_queue_spans);
        let exporter = Exporter {
            client: client(cfg.otlp_timeout)?,
            endpoint,
            service_name: cfg.service_name.clone(),
            timeout: cfg.otlp_timeout,
            batch_delay: cfg.batch_delay,
            max_batch: cfg.max_batch_spans,
            exported: metrics.counter("gateway_otlp_spans_exported_total", &[]),
            failed: metrics.counter("gateway_otlp_spans_failed_total", &[]),
        };
        tokio::spawn(exporter.run(rx));
        Ok(Self {
            queue: Some(Arc::new(Queue {
                tx,
                dropped: metrics.counter("gateway_otlp_spans_dropped_total", &[]),
                timeout: cfg.otlp_timeout,
            })),
        })
    }
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<Dns>>, Full<Bytes>>;

fn client(timeout: Duration) -> Result<HttpClient, rustls::Error> {
    let http = crate::net::http_connector(timeout);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

struct Exporter {
    client: HttpClient,
    endpoint: http::Uri,
    service_name: String,
    timeout: Duration,
    batch_delay: Duration,
    max_batch: usize,
    exported: Counter,
    failed: Counter,
}

/// Largest collector answer read (an OTLP answer is a small status message).
const MAX_ANSWER_BYTES: usize = 64 << 10;

impl Exporter {
    /// Sends batches until every [`Tracer`] is gone and the queue is empty; a flush request
    /// sends what is before it at once.
    async fn run(self, mut rx: mpsc::Receiver<Item>) {
        let mut items = Vec::with_capacity(self.max_batch);
        let mut failing = false;
        while rx.recv_many(&mut items, self.max_batch).await > 0 {
            let until = Instant::now() + self.batch_delay;
            while items.len() < self.max_batch && !items.iter().any(|i| matches!(i, Item::Flush(_)))
            {
                let more = self.max_batch - items.len();
                match tokio::time::timeout_at(until, rx.recv_many(&mut items, more)).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            let mut batch = Vec::with_capacity(items.len());
            let mut flushed = Vec::new();
            for item in items.drain(..) {
                match item {
                    Item::Span(s) => batch.push(s),
                    Item::Flush(done) => flushed.push(done),
                }
            }
            if !batch.is_empty() {
                failing = self.send(&batch, failing).await;
            }
            for done in flushed {
                let _ = done.send(());
            }
        }
    }

    /// Posts one batch and counts it; returns whether export is failing now.
    async fn send(&self, batch: &[SpanRecord], failing: bool) -> bool {
        let n = batch.len() as u64;
        let body = otlp::export_request(&self.service_name, batch);
        match self.post(body).await {
            Ok(()) => {
                self.exported.increment(n);
                false
            }
            Err(why) => {
                self.failed.increment(n);
                // One warning when export starts failing, not one per batch.
                if !failing {
                    tracing::warn!(endpoint = %self.endpoint, error = %why, spans = n, "span export failed; dropping spans until it works again");
                }
                true
            }
        }
    }

    /// One POST, answered 2xx within the timeout (the answer's body read, so the connection
    /// can be kept), or why not.
    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let req = http::Request::post(self.endpoint.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let _ = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the collector answered {status}"))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))?
    }
}
