//! The admin API, on the emulator's own port under `/_emulator/`, and the middleware that
//! logs every request and injects faults into Stream's routes:
//!
//! - `POST /_emulator/faults` `{"method"?, "path_prefix", "status"?, "delay_ms"?, "drop"?,
//!   "times", "retry_after"?}`: the next `times` matching requests get that status, delay or a
//!   dropped connection (a delay alone then serves the request normally);
//! - `DELETE /_emulator/faults`: clears faults; `POST /_emulator/reset`: clears everything;
//! - `GET /_emulator/requests`: the last requests received (method, target, headers, body,
//!   `seq`, `at`, `status`);
//! - `GET /_emulator/analytics`: the analytics events received (`{"events": [{"kind",
//!   "event"}]}`, `kind` `engagement` or `impression`, oldest first; a reset clears them);
//! - `PUT /_emulator/secrets` `{"secrets": ["..."]}`: the API secrets taken from now on (one,
//!   or old and new during a rotation); anything signed otherwise is still refused. Never shown.
//! - `POST /_emulator/ratelimit` `{"method"?, "path_prefix", "limit", "reset_in_s"}`: Stream's
//!   rate limit on matching requests: a window opens with the first one and lasts
//!   `reset_in_s`; its first `limit` requests are served, the rest answered 429 (code 9), all
//!   with `X-Ratelimit-Limit/Remaining/Reset` counting down; `DELETE` removes it.
//! - `POST /_emulator/webhooks/send`: a webhook signed as Stream signs it, sent to a URL
//!   (see [`super::webhooks`]);
//! - `GET /_emulator/`, `GET /_emulator/export`, `GET /_emulator/log`: the console, the whole
//!   state as one document, the request log with credentials decoded (see [`super::console`]).
//!
//! Every one of them but the reads refuses another site's web page
//! ([`super::console::same_origin`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::reply::stream_error;
use super::state::EmulatorState;
use crate::auth::Secret;

/// A fault to inject into matching requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Paths starting with this.
    pub path_prefix: String,
    /// Answer with this status (and Stream's error body).
    #[serde(default)]
    pub status: Option<u16>,
    /// Wait this long first.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Close the connection without an answer.
    #[serde(default)]
    pub drop: bool,
    /// `Retry-After` on the injected answer.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// How many matching requests it applies to.
    pub times: u32,
}

/// Stream's rate limit on matching requests, windows of `reset_in_s` from the first request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateRule {
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Paths starting with this.
    pub path_prefix: String,
    /// Requests served per window.
    pub limit: u64,
    /// Length of a window, seconds.
    pub reset_in_s: u64,
}

/// A request as the emulator received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body, as text.
    pub body: String,
    /// Its number in the log, from 1 (since start or the last reset).
    #[serde(default)]
    pub seq: u64,
    /// When it was received (RFC 3339, UTC, milliseconds).
    #[serde(default)]
    pub at: String,
    /// The status it was answered with; `null` while being served, or when dropped.
    #[serde(default)]
    pub status: Option<u16>,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Logs the request, applies a matching fault, else serves it; adds Stream's rate-limit
/// headers to every answer.
pub async fn faults_and_log(
    State(st): State<Arc<EmulatorState>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let seq = st.record(Received {
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
        body: String::from_utf8_lossy(&bytes).into_owned(),
        seq: 0,
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        status: None,
    });
    let (resp, dropped) = serve(&st, parts, bytes, next).await;
    if !dropped {
        st.answered(seq, resp.status().as_u16());
    }
    resp
}

/// Applies a matching fault, else serves the request within the rate limit; whether the
/// connection is dropped.
async fn serve(
    st: &EmulatorState,
    parts: axum::http::request::Parts,
    bytes: Bytes,
    next: Next,
) -> (Response, bool) {
    if let Some(f) = st.take_fault(&parts.method, parts.uri.path()) {
        if let Some(ms) = f.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if f.drop {
            // A body that fails at once: hyper closes the connection without a response.
            let stream = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("emulator: injected drop"))
            });
            return (Response::new(Body::from_stream(stream)), true);
        }
        if let Some(status) = f.status {
            let mut resp = stream_error(
                status,
                if status == 429 { 9 } else { 1 },
                "InjectedFault",
                "emulator: injected fault",
            )
            .into_response();
            if let Some(ra) = f.retry_after.as_deref().and_then(|v| v.parse().ok()) {
                resp.headers_mut().insert("retry-after", ra);
            }
            return (resp, false);
        }
    }
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
    // Stream sends its rate-limit state on every response; without a rule, a constant one.
    let (limit, remaining, reset) = counted.map_or((1000, 999, now / 60 * 60 + 60), |w| {
        (w.limit, w.remaining, w.reset)
    });
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", axum::http::HeaderValue::from(limit));
    h.insert(
        "x-ratelimit-remaining",
        axum::http::HeaderValue::from(remaining),
    );
    h.insert("x-ratelimit-reset", axum::http::HeaderValue::from(reset));
    (resp, false)
}

/// `POST /_emulator/ratelimit`
pub async fn set_rate_limit(
    State(st): State<Arc<EmulatorState>>,
    Json(r): Json<RateRule>,
) -> StatusCode {
    st.set_rate_rule(Some(r));
    StatusCode::CREATED
}

/// `DELETE /_emulator/ratelimit`
pub async fn clear_rate_limit(State(st): State<Arc<EmulatorState>>) -> StatusCode {
    st.set_rate_rule(None);
    StatusCode::NO_CONTENT
}

/// `POST /_emulator/faults`
pub async fn add_fault(State(st): State<Arc<EmulatorState>>, Json(f): Json<Fault>) -> StatusCode {
    st.inject(f);
    StatusCode::CREATED
}

/// `DELETE /_emulator/faults`
pub async fn clear_faults(State(st): State<Arc<EmulatorState>>) -> StatusCode {
    st.clear_faults();
    StatusCode::NO_CONTENT
}

/// `GET /_emulator/faults`
pub async fn list_faults(State(st): State<Arc<EmulatorState>>) -> Json<Vec<Fault>> {
    Json(st.faults())
}

/// `GET /_emulator/requests`
pub async fn list_requests(State(st): State<Arc<EmulatorState>>) -> Json<Vec<Received>> {
    Json(st.received())
}

/// The body of `PUT /_emulator/secrets`.
#[derive(Deserialize)]
pub struct Secrets {
    /// Each a non-empty secret; at least one.
    pub secrets: Vec<String>,
}

/// `PUT /_emulator/secrets`
pub async fn set_secrets(State(st): State<Arc<EmulatorState>>, Json(s): Json<Secrets>) -> Response {
    if s.secrets.is_empty() || s.secrets.iter().any(|v| v.is_empty()) {
        return stream_error(
            400,
            4,
            "InputException",
            "secrets must list at least one non-empty secret",
        )
        .into_response();
    }
    st.accept_secrets(s.secrets.into_iter().map(Secret::new).collect());
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_emulator/reset`
/// `GET /_emulator/analytics`.
pub async fn list_analytics(State(st): State<Arc<EmulatorState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "events": st.analytics_events() }))
}

pub async fn reset(State(st): State<Arc<EmulatorState>>) -> StatusCode {
    st.reset();
    StatusCode::NO_CONTENT
}
