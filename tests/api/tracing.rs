//! Trace context across the gateway: the caller's `traceparent` continued (or replaced, never
//! forwarded malformed), one span per request and one per upstream attempt, exported over
//! OTLP/HTTP to a collector on loopback that decodes the protobuf itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

use crate::helpers::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

fn traceparent(trace: &str, flags: &str) -> String {
    format!("00-{trace}-{CALLER_SPAN}-{flags}")
}

/// One protobuf field as the wire has it.
enum Field {
    Varint(u64),
    Fixed(u64),
    Bytes(Vec<u8>),
}

fn varint(b: &mut &[u8]) -> u64 {
    let mut v = 0;
    for shift in (0..64).step_by(7) {
        let byte = b[0];
        *b = &b[1..];
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    v
}

/// A message's fields, in order; written without the gateway's encoder, from the wire format.
fn fields(mut b: &[u8]) -> Vec<(u64, Field)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut b)),
            1 => {
                let v = u64::from_le_bytes(b[..8].try_into().unwrap());
                b = &b[8..];
                Field::Fixed(v)
            }
            2 => {
                let n = varint(&mut b) as usize;
                let v = b[..n].to_vec();
                b = &b[n..];
                Field::Bytes(v)
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((key >> 3, field));
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// A decoded span, attributes as text (integers in decimal).
#[derive(Debug, Clone, Default)]
struct Span {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    trace_state: String,
    name: String,
    kind: u64,
    start: u64,
    end: u64,
    attrs: BTreeMap<String, String>,
    status: u64,
}

/// `KeyValue` (key 1, `AnyValue` 2: string 1, int 3).
fn key_value(b: &[u8]) -> (String, String) {
    let (mut k, mut v) = (String::new(), String::new());
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Bytes(s)) => k = text(&s),
            (2, Field::Bytes(any)) => {
                for (n, f) in fields(&any) {
                    match (n, f) {
                        (1, Field::Bytes(s)) => v = text(&s),
                        (3, Field::Varint(i)) => v = i.to_string(),
                        _ => panic!("unexpected AnyValue field {n}"),
                    }
                }
            }
            _ => panic!("unexpected KeyValue field {n}"),
        }
    }
    (k, v)
}

fn span(b: &[u8], service: &str) -> Span {
    let mut s = Span {
        service: service.to_owned(),
        ..Span::default()
    };
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Bytes(v)) => s.trace_id = hex(&v),
            (2, Field::Bytes(v)) => s.span_id = hex(&v),
            (3, Field::Bytes(v)) => s.trace_state = text(&v),
            (4, Field::Bytes(v)) => s.parent = hex(&v),
            (5, Field::Bytes(v)) => s.name = text(&v),
            (6, Field::Varint(v)) => s.kind = v,
            (7, Field::Fixed(v)) => s.start = v,
            (8, Field::Fixed(v)) => s.end = v,
            (9, Field::Bytes(v)) => {
                let (k, v) = key_value(&v);
                s.attrs.insert(k, v);
            }
            (15, Field::Bytes(v)) => {
                for (n, f) in fields(&v) {
                    if let (3, Field::Varint(code)) = (n, f) {
                        s.status = code;
                    }
                }
            }
            _ => panic!("unexpected Span field {n}"),
        }
    }
    s
}

/// `ExportTraceServiceRequest` -> `ResourceSpans` (resource 1, scope spans 2) -> `ScopeSpans`
/// (scope 1, spans 2).
fn decode(body: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    for (n, f) in fields(body) {
        let (1, Field::Bytes(rs)) = (n, f) else {
            panic!("unexpected request field {n}")
        };
        let mut service = String::new();
        for (n, f) in fields(&rs) {
            match (n, f) {
                (1, Field::Bytes(resource)) => {
                    for (_, f) in fields(&resource) {
                        if let Field::Bytes(kv) = f {
                            let (k, v) = key_value(&kv);
                            if k == "service.name" {
                                service = v;
                            }
                        }
                    }
                }
                (2, Field::Bytes(ss)) => {
                    for (n, f) in fields(&ss) {
                        if let (2, Field::Bytes(sp)) = (n, f) {
                            out.push(span(&sp, &service));
                        }
                    }
                }
                _ => panic!("unexpected ResourceSpans field {n}"),
            }
        }
    }
    out
}

/// An OTLP/HTTP traces receiver on loopback that answers `status`.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start(status: StatusCode) -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                post(
                    move |State(spans): State<Arc<Mutex<Vec<Span>>>>,
                          headers: axum::http::HeaderMap,
                          body: Bytes| async move {
                        assert_eq!(headers["content-type"], "application/x-protobuf");
                        spans.lock().unwrap().extend(decode(&body));
                        status
                    },
                ),
            )
            .with_state(spans.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, spans }
    }

    /// Waits (up to 10 s) for `n` spans of `trace`.
    async fn wait_for(&self, n: usize, trace: &str) -> Vec<Span> {
        let of_trace = || -> Vec<Span> {
            let all = self.spans.lock().unwrap();
            all.iter()
                .filter(|s| s.trace_id == trace)
                .cloned()
                .collect()
        };
        wait_until("the collector has the spans", || of_trace().len() >= n).await;
        of_trace()
    }
}

fn exporting_to(url: &str) -> impl FnOnce(figment::Figment) -> figment::Figment + '_ {
    move |f| {
        f.merge(("telemetry.otlp_endpoint", url))
            .merge(("telemetry.batch_delay_ms", 10))
    }
}

/// Waits (up to 10 s) until `name` is at least `min`.
async fn wait_for_counter(app: &TestApp, name: &str, min: f64) {
    for _ in 0..1000 {
        if app.metric(name).await >= min {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} did not reach {min}");
}

fn received_on(app: &TestApp, prefix: &str) -> Vec<stream_emulator::Received> {
    app.received()
        .into_iter()
        .filter(|r| r.target.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn each_attempt_is_a_child_span_of_the_request_and_its_traceparent_reaches_stream() {
    let collector = Collector::start(StatusCode::OK).await;
    let app = spawn_with(exporting_to(&collector.url)).await;
    app.fault("GET", "/api/v1.0/feed/user/1/", |f| f.status = Some(503));

    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/1/", app.api))
                .header("traceparent", traceparent(TRACE, "01"))
                .header("tracestate", TRACESTATE),
        )
        .await;
    assert_eq!(r.status, 200);

    let spans = collector.wait_for(3, TRACE).await;
    let request = spans.iter().find(|s| s.kind == 2).expect("a server span");
    assert_eq!(
        request.parent, CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(request.name, "GET feed.read");
    assert_eq!(request.service, "stream-gateway");
    assert_eq!(request.trace_state, TRACESTATE);
    assert_eq!(request.attrs["gateway.endpoint"], "feed.read");
    assert_eq!(request.attrs["http.response.status_code"], "200");
    assert_eq!(request.attrs["gateway.attempts"], "2");
    assert_eq!(request.attrs["url.path"], "/api/v1.0/feed/user/1/");
    let mut attempts: Vec<&Span> = spans.iter().filter(|s| s.kind == 3).collect();
    attempts.sort_by_key(|s| s.attrs["gateway.attempt"].clone());
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for (a, (n, status, error)) in attempts.iter().zip([("1", "503", 2), ("2", "200", 0)]) {
        assert_eq!(a.parent, request.span_id, "a child of the request span");
        assert_eq!(a.attrs["gateway.attempt"], n);
        assert_eq!(a.attrs["gateway.endpoint"], "feed.read");
        assert_eq!(a.attrs["gateway.outcome"], "answered");
        assert_eq!(a.attrs["http.response.status_code"], status);
        assert_eq!(a.status, error, "a 503 is an error");
        assert!(request.start <= a.start && a.start <= a.end && a.end <= request.end);
    }

    // What reached Stream names each attempt's span, in order, with the caller's tracestate.
    let sent = received_on(&app, "/api/v1.0/feed/user/1/");
    assert_eq!(sent.len(), 2);
    for (r, a) in sent.iter().zip(&attempts) {
        let want = format!("00-{TRACE}-{}-01", a.span_id);
        assert_eq!(r.header("traceparent"), Some(want.as_str()));
        assert_eq!(r.header("tracestate"), Some(TRACESTATE));
    }
    wait_for_counter(&app, "gateway_otlp_spans_exported_total", 3.0).await;
}

#[tokio::test]
async fn a_trace_the_caller_does_not_sample_is_continued_but_not_exported() {
    let collector = Collector::start(StatusCode::OK).await;
    let app = spawn_with(exporting_to(&collector.url)).await;
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/2/", app.api))
                .header("traceparent", traceparent(unsampled, "00")),
        )
        .await;
    assert_eq!(r.status, 200);
    let sent = received_on(&app, "/api/v1.0/feed/user/2/");
    let tp = sent[0].header("traceparent").unwrap();
    assert!(
        tp.starts_with(&format!("00-{unsampled}-")) && tp.ends_with("-00"),
        "{tp}"
    );

    // A probe, a scrape and a sampled request after them: once the last one's spans are in,
    // the first request's and the probes' would be too.
    assert_eq!(
        app.send(app.client.get(format!("http://{}/healthz", app.addr)))
            .await
            .status,
        200
    );
    assert!(app.metric("gateway_otlp_spans_dropped_total").await == 0.0);
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/3/", app.api))
                .header("traceparent", traceparent(TRACE, "01")),
        )
        .await;
    assert_eq!(r.status, 200);
    collector.wait_for(2, TRACE).await;
    assert!(collector.wait_for(0, unsampled).await.is_empty());
    let spans = collector.spans.lock().unwrap().clone();
    assert!(
        spans.iter().all(|s| s.trace_id == TRACE),
        "no span for the unsampled request, /healthz or /metrics: {spans:#?}"
    );

    // Without a traceparent, a new trace, sampled since spans are exported.
    assert_eq!(app.get("/feed/user/4/").await.status, 200);
    let tp = received_on(&app, "/api/v1.0/feed/user/4/")[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(tp.ends_with("-01"), "{tp}");
    assert_eq!(collector.wait_for(2, &tp[3..35]).await.len(), 2);
}

/// A `traceparent` W3C's text calls invalid, or one the gateway would have to guess at.
const MALFORMED: &[&str] = &[
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "garbage",
];

#[tokio::test]
async fn a_malformed_traceparent_is_replaced_never_forwarded_and_its_tracestate_dropped() {
    let app = spawn_app().await;
    for (i, bad) in MALFORMED.iter().enumerate() {
        let r = app
            .send(
                app.client
                    .get(format!("{}/feed/user/{i}/", app.api))
                    .header("traceparent", *bad)
                    .header("tracestate", TRACESTATE),
            )
            .await;
        assert_eq!(r.status, 200, "{bad}");
        let sent = received_on(&app, &format!("/api/v1.0/feed/user/{i}/"));
        let tp = sent[0]
            .header("traceparent")
            .expect("a traceparent is sent");
        assert_ne!(tp, *bad);
        assert!(
            !tp.contains(TRACE) && !tp.contains(CALLER_SPAN),
            "{bad} -> {tp}"
        );
        assert_eq!(tp.len(), 55, "{tp}");
        assert!(tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
        assert!(
            tp.bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_lowercase()),
            "{tp}"
        );
        assert_eq!(sent[0].header("tracestate"), None, "{bad}");
    }
    // Two valid values: neither is trusted over the other.
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/twice/", app.api))
                .header("traceparent", traceparent(TRACE, "01"))
                .header("traceparent", traceparent(TRACE, "01")),
        )
        .await;
    assert_eq!(r.status, 200);
    let sent = received_on(&app, "/api/v1.0/feed/user/twice/");
    assert!(!sent[0].header("traceparent").unwrap().contains(TRACE));
    // A valid one is continued, with export off too.
    assert_eq!(
        app.send(
            app.client
                .get(format!("{}/feed/user/ok/", app.api))
                .header("traceparent", traceparent(TRACE, "01"))
        )
        .await
        .status,
        200
    );
    let tp = received_on(&app, "/api/v1.0/feed/user/ok/")[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert!(
        tp.starts_with(&format!("00-{TRACE}-")) && !tp.contains(CALLER_SPAN),
        "{tp}"
    );
}

#[tokio::test]
async fn a_collector_that_never_answers_slows_no_request() {
    // Accepts connections and never reads or answers them.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", hung.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = hung.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    let app = spawn_with(|f| {
        exporting_to(&url)(f)
            .merge(("telemetry.otlp_timeout_ms", 60_000))
            .merge(("telemetry.max_batch_spans", 1))
            .merge(("telemetry.max_queue_spans", 2))
    })
    .await;

    // An export that waited for this collector would hold a request for a minute.
    const BOUND: Duration = Duration::from_secs(2);
    for i in 0..20 {
        let t0 = Instant::now();
        let r = app.get(&format!("/feed/user/{i}/")).await;
        assert_eq!(r.status, 200);
        assert!(t0.elapsed() < BOUND, "request {i} took {:?}", t0.elapsed());
    }
    assert!(
        !held.lock().unwrap().is_empty(),
        "the exporter tried the collector"
    );
    // 40 spans, one stuck in the export, two in the queue: the rest were dropped and counted.
    wait_for_counter(&app, "gateway_otlp_spans_dropped_total", 30.0).await;
}

#[tokio::test]
async fn spans_a_collector_refuses_are_counted_as_failed() {
    let collector = Collector::start(StatusCode::SERVICE_UNAVAILABLE).await;
    let app = spawn_with(exporting_to(&collector.url)).await;
    assert_eq!(app.get("/feed/user/1/").await.status, 200);
    wait_for_counter(&app, "gateway_otlp_spans_failed_total", 2.0).await;
    assert_eq!(app.metric("gateway_otlp_spans_exported_total").await, 0.0);
}

#[tokio::test]
async fn spans_waiting_for_their_batch_are_sent_on_shutdown() {
    let collector = Collector::start(StatusCode::OK).await;
    // A batch that would wait a minute to fill: only the flush on shutdown sends it in time.
    let mut app = spawn_with(|f| {
        f.merge(("telemetry.otlp_endpoint", collector.url.as_str()))
            .merge(("telemetry.batch_delay_ms", 60_000))
    })
    .await;
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/1/", app.api))
                .header("traceparent", traceparent(TRACE, "01")),
        )
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        collector.spans.lock().unwrap().is_empty(),
        "nothing sent before the batch delay"
    );
    app.stop().await.unwrap();
    let spans = collector.wait_for(2, TRACE).await;
    assert_eq!(
        spans.len(),
        2,
        "the request's span and its attempt's: {spans:#?}"
    );
}
