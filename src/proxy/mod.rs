//! The proxy: `/api/v1.0/...` (and Stream's analytics and personalization paths) in, validated,
//! credentialed, forwarded with retries ([`crate::upstream`]), Stream's answer back unchanged.
//! [`v2`] does the same for `/api/v2/...` with a server token.

pub(crate) mod v2;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::callers::Named;
use crate::config::BatchAuth;
use crate::error::ApiError;
use crate::recorder::RequestRecord;
use crate::state::{AppState, BodyRules};
use crate::trace::Context;
use crate::upstream::client::{Answer, Credential, Prepared, Upstream};
use crate::upstream::retry::{Outcome, Unusable};
use crate::upstream::Tapped;
use stream_wire::endpoint::{AuthKind, BodyKind, Host, Idempotency, Route};
use stream_wire::{body, query, route, Method, RouteError};

/// The API families the proxy forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/api/v1.0/...`, `/analytics/v1.0/...`, `/personalization/v1.0/...`: the endpoint table.
    V1,
    /// `/api/v2/...`: the generated operation table ([`v2`]).
    V2,
}

impl Api {
    /// The family a request path belongs to; `None`: not the proxy's.
    pub fn of(path: &str) -> Option<Api> {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/api/v1.0") {
            Some(Api::V1)
        } else if under("/api/v2") {
            Some(Api::V2)
        } else if ["/analytics/v1.0/", "/personalization/v1.0/"]
            .iter()
            .any(|p| path.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
        {
            // Something after the prefix, as the routes these services had in the router.
            Some(Api::V1)
        } else {
            None
        }
    }
}

/// Answers one proxied request of the `api` family, in the trace `trace`, from `peer` (when
/// the listener passes it on: `[callers]` identifies callers by it). The answer carries the
/// request's [`RequestRecord`].
pub(crate) async fn answer(
    st: &AppState,
    api: Api,
    req: Request,
    trace: Context,
    peer: Option<SocketAddr>,
) -> Response {
    match api {
        Api::V1 => serve::<V1>(st, req, trace, peer).await,
        Api::V2 => serve::<v2::V2>(st, req, trace, peer).await,
    }
}

/// What differs between the API families the proxy forwards (v1.0 here, [`v2`]): how a
/// request is matched to an endpoint, what its body must be, which credential it goes with,
/// and the shape of a refusal. The rest is [`serve`]'s, the same for both.
pub(crate) trait Family {
    /// A refusal, in the family's error shape.
    type Error: From<ApiError> + IntoResponse;
    /// A request matched to one of the family's endpoints.
    type Matched;
    /// The endpoint name the access log and metrics give a request that matched none.
    const UNMATCHED: &'static str;
    /// Matches the request's path to an endpoint, refusing what Stream would refuse, before
    /// anything is read.
    fn route(st: &AppState, parts: &Parts) -> Result<Self::Matched, Self::Error>;
    /// The endpoint, for callers' allow lists and windows, logs and metrics.
    fn named(m: &Self::Matched) -> Named;
    /// The matched endpoint's query, checked (a refusal is counted under the endpoint's name).
    fn query(m: &Self::Matched, parts: &Parts) -> Result<Vec<(String, String)>, Self::Error>;
    /// What to send Stream, from the matched request, its query and its body as received.
    fn outgoing<'a>(
        st: &'a AppState,
        m: Self::Matched,
        query: Vec<(String, String)>,
        parts: &Parts,
        body: Bytes,
    ) -> Result<Outgoing<'a>, Self::Error>;
}

/// A request as it goes to Stream, less what every family sends alike (the method, the
/// request id, the trace).
pub(crate) struct Outgoing<'a> {
    /// The client of the family's base URL.
    pub(crate) upstream: &'a Upstream,
    pub(crate) host: Host,
    pub(crate) path: String,
    /// The query to send, `api_key` included.
    pub(crate) query: String,
    pub(crate) body: Option<Bytes>,
    /// The body's type when it is not JSON.
    pub(crate) content_type: Option<http::HeaderValue>,
    pub(crate) credential: Credential,
    /// Whether it may be sent again after an attempt that may have reached Stream.
    pub(crate) idempotent: bool,
}

/// One proxied request, start to answer: the [`RequestRecord`] is made here and put once in
/// the answer's extensions.
async fn serve<F: Family>(
    st: &AppState,
    req: Request,
    trace: Context,
    peer: Option<SocketAddr>,
) -> Response {
    let (parts, body) = req.into_parts();
    let (result, record) = forward::<F>(st, &parts, body, trace, peer).await;
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    resp.extensions_mut().insert(record);
    resp
}

/// The pipeline: match, admit the caller, read the body, take a permit, send with retries,
/// watch for a wrong secret, answer. Returns the answer (or the refusal) with the record of
/// how far the request got.
async fn forward<F: Family>(
    st: &AppState,
    parts: &Parts,
    body: Body,
    trace: Context,
    peer: Option<SocketAddr>,
) -> (Result<Response, F::Error>, RequestRecord) {
    // One deadline for the whole request: reading the body, every attempt, every backoff.
    let deadline = Instant::now() + st.config.upstream.deadline;
    let mut record = RequestRecord::new(F::UNMATCHED);
    macro_rules! or_refuse {
        ($result:expr) => {
            match $result {
                Ok(v) => v,
                Err(e) => return (Err(e.into()), record),
            }
        };
    }
    let matched = or_refuse!(F::route(st, parts));
    let named = F::named(&matched);
    record.endpoint = named.name;
    let pairs = or_refuse!(F::query(&matched, parts));
    // The caller's policy first, before its body is read (see `AppState::receive`). A body
    // on a GET or DELETE is read too, and dropped: left unread, the HTTP layer closes the
    // connection after the answer, and a client's next request on it fails (stream-python
    // sends `{}` with every DELETE). The caller's slot is held until the answer is out.
    let admit = st.callers.admit(&parts.headers, peer, named);
    let rules = BodyRules::Proxy { deadline };
    let (admission, raw) = st.receive(rules, &parts.headers, body, admit).await;
    record.caller = admission.caller;
    let raw = or_refuse!(raw);
    let out = or_refuse!(F::outgoing(st, matched, pairs, parts, raw));
    // Refuse at once beyond the limit rather than queue without bound. The permit goes with
    // the answer's body: a request is in flight until its answer has streamed out.
    let permit = or_refuse!(st
        .limiter
        .clone()
        .try_acquire_owned()
        .map_err(|_| st.overloaded("requests in flight")));
    let prepared = Prepared {
        method: parts.method.clone(),
        host: out.host,
        query: out.query,
        path: out.path,
        body: out.body,
        content_type: out.content_type,
        credential: out.credential,
        request_id: parts.headers.get("x-request-id").cloned(),
        trace,
    };
    let sent = st
        .retries
        .run(
            // With callers configured, every answer tells the window tracker what Stream says.
            &Tapped {
                inner: out.upstream,
                tap: record.caller.is_some().then_some(|a: &Answer| {
                    st.callers.observe(named, a.status.as_u16(), &a.headers);
                }),
            },
            &st.metrics,
            &prepared,
            out.idempotent,
            deadline,
            named.name,
        )
        .await;
    record.attempts = sent.attempts;
    // A wrong secret is seen on every family (one error per episode, counted).
    let result = or_refuse!(watch_auth(st, named.name, sent.result).await);
    let permits = (permit, admission.slot);
    let max = st.config.upstream.max_response_bytes;
    let mut resp = or_refuse!(finish(result, sent.attempts, max, permits));
    // The deadline bounds the whole answer, written out included: a client that does not read
    // it has its connection closed then, and the permits go back.
    resp.extensions_mut()
        .insert(crate::server::AnswerDeadline(deadline));
    (Ok(resp), record)
}

/// Stream's v1.0 REST API, its analytics and personalization services: the endpoint table.
struct V1;

impl Family for V1 {
    type Error = ApiError;
    type Matched = Route;
    const UNMATCHED: &'static str = "unknown";

    fn route(st: &AppState, parts: &Parts) -> Result<Self::Matched, ApiError> {
        check_target(st, parts)?;
        let method = Method::parse(parts.method.as_str());
        let route = route(method, parts.uri.path()).map_err(|e| match e {
            RouteError::NotFound => ApiError::NotFound(parts.uri.path().to_owned()),
            RouteError::MethodNotAllowed { allow } => ApiError::MethodNotAllowed(allow),
            RouteError::Invalid(i) => ApiError::InvalidInput(i),
        })?;
        Ok(route)
    }

    fn named(m: &Self::Matched) -> Named {
        m.endpoint.into()
    }

    fn query(m: &Route, parts: &Parts) -> Result<Vec<(String, String)>, ApiError> {
        Ok(query::check(m.endpoint, parts.uri.query())?)
    }

    fn outgoing<'a>(
        st: &'a AppState,
        route: Self::Matched,
        pairs: Vec<(String, String)>,
        _: &Parts,
        raw: Bytes,
    ) -> Result<Outgoing<'a>, ApiError> {
        let ep = route.endpoint;
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
        Ok(Outgoing {
            upstream: &st.upstream,
            host: ep.host,
            query: query::forward_string(&pairs, &st.config.stream.api_key),
            credential: credential(st, &route),
            path: route.path,
            body,
            content_type: None,
            idempotent,
        })
    }
}

/// The checks every family makes first, on the raw target: its length, and the `api_key`
/// it names.
fn check_target(st: &AppState, parts: &Parts) -> Result<(), ApiError> {
    let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_TARGET_BYTES {
        return Err(ApiError::UriTooLong(MAX_TARGET_BYTES));
    }
    refuse_foreign_api_key(st, parts.uri.query())
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
pub(crate) fn refuse_foreign_api_key(
    st: &AppState,
    raw_query: Option<&str>,
) -> Result<(), ApiError> {
    let s = &st.config.stream;
    query::check_api_key(raw_query, &s.api_key, &s.accepted_api_keys).map_err(|r| {
        st.metrics
            .counter("gateway_api_key_refused_total", &[])
            .increment(1);
        match r {
            query::ApiKeyRefusal::Foreign(detail) => ApiError::ForeignApiKey(detail),
            query::ApiKeyRefusal::Repeated => ApiError::InvalidInput(
                stream_wire::InvalidInput::new("api_key", "is given more than once"),
            ),
        }
    })
}

/// Longest path and query the gateway forwards (nginx's default header buffer is 8 KiB).
pub(crate) const MAX_TARGET_BYTES: usize = 8192;

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

fn finish(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_claims_its_families_paths_and_nothing_beside_them() {
        for (path, api) in [
            ("/api/v1.0", Some(Api::V1)),
            ("/api/v1.0/", Some(Api::V1)),
            ("/api/v1.0/feed/user/1/", Some(Api::V1)),
            ("/analytics/v1.0/impression/", Some(Api::V1)),
            ("/personalization/v1.0/x/", Some(Api::V1)),
            ("/api/v2", Some(Api::V2)),
            ("/api/v2/users", Some(Api::V2)),
            ("/api/v1.0x", None),
            ("/api/v2x/users", None),
            ("/api/", None),
            ("/analytics/v1.0", None),
            ("/analytics/v1.0/", None),
            ("/personalization/v1.0/", None),
            ("/tokens", None),
            ("/healthz", None),
        ] {
            assert_eq!(Api::of(path), api, "{path}");
        }
    }
}
