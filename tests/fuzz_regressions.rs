//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz`) found, kept as tests so they stay fixed.

use stream_wire::{query, route, Method};

/// Exactly one `api_key` goes upstream, the gateway's, whatever the query holds.
fn one_api_key(method: Method, target: &str) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let r = route(method, path).expect("routes");
    let Ok(pairs) = query::check(r.endpoint, Some(q)) else {
        return;
    };
    let forwarded = query::forward_string(&pairs, "key");
    let keys: Vec<_> = form_urlencoded::parse(forwarded.as_bytes())
        .filter(|(k, _)| k.eq_ignore_ascii_case("api_key"))
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(keys, vec!["key".to_owned()], "{forwarded}");
}

/// route_and_query, crash-168810ca: a query key that merely ends in `api_key` (after control
/// bytes) is another parameter, forwarded encoded; the target's first check counted substrings.
#[test]
fn a_key_ending_in_api_key_is_not_a_second_api_key() {
    one_api_key(
        Method::Post,
        "/api/v1.0/follow_many/?activ\u{8}\0\0\0\0\0\0\0_l\0\0\0\0\0\0\0\0api_key=x",
    );
    one_api_key(
        Method::Get,
        "/api/v1.0/feed/user/1/?api_key=a&API_KEY=b&xapi_key=c",
    );
}

/// upstream_response: an `X-Ratelimit-Reset` too large for the clock panicked the request
/// (`UNIX_EPOCH + Duration` overflowed). Now it says nothing, so the 429 goes back at once.
#[test]
fn a_huge_rate_limit_reset_is_ignored_not_a_panic() {
    use std::time::{Duration, UNIX_EPOCH};
    use stream_gateway::upstream::retry::retry_wait;
    let now = UNIX_EPOCH + Duration::from_secs(1_795_800_000);
    assert_eq!(retry_wait(None, Some("18446744073709551615"), now), None);
    // The value the fuzzer found.
    assert_eq!(retry_wait(None, Some("14886589259623781718"), now), None);
    // Far but representable: a wait no deadline covers, so the 429 goes back at once.
    let far = retry_wait(Some("soon"), Some("99999999999999999"), now).unwrap();
    assert!(far > Duration::from_secs(365 * 24 * 3600));
    assert_eq!(
        retry_wait(None, Some("1795800060"), now),
        Some(Duration::from_secs(60))
    );
}
