//! The middleware in front of Stream's routes: every request is logged ([`super::requests`]),
//! then meets the first matching fault ([`super::faults`]), else Stream's rate limit, else its
//! route. What the route answers carries Stream's rate-limit headers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::faults::{Fault, WindowState};
use super::reply::stream_error;
use super::requests::Received;
use super::state::EmulatorState;

/// The largest body the log keeps (and the route is then given).
const MAX_BODY: usize = 64 << 20;

/// Logs the request, applies a matching fault, else serves it within the rate limit.
pub async fn faults_and_log(
    State(st): State<Arc<EmulatorState>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let seq = st.record(received(&parts, &bytes));
    if let Some(f) = st.take_fault(&parts.method, parts.uri.path()) {
        if let Some(ms) = f.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if f.drop {
            // Never answered: the log keeps its status `null`.
            return dropped();
        }
        if let Some(resp) = injected(&f) {
            st.answered(seq, resp.status().as_u16());
            return resp;
        }
    }
    let resp = within_rate_limit(&st, parts, bytes, next).await;
    st.answered(seq, resp.status().as_u16());
    resp
}

/// The request as the log keeps it.
fn received(parts: &Parts, body: &Bytes) -> Received {
    Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
        seq: 0,
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        status: None,
    }
}

/// A body that fails at once: hyper closes the connection without a response.
fn dropped() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("emulator: injected drop"))
    });
    Response::new(Body::from_stream(stream))
}

/// The answer a fault gives in place of the route's: Stream's refusal of the token, or the
/// status (with `Retry-After`); none for a fault that only delays.
fn injected(f: &Fault) -> Option<Response> {
    if let Some(e) = f.token_error {
        return Some(stream_error(403, 17, "NotAllowedException", e.detail()).into_response());
    }
    let status = f.status?;
    let code = if status == 429 { 9 } else { 1 };
    let mut resp =
        stream_error(status, code, "InjectedFault", "emulator: injected fault").into_response();
    if let Some(ra) = f.retry_after.as_deref().and_then(|v| v.parse().ok()) {
        resp.headers_mut().insert("retry-after", ra);
    }
    Some(resp)
}

/// Serves the request unless it is over the rate limit (429, code 9), with Stream's
/// rate-limit headers either way.
async fn within_rate_limit(st: &EmulatorState, parts: Parts, bytes: Bytes, next: Next) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let counted = st.count_call(&parts.method, parts.uri.path(), now);
    let mut resp = match counted {
        Some(w) if w.over => stream_error(
            429,
            9,
            "RateLimitReached",
            "emulator: rate limit reached for this window",
        )
        .into_response(),
        _ => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    rate_headers(&mut resp, counted, now);
    resp
}

/// Stream sends its rate-limit state on every response; without a rule, a constant one.
fn rate_headers(resp: &mut Response, counted: Option<WindowState>, now: u64) {
    let (limit, remaining, reset) = counted.map_or((1000, 999, now / 60 * 60 + 60), |w| {
        (w.limit, w.remaining, w.reset)
    });
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(reset));
}
