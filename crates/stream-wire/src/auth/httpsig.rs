//! HTTP Signatures (draft-cavage), Stream's "application authentication" for batch calls:
//! HMAC-SHA256 with the API secret over `(request-target)` and `date`, keyed by the API key.

use std::time::SystemTime;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Secret;

/// The headers the gateway signs, in order.
pub const SIGNED_HEADERS: &str = "(request-target) date";

/// A `Date` header value for `now`: RFC 1123, GMT.
pub fn http_date(now: SystemTime) -> String {
    httpdate::fmt_http_date(now)
}

/// The signing string over `(request-target)` and `date`; `target` is the path with its query.
pub fn signing_string(method: &str, target: &str, date: &str) -> String {
    format!(
        "(request-target): {} {target}\ndate: {date}",
        method.to_ascii_lowercase()
    )
}

/// Base64 (standard, padded) HMAC-SHA256 of `message` with the secret.
pub fn signature(secret: &Secret, message: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value for a request, in stream-php's parameter order.
pub fn authorization(
    api_key: &str,
    secret: &Secret,
    method: &str,
    target: &str,
    date: &str,
) -> String {
    let sig = signature(secret, &signing_string(method, target, date));
    format!(
        "Signature keyId=\"{api_key}\",algorithm=\"hmac-sha256\",headers=\"{SIGNED_HEADERS}\",signature=\"{sig}\""
    )
}

/// The parameters of a `Signature ...` authorization value, in any order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// `keyId`.
    pub key_id: String,
    pub algorithm: String,
    /// `headers`, split on spaces; `["date"]` when absent, as the draft says.
    pub headers: Vec<String>,
    pub signature: String,
}

/// Parses an `Authorization` value of the form `Signature k="v",...`; `None` when it is not one.
pub fn parse(value: &str) -> Option<Params> {
    let rest = value.strip_prefix("Signature ")?;
    let mut p = Params::default();
    let mut headers = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.strip_prefix('"')?.strip_suffix('"')?;
        match k {
            "keyId" => p.key_id = v.to_owned(),
            "algorithm" => p.algorithm = v.to_owned(),
            "headers" => headers = Some(v.split(' ').map(str::to_owned).collect()),
            "signature" => p.signature = v.to_owned(),
            _ => {}
        }
    }
    p.headers = headers.unwrap_or_else(|| vec!["date".to_owned()]);
    (!p.key_id.is_empty() && !p.signature.is_empty()).then_some(p)
}

/// Constant-time comparison of a received signature with the expected one.
pub fn verify(secret: &Secret, message: &str, received_b64: &str) -> bool {
    let Ok(received) = base64::engine::general_purpose::STANDARD.decode(received_b64) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    mac.verify_slice(&received).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::time::{Duration, UNIX_EPOCH};

    fn vectors() -> Value {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/auth-vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn signatures_match_the_known_answers() {
        let v = vectors();
        let key = v["api_key"].as_str().unwrap();
        let secret = Secret::new(v["api_secret"].as_str().unwrap());
        for case in v["http_signatures"].as_array().unwrap() {
            let s = |k: &str| case[k].as_str().unwrap();
            let message = s("signing_string");
            assert_eq!(signature(&secret, message), s("signature"));
            assert!(verify(&secret, message, s("signature")));
            assert!(!verify(&Secret::new("other"), message, s("signature")));
            let parsed = parse(s("authorization")).unwrap();
            assert_eq!(parsed.key_id, key);
            assert_eq!(parsed.signature, s("signature"));
            let signed: Vec<String> =
                serde_json::from_value(case["signed_headers"].clone()).unwrap();
            assert_eq!(parsed.headers, signed);
            if signed.len() == 2 {
                assert_eq!(
                    signing_string(s("method"), s("request_target"), s("date")),
                    message
                );
                assert_eq!(
                    authorization(key, &secret, s("method"), s("request_target"), s("date")),
                    s("authorization")
                );
            }
        }
    }

    #[test]
    fn parameters_parse_in_any_order_and_headers_default_to_date() {
        let p = parse(r#"Signature signature="c2ln",algorithm="hmac-sha256",keyId="k""#).unwrap();
        assert_eq!(p.key_id, "k");
        assert_eq!(p.headers, vec!["date"]);
        assert!(parse("Bearer x").is_none());
        assert!(parse(r#"Signature keyId="k""#).is_none());
    }

    #[test]
    fn the_date_header_is_rfc1123_gmt() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_773_600);
        assert_eq!(http_date(t), "Fri, 27 Nov 2026 10:00:00 GMT");
    }
}
