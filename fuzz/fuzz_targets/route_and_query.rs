//! Any method, path and query: routing and the query check never panic; a routed path gets
//! exactly its row's resource and action, `*` only where the row says, a path under its own
//! feed, and its canonical path routes again to the same row and scope. The same bytes as a
//! caller's `x-request-id`: kept only when they match `[A-Za-z0-9._:-]{1,128}`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_wire::endpoint::FeedScope;
use stream_wire::{query, route, FeedClaim, Method};
use stream_gateway::telemetry::screen_request_id;

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    if let Ok(id) = http::HeaderValue::from_bytes(rest) {
        let mut req = http::Request::new(());
        req.headers_mut().insert("x-request-id", id);
        if let Some(kept) = screen_request_id(req).headers().get("x-request-id") {
            let kept = kept.as_bytes();
            assert!((1..=128).contains(&kept.len()), "{kept:?}");
            assert!(
                kept.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b)),
                "{kept:?}"
            );
        }
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let method = Method::parse(METHODS[usize::from(m) % METHODS.len()]);
    let (path, q) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    let Ok(r) = route(method, path) else {
        return;
    };
    let scope = r.scope();
    assert_eq!(scope.resource, r.endpoint.resource);
    assert_eq!(scope.action, r.endpoint.action);
    assert_eq!(r.endpoint.method, method);
    match r.endpoint.feed_scope {
        FeedScope::PathFeed => {
            let feed = r.feed.clone().expect("a feed row has a path feed");
            assert_eq!(scope.feed, FeedClaim::One(feed.claim()));
            assert!(r.path.contains(&format!("/{}/", feed.path())));
        }
        FeedScope::All => assert_eq!(scope.feed, FeedClaim::All),
    }
    assert!(r.path.starts_with(r.endpoint.host.prefix()) && r.path.ends_with('/'));
    assert!(!r.path.contains("/../") && !r.path.contains("/./"));
    let again = route(method, &r.path).expect("the canonical path routes");
    assert_eq!(again.endpoint.id, r.endpoint.id);
    assert_eq!(again.scope(), scope);
    assert_eq!(again.path, r.path);
    if let Ok(pairs) = query::check(r.endpoint, q) {
        // Exactly one api_key upstream, the gateway's, whatever the caller's query held.
        let forwarded = query::forward_string(&pairs, "key");
        let keys: Vec<_> = form_urlencoded::parse(forwarded.as_bytes())
            .filter(|(k, _)| k.eq_ignore_ascii_case("api_key"))
            .collect();
        assert_eq!(keys.len(), 1, "{forwarded}");
        assert_eq!(keys[0].1, "key");
    }
});
