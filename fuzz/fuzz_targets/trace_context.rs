//! Any `traceparent` and `tracestate` bytes: parsing never panics, the `traceparent` sent on
//! is always a valid version-00 one, the caller's trace is continued only when its value was
//! valid, and a `tracestate` passed on is a valid list within the limits.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stream_gateway::trace::context::{
    check_tracestate, parse_traceparent, MAX_TRACESTATE_BYTES, MAX_TRACESTATE_MEMBERS,
};
use stream_gateway::trace::Context;

fuzz_target!(|data: &[u8]| {
    let (tp, ts) = match data.iter().position(|&b| b == b'\n') {
        Some(n) => (&data[..n], &data[n + 1..]),
        None => (data, &data[..0]),
    };
    let parsed = parse_traceparent(tp);
    if let Some(n) = check_tracestate(ts) {
        assert!(n <= MAX_TRACESTATE_MEMBERS && ts.len() <= MAX_TRACESTATE_BYTES);
    }
    let mut headers = HeaderMap::new();
    let (Ok(tp_value), Ok(ts_value)) = (HeaderValue::from_bytes(tp), HeaderValue::from_bytes(ts))
    else {
        return;
    };
    headers.insert("traceparent", tp_value);
    headers.insert("tracestate", ts_value);
    let ctx = Context::from_headers(&headers, true);
    let sent = ctx.traceparent(ctx.span_id);
    let back = parse_traceparent(sent.as_bytes()).expect("the gateway's traceparent is valid");
    assert_eq!(back.trace_id, ctx.trace_id);
    match parsed {
        Some(p) => assert_eq!(p.trace_id, ctx.trace_id),
        None => assert!(ctx.parent.is_none() && ctx.tracestate.is_none()),
    }
    if let Some(state) = &ctx.tracestate {
        assert!(parsed.is_some());
        assert!(check_tracestate(state.as_bytes()).is_some_and(|n| n > 0));
    }
});
