//! Stream refusing the gateway's own signature: the API secret is wrong (or was rotated at
//! Stream and not here). Every call then fails with 403 while `/readyz` stays 200, so the
//! gateway says it once per episode at `error` and counts every such answer in
//! `gateway_upstream_auth_failures_total`; an accepted call ends the episode.

use std::sync::atomic::{AtomicBool, Ordering};

use metrics::Counter;

use crate::recorder::Metrics;

/// Whether Stream's answer (`status`, error `body`) says the gateway's credential was signed
/// with the wrong secret: `signature is invalid` for a JWT (403, code 17; on the v2 family
/// `signature is not valid` in its `message`, 401 code 43) or a
/// `SignatureException` for an HTTP Signature (401, code 3). A permission refusal (a scope
/// that does not cover the call) is not one: the secret was right.
pub(crate) fn is_signature_refusal(status: u16, body: &[u8]) -> bool {
    if !matches!(status, 401 | 403) {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    // v1.0 says it in `detail`; the v2 family in `message` ("JWTAuth error: signature is not
    // valid. Make sure the token is created using the secret for API key ...", code 43).
    let says = |field: &str| {
        v[field].as_str().is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("signature is invalid") || t.contains("signature is not valid")
        })
    };
    says("detail") || says("message") || v["exception"] == "SignatureException"
}

/// The episode of wrong-secret answers, and their count.
#[derive(Debug)]
pub(crate) struct AuthFailures {
    failing: AtomicBool,
    count: Counter,
}

impl AuthFailures {
    /// Registers `gateway_upstream_auth_failures_total` at 0, so an alert on its rate sees a
    /// series before the first failure.
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Self {
            failing: AtomicBool::new(false),
            count: metrics.counter("gateway_upstream_auth_failures_total", &[]),
        }
    }

    /// Stream refused the gateway's signature on `endpoint`.
    pub(crate) fn refused(&self, endpoint: &str, detail: &str) {
        self.count.increment(1);
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                endpoint,
                detail,
                "Stream refuses the gateway's signature: the API secret is wrong or was \
                 rotated at Stream only (check STREAM_API_SECRET_FILE or STREAM_API_SECRET, \
                 and STREAM_API_KEY); every call fails until it is fixed, while /readyz \
                 stays 200. Logged once until a call succeeds; counted in \
                 gateway_upstream_auth_failures_total"
            );
        }
    }

    /// A new secret is in force: whatever Stream said of the old one, a refusal of the new one
    /// is a new episode, logged again.
    pub(crate) fn new_secret(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    /// Stream accepted a call: a wrong-secret episode, if one was going on, is over.
    pub(crate) fn accepted(&self) {
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("Stream accepts the gateway's signature again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_jwt_or_http_signature_is_a_signature_refusal_and_a_scope_refusal_is_not() {
        let jwt = br#"{"detail":"signature is invalid","status_code":403,"code":17,"exception":"NotAllowedException"}"#;
        assert!(is_signature_refusal(403, jwt));
        let sig = br#"{"detail":"signature is invalid","status_code":401,"code":3,"exception":"SignatureException"}"#;
        assert!(is_signature_refusal(401, sig));
        let scope = br#"{"detail":"You do not have permission to perform this action.","status_code":403,"code":17,"exception":"NotAllowedException"}"#;
        assert!(!is_signature_refusal(403, scope));
        assert!(!is_signature_refusal(200, jwt));
        assert!(!is_signature_refusal(403, b"<html>forbidden</html>"));
        let v2 = br#"{"code":43,"message":"JWTAuth error: signature is not valid. Make sure the token is created using the secret for API key k","StatusCode":401}"#;
        assert!(is_signature_refusal(401, v2));
        let v2_other = br#"{"code":17,"message":"User 'x' with role 'user' is not allowed to perform action ReadChannel","StatusCode":403}"#;
        assert!(!is_signature_refusal(403, v2_other));
    }

    #[test]
    fn an_episode_is_logged_once_and_counted_every_time_until_a_call_succeeds() {
        let metrics = Metrics::new();
        let watch = AuthFailures::new(&metrics);
        let count = || {
            metrics.render().lines().find_map(|l| {
                l.strip_prefix("gateway_upstream_auth_failures_total ")?
                    .parse::<u64>()
                    .ok()
            })
        };
        assert_eq!(
            count(),
            Some(0),
            "the series exists before the first failure"
        );
        watch.refused("feed.read", "signature is invalid");
        assert!(watch.failing.load(Ordering::Relaxed));
        watch.refused("feed.read", "signature is invalid");
        assert_eq!(count(), Some(2));
        watch.accepted();
        assert!(!watch.failing.load(Ordering::Relaxed));
        watch.accepted();
        assert!(!watch.failing.load(Ordering::Relaxed));
        // A rotation starts over: a refusal of the new secret is said again.
        watch.refused("feed.read", "signature is invalid");
        watch.new_secret();
        assert!(!watch.failing.load(Ordering::Relaxed));
    }
}
