//! The admin API, on the emulator's own port under `/_emulator/` (what it sets is applied to
//! Stream's routes by [`super::intercept`]):
//!
//! - `POST /_emulator/faults` `{"method"?, "path_prefix"?, "feed"?, "user_id"?, "status"?,
//!   "token_error"?, "delay_ms"?, "drop"?, "times", "retry_after"?}`: the next `times` matching
//!   requests get that status, Stream's refusal of their token
//!   ([`super::faults::TokenError`]), delay or a dropped connection (a delay alone then serves
//!   the request normally);
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

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::faults::{Fault, RateRule};
use super::reply::stream_error;
use super::requests::Received;
use super::state::EmulatorState;
use stream_wire::auth::Secret;

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
