//! The console: `GET /_emulator/` serves one page (HTML, CSS and a little JavaScript, in the
//! binary) that shows the store, the analytics events and the request log, polling
//! `GET /_emulator/export` and `GET /_emulator/log`.
//!
//! The log shows each request's credential decoded: a JWT's header and claims (never its
//! signature), or an HTTP Signature's `keyId`, algorithm and signed headers (never the
//! signature). No secret is ever in it: the emulator never shows one.
//!
//! [`same_origin`] keeps web pages from changing the emulator: every admin request other than
//! a read is refused (403) when it comes from another site.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use super::reply::stream_error;
use super::requests::Received;
use super::state::EmulatorState;
use stream_wire::host::{host_name, Hosts};

/// The page, served as is.
const PAGE: &str = include_str!("console.html");

/// `GET /_emulator/`: the console. It may not be framed, and runs only its own script.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; \
                 script-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /_emulator/export`: the whole state as one document (format in docs/emulator.md).
pub async fn export(State(st): State<Arc<EmulatorState>>) -> Json<Value> {
    Json(st.export())
}

/// `GET /_emulator/log`: the request log as the console shows it, oldest first: `seq`, `at`,
/// `method`, `target`, `status` and `credential` (see [`credential`]); no header or body.
pub async fn log(State(st): State<Arc<EmulatorState>>) -> Json<Value> {
    let entries: Vec<Value> = st
        .received()
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "at": r.at,
                "method": r.method,
                "target": r.target,
                "status": r.status,
                "credential": credential(r),
            })
        })
        .collect();
    Json(json!({ "requests": entries }))
}

/// A request's credential, decoded, without any signature: `{"kind": "jwt", "header",
/// "claims"}`, `{"kind": "signature", "key_id", "algorithm", "headers"}`, `{"kind": "none"}`,
/// or `{"kind": "unreadable"}` for an `Authorization` that is neither.
pub fn credential(r: &Received) -> Value {
    let Some(auth) = r.header("authorization").map(str::trim) else {
        return json!({ "kind": "none" });
    };
    if let Some(params) = auth.strip_prefix("Signature ") {
        let param = |name: &str| {
            params.split(',').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_owned())
            })
        };
        return json!({
            "kind": "signature",
            "key_id": param("keyId"),
            "algorithm": param("algorithm"),
            "headers": param("headers"),
        });
    }
    let token = auth.strip_prefix("Bearer ").unwrap_or(auth);
    let mut parts = token.split('.');
    let decode = |part: Option<&str>| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part?.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
    };
    match (decode(parts.next()), decode(parts.next())) {
        (Some(header), Some(claims)) => {
            json!({ "kind": "jwt", "header": header, "claims": claims })
        }
        _ => json!({ "kind": "unreadable" }),
    }
}

/// Refuses (403, Stream's error shape) an admin request that a web page of another site could
/// have sent:
///
/// - any, reads included, whose `Host` does not name this machine (a loopback address,
///   `localhost` or its hostname): a page that rebinds its own name to the emulator's address
///   (DNS rebinding) could otherwise read the request log;
/// - one that changes something (all but `GET` and `HEAD`) with `Sec-Fetch-Site` other than
///   `none` or `same-origin`, or an `Origin` other than the emulator's own (`http://` and the
///   `Host` it was reached by).
///
/// Reads from another site's page pass: without CORS headers a browser does not let it read
/// the answer. Services and curl send none of these headers, or a local `Host`.
pub async fn same_origin(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let refused = if !local_host(headers.get(header::HOST)) {
        "emulator: the Host header does not name this machine (a loopback address, localhost \
         or its hostname); the emulator's admin routes and console answer only those"
    } else if !matches!(*req.method(), Method::GET | Method::HEAD) && cross_site(headers) {
        "emulator: requests from another site's web page may not change the emulator \
         (Origin, Sec-Fetch-Site); use its console at /_emulator/ or call it from a service"
    } else {
        return next.run(req).await;
    };
    stream_error(403, 17, "NotAllowedException", refused).into_response()
}

/// This machine's names: loopback addresses, `localhost`, its hostname (read once).
static LOCAL: std::sync::LazyLock<Hosts> =
    std::sync::LazyLock::new(|| Hosts::new(([127, 0, 0, 1], 0).into(), Some(&[])));

/// Whether a request's `Host` (absent: HTTP/1.0) names this machine.
fn local_host(host: Option<&HeaderValue>) -> bool {
    host.is_none_or(|h| h.to_str().is_ok_and(|h| LOCAL.allow(h)))
}

/// Whether the headers show a request sent by another site's page.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|s| !matches!(s.as_bytes(), b"none" | b"same-origin"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    !is_own_origin(origin, headers.get(header::HOST))
}

fn is_own_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    origin.strip_prefix("http://") == Some(host)
        && host_name(host).is_some()
        && local_host(Some(
            &HeaderValue::from_str(host).expect("was a header value"),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(auth: Option<&str>) -> Received {
        Received {
            method: "GET".into(),
            target: "/".into(),
            headers: auth
                .map(|a| vec![("authorization".to_owned(), a.to_owned())])
                .unwrap_or_default(),
            body: String::new(),
            seq: 1,
            at: String::new(),
            status: None,
        }
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_jwt_is_shown_as_its_header_and_claims_without_its_signature() {
        let claims = json!({"resource": "feed", "action": "write", "feed_id": "user42"});
        let token = format!(
            "{}.{}.SIGNATUREPART",
            b64(&json!({"alg": "HS256"})),
            b64(&claims)
        );
        let c = credential(&received(Some(&token)));
        assert_eq!(
            c,
            json!({"kind": "jwt", "header": {"alg": "HS256"}, "claims": claims})
        );
        assert!(!c.to_string().contains("SIGNATUREPART"));
    }

    #[test]
    fn an_http_signature_is_shown_as_its_key_id_algorithm_and_headers_only() {
        let auth = r#"Signature keyId="key",algorithm="hmac-sha256",headers="(request-target) date",signature="SIGPART""#;
        let c = credential(&received(Some(auth)));
        assert_eq!(
            c,
            json!({"kind": "signature", "key_id": "key", "algorithm": "hmac-sha256",
                   "headers": "(request-target) date"})
        );
    }

    #[test]
    fn no_or_an_unreadable_credential_is_said_so() {
        assert_eq!(credential(&received(None))["kind"], "none");
        assert_eq!(credential(&received(Some("a.b.c")))["kind"], "unreadable");
        assert_eq!(credential(&received(Some("garbage")))["kind"], "unreadable");
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
    fn only_the_emulators_own_origin_and_same_origin_fetches_count_as_its_own() {
        let own = [
            headers(&[("host", "127.0.0.1:9000")]),
            headers(&[
                ("host", "127.0.0.1:9000"),
                ("origin", "http://127.0.0.1:9000"),
            ]),
            headers(&[
                ("host", "localhost:9000"),
                ("origin", "http://localhost:9000"),
            ]),
            headers(&[("host", "[::1]:9000"), ("origin", "http://[::1]:9000")]),
            headers(&[("sec-fetch-site", "same-origin"), ("host", "127.0.0.1:1")]),
            headers(&[("sec-fetch-site", "none")]),
        ];
        for h in &own {
            assert!(!cross_site(h), "{h:?}");
        }
        let foreign = [
            headers(&[
                ("host", "127.0.0.1:9000"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:9000"),
                ("origin", "http://127.0.0.1:9001"),
            ]),
            headers(&[("host", "127.0.0.1:9000"), ("origin", "null")]),
            // A page that rebinds its own name to the emulator's address.
            headers(&[
                ("host", "evil.example:9000"),
                ("origin", "http://evil.example:9000"),
            ]),
            headers(&[("origin", "http://127.0.0.1:9000")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
        ];
        for h in &foreign {
            assert!(cross_site(h), "{h:?}");
        }
    }

    #[test]
    fn only_this_machines_names_are_local_hosts() {
        for h in [
            "127.0.0.1:9000",
            "localhost:9000",
            "[::1]:9000",
            "127.0.0.2",
            "LOCALHOST",
        ] {
            assert!(local_host(Some(&HeaderValue::from_static(h))), "{h}");
        }
        assert!(local_host(None), "HTTP/1.0 sends no Host");
        for h in [
            "evil.example:9000",
            "10.0.0.5:9000",
            "localhost.evil.example",
            "a b",
        ] {
            assert!(!local_host(Some(&HeaderValue::from_static(h))), "{h}");
        }
    }
}
