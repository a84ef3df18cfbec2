//! Who may use the internal listener: services and operators, never a web page.
//!
//! A page in a browser on the gateway's host (or on its network) can send "simple" cross-site
//! writes to it, and through DNS rebinding read its answers. Browsers betray both: a rebound
//! request carries the attacker's name in `Host`, and a cross-site request carries `Origin`
//! and `Sec-Fetch-Site`, which services do not send. [`check`] refuses them before anything
//! is read or sent; it is a plain function so any request path can call it.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::error::ApiError;
pub(crate) use stream_wire::host::{host_name, Hosts};

/// Whether a request to the internal listener may go on: its `Host` names this gateway, and it
/// carries no sign of a browser (`Origin`, or `Sec-Fetch-Site` other than `none` or
/// `same-origin`) unless it is a `/tokens` request from an origin of its CORS policy
/// (`cors_origins`). `/healthz` and `/readyz` always pass: they say nothing and change nothing,
/// and a probe may name the host by any address.
pub(crate) fn check(
    hosts: &Hosts,
    cors_origins: &[HeaderValue],
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if matches!(path, "/healthz" | "/readyz") {
        return Ok(());
    }
    if let Some(host) = headers.get(header::HOST) {
        if !host.to_str().is_ok_and(|h| hosts.allow(h)) {
            return Err(ApiError::NotAllowed(
                "the Host header does not name this gateway; add the name to \
                 server.allowed_hosts"
                    .into(),
            ));
        }
    }
    let origin = headers.get(header::ORIGIN);
    if path == "/tokens" && origin.is_some_and(|o| cors_origins.contains(o)) {
        return Ok(());
    }
    let site = headers
        .get("sec-fetch-site")
        .is_some_and(|s| !matches!(s.as_bytes(), b"none" | b"same-origin"));
    if origin.is_some() || site {
        return Err(ApiError::NotAllowed(
            "requests from web pages are refused here (Origin, Sec-Fetch-Site); browsers \
             call /tokens from an origin in tokens.cors_origins, or the public listener"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(extra: &[&str]) -> Hosts {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Hosts::new(([10, 0, 0, 5], 8080).into(), Some(&extra))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_cross_site_request_is_refused_and_a_service_request_passes() {
        let h = hosts(&[]);
        let cors = [HeaderValue::from_static("https://app.example.com")];
        let path = "/api/v1.0/feed/user/1/";
        assert!(check(&h, &cors, path, &headers(&[("host", "localhost")])).is_ok());
        assert!(check(&h, &cors, path, &HeaderMap::new()).is_ok());
        for refused in [
            vec![("host", "evil.example")],
            vec![("host", "localhost"), ("origin", "https://evil.example")],
            vec![("host", "localhost"), ("origin", "null")],
            vec![("host", "localhost"), ("sec-fetch-site", "cross-site")],
            vec![("host", "localhost"), ("sec-fetch-site", "same-site")],
        ] {
            assert_eq!(
                check(&h, &cors, path, &headers(&refused))
                    .unwrap_err()
                    .parts()
                    .0,
                403,
                "{refused:?}"
            );
        }
        for passes in ["none", "same-origin"] {
            let hd = headers(&[("host", "localhost"), ("sec-fetch-site", passes)]);
            assert!(check(&h, &cors, path, &hd).is_ok());
        }
    }

    #[test]
    fn tokens_from_an_allowed_origin_pass_and_probes_always_pass() {
        let h = hosts(&[]);
        let cors = [HeaderValue::from_static("https://app.example.com")];
        let browser = headers(&[
            ("host", "localhost"),
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert!(check(&h, &cors, "/tokens", &browser).is_ok());
        assert!(check(&h, &cors, "/api/v1.0/feed/user/1/", &browser).is_err());
        let other = headers(&[("host", "localhost"), ("origin", "https://evil.example")]);
        assert!(check(&h, &cors, "/tokens", &other).is_err());
        let rebound = headers(&[("host", "evil.example"), ("origin", "https://evil.example")]);
        assert!(check(&h, &cors, "/metrics", &rebound).is_err());
        assert!(check(&h, &cors, "/healthz", &rebound).is_ok());
        assert!(check(&h, &cors, "/readyz", &rebound).is_ok());
    }
}
