//! The proxy: `/api/v1.0/...` (and Stream's analytics and personalization paths) in, validated,
//! credentialed, forwarded with retries ([`crate::upstream`]), Stream's answer back unchanged.
//! [`v2`] does the same for `/api/v2/...` with a server token.

pub mod v2;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::config::BatchAuth;
use crate::error::ApiError;
use crate::recorder::{CallerName, RequestInfo};
use crate::state::AppState;
use crate::stream::endpoint::Route;
use crate::stream::endpoint::{AuthKind, BodyKind, Idempotency};
use crate::stream::{body, query, route, Method, RouteError};
use crate::upstream::client::{Answer, Credential, Prepared};
use crate::upstream::retry::{Outcome, Unusable};
use crate::upstream::Tapped;

/// The handler for every path under `/api/v1.0/`, `/analytics/v1.0/` and
/// `/personalization/v1.0/`.
pub async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut info = RequestInfo {
        endpoint: "unknown",
        attempts: 0,
    };
    let mut caller = None;
    let mut resp = match proxy(&st, &parts, body, &mut info, &mut caller).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(info);
    if let Some(c) = caller {
        resp.extensions_mut().insert(CallerName(c));
    }
    resp
}

/// The upstream credential for this call: an HTTP Signature for the batch calls when so
/// configured, else the narrowest token, both with the secret in force.
fn credential(st: &AppState, route: &Route) -> Credential {
    match (route.endpoint.auth, st.config.stream.batch_auth) {
        (AuthKind::Application, BatchAuth::Signature) => {
            Credential::Signature(st.keys.load().secret().clone())
        }
        _ => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            Credential::Jwt(st.keys.load().get(&route.scope(), now))
        }
    }
}

/// Refuses a request whose query names another app's `api_key` (401, Stream's
/// `ApiKeyException`) or names one twice (400), counting it in
/// `gateway_api_key_refused_total`. Every family calls it on the raw query before anything
/// else reads it; see [`query::check_api_key`].
pub fn refuse_foreign_api_key(st: &AppState, raw_query: Option<&str>) -> Result<(), ApiError> {
    let s = &st.config.stream;
    query::check_api_key(raw_query, &s.api_key, &s.accepted_api_keys).map_err(|r| {
        st.metrics
            .counter("gateway_api_key_refused_total", &[])
            .increment(1);
        match r {
            query::ApiKeyRefusal::Foreign(detail) => ApiError::ForeignApiKey(detail),
            query::ApiKeyRefusal::Repeated => ApiError::InvalidInput(
                crate::stream::InvalidInput::new("api_key", "is given more than once"),
            ),
        }
    })
}

/// Longest path and query the gateway forwards (nginx's default header buffer is 8 KiB).
pub const MAX_TARGET_BYTES: usize = 8192;

async fn proxy(
    st: &AppState,
    parts: &Parts,
    body: Body,
    trace: &mut RequestInfo,
    caller: &mut Option<Arc<str>>,
) -> Result<Response, ApiError> {
    // One deadline for the whole request: reading the body, every attempt, every backoff.
    let deadline = Instant::now() + st.config.upstream.deadline;
    let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_TARGET_BYTES {
        return Err(ApiError::UriTooLong(MAX_TARGET_BYTES));
    }
    refuse_foreign_api_key(st, parts.uri.query())?;
    let method = Method::parse(parts.method.as_str());
    let route = route(method, parts.uri.path()).map_err(|e| match e {
        RouteError::NotFound => ApiError::NotFound(parts.uri.path().to_owned()),
        RouteError::MethodNotAllowed { allow } => ApiError::MethodNotAllowed(allow),
        RouteError::Invalid(i) => ApiError::InvalidInput(i),
    })?;
    let ep = route.endpoint;
    trace.endpoint = ep.name;
    let pairs = query::check(ep, parts.uri.query())?;

    // The caller's policy first, before its body is read: a caller that may not make this
    // call, or is over its rate or its `max_in_flight`, holds nothing while it sends a slow
    // body. A refused request's body is left unread, so its connection is closed after the
    // answer. The caller's slot is held until the answer is out.
    let slot = st.callers.admit_request(parts, ep, caller).await?;
    // Reading the body is part of the request, bounded by its deadline, and holds a body
    // permit, not one of the permits below. A body on a GET or DELETE is read too, and
    // dropped: left unread, the HTTP layer closes the connection after the answer, and a
    // client's next request on it fails (stream-python sends `{}` with every DELETE).
    let raw = st.receive_body(&parts.headers, body, deadline).await?;
    let (body, keyed) = if ep.body == BodyKind::None {
        (None, false)
    } else {
        let checked = body::check(ep.body, &raw)?;
        let keyed = checked.keyed;
        (
            Some(checked.rewritten.map(Bytes::from).unwrap_or(raw)),
            keyed,
        )
    };
    let idempotent = match ep.idempotency {
        Idempotency::Always => true,
        Idempotency::WithForeignIdAndTime | Idempotency::WithId => keyed,
        Idempotency::Never => false,
    };

    let s = &st.config.stream;
    let credential = credential(st, &route);
    // Refuse at once beyond the limit rather than queue without bound. The permit goes with
    // the answer's body: a request is in flight until its answer has streamed out.
    let permit = st
        .limiter
        .clone()
        .try_acquire_owned()
        .map_err(|_| st.overloaded("requests in flight"))?;
    let prepared = Prepared {
        method: parts.method.clone(),
        host: ep.host,
        query: query::forward_string(&pairs, &s.api_key),
        path: route.path,
        body,
        content_type: None,
        credential,
        request_id: parts.headers.get("x-request-id").cloned(),
        // The access log made the request's context; without it (a router built without
        // that layer), one from the caller's headers.
        trace: crate::trace::current().unwrap_or_else(|| {
            crate::trace::Context::from_headers(&parts.headers, st.tracer.exporting())
        }),
    };
    let result = st
        .retries
        .run(
            // With callers configured, every answer tells the window tracker what Stream says.
            &Tapped {
                inner: &st.upstream,
                tap: caller.is_some().then_some(|a: &Answer| {
                    st.callers.observe(ep, a.status.as_u16(), &a.headers);
                }),
            },
            &st.metrics,
            &prepared,
            idempotent,
            deadline,
            trace,
        )
        .await;
    let result = watch_auth(st, ep.name, result).await?;
    let mut resp = finish(
        result,
        trace.attempts,
        st.config.upstream.max_response_bytes,
        (permit, slot),
    )?;
    // The deadline bounds the whole answer, written out included: a client that does not read
    // it has its connection closed then, and the permits go back.
    resp.extensions_mut()
        .insert(crate::server::AnswerDeadline(deadline));
    Ok(resp)
}

/// Largest refusal body read to tell a wrong secret from another refusal; Stream's error
/// bodies are a few hundred bytes.
const MAX_REFUSAL_BYTES: usize = 16 * 1024;

/// Shows Stream's final answer to the wrong-secret watch: a success ends an episode, a 401 or
/// 403 is read whole to see whether it is one.
async fn watch_auth(
    st: &AppState,
    endpoint: &str,
    result: Result<Answer, Outcome>,
) -> Result<Result<Answer, Outcome>, ApiError> {
    match result {
        Ok(a) if matches!(a.status.as_u16(), 401 | 403) => {
            Ok(Ok(watch_refusal(st, endpoint, a).await?))
        }
        Ok(a) => {
            if a.status.is_success() {
                st.auth_failures.accepted();
            }
            Ok(Ok(a))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Reads a 401 or 403 from Stream whole, tells [`AuthFailures`](crate::upstream::auth_failures)
/// when it says the gateway's signature is wrong, and gives the same answer back.
async fn watch_refusal(st: &AppState, endpoint: &str, a: Answer) -> Result<Answer, ApiError> {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(a.body, MAX_REFUSAL_BYTES)
        .collect()
        .await
        .map_err(|_| {
            ApiError::UpstreamUnusable(format!(
                "Stream's {} answer could not be read whole",
                a.status.as_u16()
            ))
        })?
        .to_bytes();
    if crate::upstream::auth_failures::is_signature_refusal(a.status.as_u16(), &body) {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_default();
        st.auth_failures.refused(endpoint, &detail);
    }
    Ok(Answer {
        status: a.status,
        headers: a.headers,
        body: Body::from(body),
    })
}

/// The permits a request holds until its answer is out: one of `server.max_concurrency`, and
/// its caller's `max_in_flight` slot (with `[callers]`).
type Permits = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

/// An answer's body that holds its request's permits until it is done or dropped.
struct Holding {
    body: Body,
    _permits: Permits,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

pub(crate) fn finish(
    result: Result<Answer, Outcome>,
    attempts: u32,
    max_response_bytes: usize,
    permits: Permits,
) -> Result<Response, ApiError> {
    match result {
        Ok(a) => {
            let mut resp = Response::new(Body::new(Holding {
                body: a.body,
                _permits: permits,
            }));
            *resp.status_mut() = a.status;
            resp.headers_mut().extend(a.headers);
            Ok(resp)
        }
        Err(Outcome::Unusable(Unusable::TooLarge)) => Err(ApiError::UpstreamUnusable(format!(
            "Stream's answer is larger than {max_response_bytes} bytes (upstream.max_response_bytes)"
        ))),
        Err(Outcome::Unusable(Unusable::Status(s))) => Err(ApiError::UpstreamUnusable(format!(
            "Stream answered with status {s}, which is not a final HTTP answer"
        ))),
        Err(Outcome::Timeout) => Err(ApiError::UpstreamTimeout(format!(
            "no answer within the attempt timeout ({attempts} attempt(s))"
        ))),
        Err(_) => Err(ApiError::UpstreamUnavailable(format!(
            "connection failed ({attempts} attempt(s))"
        ))),
    }
}
