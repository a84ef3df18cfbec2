//! Any webhook headers (`X-Api-Key`, `X-Signature`, `X-Webhook-Id`, `X-Webhook-Attempt`, one
//! a line): reading them never panics, a webhook passes only with the app's key and a
//! signature that is exactly 64 hex digits, and an id or attempt kept is well-formed.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stream_wire::webhook::{
    parse_attempt, parse_headers, parse_signature, parse_webhook_id, MAX_WEBHOOK_ID_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let names = ["x-api-key", "x-signature", "x-webhook-id", "x-webhook-attempt"];
    let mut headers = HeaderMap::new();
    for name in names {
        let Some(line) = lines.next() else { break };
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(name, v);
        }
    }
    for extra in lines {
        // Further lines repeat the signature: a second one is never taken.
        if let Ok(v) = HeaderValue::from_bytes(extra) {
            headers.append("x-signature", v);
        }
    }
    if let Ok(h) = parse_headers(&headers, "the-key") {
        assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
        assert_eq!(headers["x-api-key"], "the-key");
        assert_eq!(headers.get_all("x-signature").iter().count(), 1);
        let sig = headers["x-signature"].as_bytes().trim_ascii();
        let hex: String = h.signature.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.as_bytes(), sig.to_ascii_lowercase().as_slice());
        if let Some(id) = &h.id {
            assert!((1..=MAX_WEBHOOK_ID_BYTES).contains(&id.len()));
            assert!(HeaderValue::from_str(id).is_ok());
        }
        assert!(h.attempt.is_none_or(|n| n > 0));
    }
    if let Some(s) = parse_signature(data) {
        assert_eq!(data.trim_ascii().len(), 64);
        assert!(s.len() == 32);
    }
    if let Some(id) = parse_webhook_id(data) {
        assert_eq!(id.as_bytes(), data);
    }
    if let Some(n) = parse_attempt(data) {
        assert_eq!(n.to_string().trim_start_matches('0'), std::str::from_utf8(data).unwrap().trim_start_matches('0'));
    }
});
