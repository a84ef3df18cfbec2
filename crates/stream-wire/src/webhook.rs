//! Stream's webhook signature, and the reading of a webhook's headers, as pure functions.
//!
//! Stream signs the raw request body: `X-Signature` is the lower-case hex HMAC-SHA256 of the
//! body keyed with the app's API secret (the official SDKs' `verify_webhook(body, signature)`,
//! GetStream/getstream-go `VerifyWebhookSignature`). The body is compared as bytes, never
//! re-serialized; the signature is decoded (either case) and compared in constant time.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::auth::Secret;

/// `X-Signature`.
pub const X_SIGNATURE: &str = "x-signature";
/// `X-Api-Key`.
pub const X_API_KEY: &str = "x-api-key";
/// `X-Webhook-Id`: the same on every retry of one event.
pub const X_WEBHOOK_ID: &str = "x-webhook-id";
/// `X-Webhook-Attempt`: 1 for the first.
pub const X_WEBHOOK_ATTEMPT: &str = "x-webhook-attempt";
/// `X-Stream-Verified`: set to `1` by the gateway on what it forwards, stripped from what
/// arrives.
pub const X_STREAM_VERIFIED: &str = "x-stream-verified";

/// Longest webhook id kept (Stream's are UUIDs, 36 characters).
pub const MAX_WEBHOOK_ID_BYTES: usize = 128;

/// The hex HMAC-SHA256 of `body` under `secret`, as Stream puts it in `X-Signature`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn mac(secret: &Secret) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length")
}

/// Whether `signature` is `body`'s under `secret`, compared in constant time.
pub fn verify(secret: &Secret, body: &[u8], signature: &[u8; 32]) -> bool {
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

/// Why a webhook's headers are refused; [`Refusal::reason`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `X-Api-Key`, or another app's.
    ApiKey,
    /// No `X-Signature`.
    NoSignature,
    /// An `X-Signature` that is not 64 hex digits.
    MalformedSignature,
    /// A signature that is not the body's under the secret (nor the previous one in its grace).
    BadSignature,
    /// A body over `webhooks.max_body_bytes`.
    TooLarge,
    /// A gzip body (Stream's `enable_hook_payload_compression`): signed over the uncompressed
    /// bytes, which the gateway does not unpack.
    Compressed,
    /// The body could not be read (the connection failed, or it was not in within the timeout).
    Body,
    /// `server.max_concurrency` webhooks are in flight already (503).
    Overloaded,
}

impl Refusal {
    /// The `reason` label of `gateway_webhooks_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::ApiKey => "api_key",
            Refusal::NoSignature => "no_signature",
            Refusal::MalformedSignature => "malformed_signature",
            Refusal::BadSignature => "bad_signature",
            Refusal::TooLarge => "too_large",
            Refusal::Compressed => "compressed",
            Refusal::Body => "body",
            Refusal::Overloaded => "overloaded",
        }
    }

    /// The `detail` of the 401 (never quoting what was sent).
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::ApiKey => "webhook refused: X-Api-Key is missing or is not this app's key",
            Refusal::NoSignature => "webhook refused: X-Signature is missing",
            Refusal::MalformedSignature => {
                "webhook refused: X-Signature is not a hex HMAC-SHA256 (64 hex digits)"
            }
            Refusal::BadSignature => {
                "webhook refused: X-Signature does not match the body under the app's secret"
            }
            Refusal::TooLarge => "webhook refused: the body is larger than webhooks.max_body_bytes",
            Refusal::Compressed => {
                "webhook refused: the body is gzip-compressed; turn off webhook payload \
                 compression for this app (the gateway verifies uncompressed bodies only)"
            }
            Refusal::Body => "webhook refused: the body could not be read in time",
            Refusal::Overloaded => {
                "webhook refused: more than server.max_concurrency webhooks in flight; retry later"
            }
        }
    }
}

/// What a webhook's headers say, read before its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// The signature, decoded.
    pub signature: [u8; 32],
    /// `X-Webhook-Id`, when it is 1 to 128 of `[A-Za-z0-9._:-]` (else none: not deduplicated,
    /// not forwarded, not logged).
    pub id: Option<String>,
    /// `X-Webhook-Attempt`, when it is a number from 1.
    pub attempt: Option<u32>,
}

/// Reads a webhook's headers: `X-Api-Key` must be `api_key` exactly, `X-Signature` present
/// (once) and 64 hex digits.
pub fn parse_headers(headers: &HeaderMap, api_key: &str) -> Result<Headers, Refusal> {
    let mut keys = headers.get_all(X_API_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(k), None) if k.as_bytes() == api_key.as_bytes() => {}
        _ => return Err(Refusal::ApiKey),
    }
    let mut sigs = headers.get_all(X_SIGNATURE).iter();
    let signature = match (sigs.next(), sigs.next()) {
        (None, _) => return Err(Refusal::NoSignature),
        (Some(s), None) => parse_signature(s.as_bytes()).ok_or(Refusal::MalformedSignature)?,
        (Some(_), Some(_)) => return Err(Refusal::MalformedSignature),
    };
    let id = headers
        .get(X_WEBHOOK_ID)
        .and_then(|v| parse_webhook_id(v.as_bytes()))
        .map(str::to_owned);
    let attempt = headers
        .get(X_WEBHOOK_ATTEMPT)
        .and_then(|v| parse_attempt(v.as_bytes()));
    Ok(Headers {
        signature,
        id,
        attempt,
    })
}

/// 64 hex digits (either case, surrounding spaces ignored) as the 32 bytes they encode.
pub fn parse_signature(v: &[u8]) -> Option<[u8; 32]> {
    let v = v.trim_ascii();
    if v.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in v.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A webhook id as kept: 1 to 128 of `[A-Za-z0-9._:-]`.
pub fn parse_webhook_id(v: &[u8]) -> Option<&str> {
    let ok = (1..=MAX_WEBHOOK_ID_BYTES).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(b));
    ok.then(|| std::str::from_utf8(v).ok()).flatten()
}

/// An attempt number: 1 to 9 decimal digits, not 0.
pub fn parse_attempt(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok().filter(|n| *n > 0)
}

/// Whether a body is gzip (its magic bytes; a JSON body never starts with 0x1f).
pub fn is_gzip(body: &[u8]) -> bool {
    body.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const SIG: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn a_signature_is_64_hex_digits_in_either_case() {
        let lower = parse_signature(SIG.as_bytes()).unwrap();
        assert_eq!(lower[0], 0xaa);
        assert_eq!(parse_signature(SIG.to_uppercase().as_bytes()), Some(lower));
        assert_eq!(parse_signature(format!(" {SIG} ").as_bytes()), Some(lower));
        for bad in [
            &SIG[..63],
            &format!("{SIG}0"),
            &SIG.replace('a', "g"),
            "",
            "sha256=aa",
        ] {
            assert_eq!(parse_signature(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn headers_need_this_apps_key_once_and_one_signature() {
        let ok = parse_headers(
            &headers(&[
                ("x-api-key", "key"),
                ("x-signature", SIG),
                ("x-webhook-id", "4f1c-9a"),
                ("x-webhook-attempt", "2"),
            ]),
            "key",
        )
        .unwrap();
        assert_eq!(ok.id.as_deref(), Some("4f1c-9a"));
        assert_eq!(ok.attempt, Some(2));
        let refused = |pairs: &[(&str, &str)]| parse_headers(&headers(pairs), "key").unwrap_err();
        assert_eq!(refused(&[("x-signature", SIG)]), Refusal::ApiKey);
        assert_eq!(
            refused(&[("x-api-key", "other"), ("x-signature", SIG)]),
            Refusal::ApiKey
        );
        assert_eq!(
            refused(&[
                ("x-api-key", "key"),
                ("x-api-key", "key"),
                ("x-signature", SIG)
            ]),
            Refusal::ApiKey
        );
        assert_eq!(refused(&[("x-api-key", "key")]), Refusal::NoSignature);
        assert_eq!(
            refused(&[("x-api-key", "key"), ("x-signature", "nothex")]),
            Refusal::MalformedSignature
        );
        assert_eq!(
            refused(&[
                ("x-api-key", "key"),
                ("x-signature", SIG),
                ("x-signature", SIG)
            ]),
            Refusal::MalformedSignature
        );
    }

    #[test]
    fn an_odd_webhook_id_or_attempt_is_dropped_not_refused() {
        let h = parse_headers(
            &headers(&[
                ("x-api-key", "key"),
                ("x-signature", SIG),
                ("x-webhook-id", "has space"),
                ("x-webhook-attempt", "0"),
            ]),
            "key",
        )
        .unwrap();
        assert_eq!((h.id, h.attempt), (None, None));
        for bad in ["", "-1", "1x", "9999999999"] {
            assert_eq!(parse_attempt(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_attempt(b"3"), Some(3));
        assert_eq!(parse_webhook_id(&[b'a'; 129]), None);
    }

    #[test]
    fn signatures_match_the_known_answers_computed_with_pythons_hmac() {
        let text = include_str!("../tests/vectors/webhook-vectors.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors = v["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 5);
        for case in vectors {
            let secret = Secret::new(case["secret"].as_str().unwrap());
            let body = case["body"].as_str().unwrap().as_bytes();
            let want = case["signature"].as_str().unwrap();
            assert_eq!(sign(&secret, body), want);
            assert!(verify(
                &secret,
                body,
                &parse_signature(want.as_bytes()).unwrap()
            ));
        }
    }

    #[test]
    fn signing_and_verifying_agree_and_any_change_breaks_the_signature() {
        let secret = Secret::new("s3cr3t");
        let sig = sign(&secret, b"{\"type\":\"message.new\"}");
        let bytes = parse_signature(sig.as_bytes()).unwrap();
        assert!(verify(&secret, b"{\"type\":\"message.new\"}", &bytes));
        assert!(!verify(&secret, b"{\"type\":\"message.new\"} ", &bytes));
        assert!(!verify(
            &Secret::new("other"),
            b"{\"type\":\"message.new\"}",
            &bytes
        ));
    }

    #[test]
    fn every_refusal_has_a_distinct_reason_and_a_detail_naming_it() {
        let all = [
            Refusal::ApiKey,
            Refusal::NoSignature,
            Refusal::MalformedSignature,
            Refusal::BadSignature,
            Refusal::TooLarge,
            Refusal::Compressed,
            Refusal::Body,
            Refusal::Overloaded,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(|r| r.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        assert!(all
            .iter()
            .all(|r| r.detail().starts_with("webhook refused: ")));
        assert!(is_gzip(&[0x1f, 0x8b, 8]) && !is_gzip(b"{}"));
    }
}
