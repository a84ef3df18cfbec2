//! The admin API, on the emulator's own port under `/_emulator/`, and the middleware that
//! logs every request and injects faults into Stream's routes:
//!
//! - `POST /_emulator/faults` `{"method"?, "path_prefix"?, "feed"?, "user_id"?, "status"?,
//!   "token_error"?, "delay_ms"?, "drop"?, "times", "retry_after"?}`: the next `times` matching
//!   requests get that status, Stream's refusal of their token ([`TokenError`]), delay or a
//!   dropped connection (a delay alone then serves the request normally);
//! - `DELETE /_emulator/faults`: clears faults; `POST /_emulator/reset`: clears everything;
//! - `POST /_emulator/import?mode=replace|merge`: loads a `GET /_emulator/export` document
//!   (refused whole when bad, see [`super::store::import`]);
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
use stream_wire::auth::Secret;

/// A fault to inject into matching requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fault {
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Paths starting with this (every path when empty).
    #[serde(default)]
    pub path_prefix: String,
    /// Only calls on this feed, `slug:id` (its `/feed/<slug>/<id>/` routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
    /// Only calls for this user: any of its feeds (`/feed/<slug>/<user_id>/`) and its user
    /// object (`/user/<user_id>/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Refuse the call as Stream refuses its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_error: Option<TokenError>,
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

/// How Stream refuses a call's token: all 403, code 17, `NotAllowedException`
/// (reference/stream-wire.md, section 2 and 5), told apart by `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenError {
    /// An expired token. Stream's `detail` here is UNCONFIRMED: it is the one of the JWT
    /// library whose other messages Stream's are (`signature is invalid`, `token contains an
    /// invalid number of segments`).
    Expired,
    /// A token not signed with the app's secret (GetStream/stream-go2#98).
    InvalidSignature,
    /// A token whose scope does not cover the call (GetStream/stream-js#396).
    NotAllowed,
}

impl TokenError {
    /// Stream's `detail` for it.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Expired => "token is expired by 1h0m0s",
            Self::InvalidSignature => "signature is invalid",
            Self::NotAllowed => "You do not have permission to perform this action.",
        }
    }
}

impl Fault {
    /// Whether it applies to `path` (the method aside).
    pub fn matches_path(&self, path: &str) -> bool {
        if !path.starts_with(&self.path_prefix) {
            return false;
        }
        let segments: Vec<&str> = path.split('/').collect();
        let feed_is = |slug: Option<&str>, id: &str| {
            segments
                .windows(3)
                .any(|w| w[0] == "feed" && slug.is_none_or(|s| w[1] == s) && w[2] == id)
        };
        if let Some(feed) = &self.feed {
            let Some((slug, id)) = feed.split_once(':') else {
                return false;
            };
            if !feed_is(Some(slug), id) {
                return false;
            }
        }
        if let Some(user) = &self.user_id {
            let user_object = segments.windows(2).any(|w| w[0] == "user" && w[1] == user);
            if !feed_is(None, user) && !user_object {
                return false;
            }
        }
        true
    }
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
        if let Some(e) = f.token_error {
            return (
                stream_error(403, 17, "NotAllowedException", e.detail()).into_response(),
                false,
            );
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
pub async fn add_fault(State(st): State<Arc<EmulatorState>>, Json(f): Json<Fault>) -> Response {
    let bad = |field: &str, reason: &str| {
        stream_error(400, 4, "InputException", &format!("{field}: {reason}")).into_response()
    };
    if f.times == 0 {
        return bad("times", "must be at least 1");
    }
    if let Some(feed) = &f.feed {
        let ok = feed
            .split_once(':')
            .is_some_and(|(slug, id)| !slug.is_empty() && !id.is_empty() && !id.contains('/'));
        if !ok {
            return bad("feed", "must be slug:id");
        }
    }
    if f.user_id
        .as_deref()
        .is_some_and(|u| u.is_empty() || u.contains('/'))
    {
        return bad("user_id", "must be a user id");
    }
    st.inject(f);
    StatusCode::CREATED.into_response()
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

/// `POST /_emulator/import?mode=replace|merge` (default `replace`): loads an export document;
/// a bad one is refused whole (400, code 4, naming where) and nothing changes.
pub async fn import(
    State(st): State<Arc<EmulatorState>>,
    uri: axum::http::Uri,
    body: Body,
) -> Response {
    let bad = |detail: String| stream_error(400, 4, "InputException", &detail).into_response();
    let max = st.bounds().max_import_bytes;
    let Ok(body) = axum::body::to_bytes(body, max).await else {
        return stream_error(
            413,
            4,
            "InputException",
            &format!("the document is larger than emulator.max_import_bytes ({max} bytes)"),
        )
        .into_response();
    };
    let mode = uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|p| p.strip_prefix("mode="));
    let merge = match mode {
        None | Some("replace") => false,
        Some("merge") => true,
        Some(m) => return bad(format!("mode: must be replace or merge, not {m:?}")),
    };
    let doc: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => return bad(format!("the document is not JSON: {e}")),
    };
    match st.import(&doc, merge) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(format!("import refused, nothing changed: {e}")),
    }
}

/// `GET /_emulator/analytics`.
pub async fn list_analytics(State(st): State<Arc<EmulatorState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "events": st.analytics_events() }))
}

/// `POST /_emulator/reset`
pub async fn reset(State(st): State<Arc<EmulatorState>>) -> StatusCode {
    st.reset();
    StatusCode::NO_CONTENT
}
