//! Micro-benchmarks of the request path's own work: `cargo bench --bench request_path`.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use stream_gateway::trace::{Context, SpanId};
use stream_wire::auth::jwt::{encode, Claims, TokenCache};
use stream_wire::auth::{httpsig, Secret};
use stream_wire::{body, query, route, Method};

fn request_path(c: &mut Criterion) {
    c.bench_function("parse+validate GET feed/user/42/?limit=5", |b| {
        b.iter(|| {
            let r = route(Method::Get, black_box("/api/v1.0/feed/user/42/")).unwrap();
            let q = query::check(r.endpoint, Some(black_box("limit=5"))).unwrap();
            black_box((r.scope(), query::forward_string(&q, "key")))
        })
    });
    let activity = br#"{"actor":"user:42","verb":"post","object":"post:1","foreign_id":"post:1","time":"2026-11-27T10:00:00"}"#;
    c.bench_function("parse+validate POST feed/user/42/ (activity body)", |b| {
        b.iter(|| {
            let r = route(Method::Post, black_box("/api/v1.0/feed/user/42/")).unwrap();
            black_box((
                r.scope(),
                body::check(r.endpoint.body, black_box(activity)).unwrap(),
            ))
        })
    });
    let secret = Secret::new("bench-secret-0123456789abcdef");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cache = TokenCache::new(secret.clone(), 3600);
    let scope = route(Method::Get, "/api/v1.0/feed/user/42/")
        .unwrap()
        .scope();
    cache.get(&scope, now);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    c.bench_function(
        "trace context from a traceparent + one attempt's header",
        |b| {
            b.iter(|| {
                let ctx = Context::from_headers(black_box(&headers), false);
                black_box(ctx.traceparent(SpanId::random()))
            })
        },
    );
    let none = http::HeaderMap::new();
    c.bench_function("trace context, new trace + one attempt's header", |b| {
        b.iter(|| {
            let ctx = Context::from_headers(black_box(&none), false);
            black_box(ctx.traceparent(SpanId::random()))
        })
    });
    c.bench_function("token from cache", |b| {
        b.iter(|| black_box(cache.get(black_box(&scope), now)))
    });
    let claims = Claims::for_scope(&scope, Some(now + 3600));
    c.bench_function("token minted (HS256)", |b| {
        b.iter(|| black_box(encode(black_box(&claims), &secret)))
    });
    let date = httpsig::http_date(SystemTime::now());
    c.bench_function("HTTP Signature", |b| {
        b.iter(|| {
            black_box(httpsig::authorization(
                "key",
                &secret,
                "POST",
                black_box("/api/v1.0/follow_many/?activity_copy_limit=10&api_key=key"),
                &date,
            ))
        })
    });
}

/// The caller policy's cost per request: none configured, and a caller with an allow list
/// and a bucket that never runs dry.
fn callers(c: &mut Criterion) {
    use futures_util::FutureExt;
    use stream_gateway::callers::{Callers, CallersFile, Settings};
    use stream_gateway::recorder::Metrics;
    use stream_wire::endpoint::{Endpoint, EndpointId};

    let feed = Endpoint::get(EndpointId::FeedRead);
    let metrics = std::sync::Arc::new(Metrics::new());
    let mut headers = http::HeaderMap::new();
    headers.insert("x-caller", http::HeaderValue::from_static("indexer"));
    let peer = Some(([10, 1, 0, 7], 40000).into());
    let off = Callers::new(None, metrics.clone());
    c.bench_function("callers: admit without [callers]", |b| {
        b.iter(|| black_box(off.admit(&headers, peer, feed).now_or_never()))
    });
    let mut file = CallersFile {
        identity_header: Some("X-Caller".into()),
        ..Default::default()
    };
    let indexer = stream_gateway::callers::settings::ServiceFile {
        allow: Some(vec!["feed.read".into(), "reactions.*".into()]),
        rate: Some(1e12),
        cidrs: vec!["10.1.0.0/16".into()],
        ..Default::default()
    };
    file.service.insert("indexer".into(), indexer);
    let on = Callers::new(Some(&Settings::validate(file).unwrap()), metrics);
    c.bench_function("callers: admit by header, allow list and bucket", |b| {
        b.iter(|| black_box(on.admit(&headers, peer, feed).now_or_never()))
    });
}

criterion_group!(benches, request_path, callers);
criterion_main!(benches);
