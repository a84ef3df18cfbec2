//! Stream's webhooks, verified here so the services that receive them never hold the secret.
//!
//! Each `[webhooks.routes.<name>]` is a `POST` route on the gateway. A webhook is verified
//! before anything is forwarded: `X-Api-Key` is this app's key, `X-Signature` is the hex
//! HMAC-SHA256 of the raw body under the secret in force (or, for
//! `stream.previous_secret_grace_s` after a rotation, the one before it), and the body is
//! within `webhooks.max_body_bytes`. A refusal is Stream's error shape with a `detail` naming
//! the reason (never quoting a signature), counted by reason. A verified webhook goes to its
//! `forward_to` byte for byte with its content type, id and attempt and `X-Stream-Verified:
//! 1`; the target's answer (status, content type, body) goes back to Stream unchanged, within
//! `webhooks.timeout_ms`. Retries of an answered webhook are answered from [`dedupe`].
//!
//! Like `callers`, this module takes what it needs from the state as values (the secrets, the
//! metrics, a way to read the request's trace) and names no feature, so the configuration can
//! hold its settings without a module cycle.

pub(crate) mod dedupe;
pub(crate) mod settings;
use stream_wire::webhook as signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::ApiError;
use crate::recorder::{Metrics, RequestRecord};
use dedupe::{Claim, Dedupe, Stored};
pub(crate) use settings::{Route, Settings, WebhooksFile};
use signature::{Headers, Refusal};
use stream_wire::auth::Keys;

/// The `endpoint` of a webhook in the access log and the request metrics.
pub(crate) const ENDPOINT: &str = "webhook";

/// Headers for the forwarded request that continue the caller's trace (`traceparent`, and
/// `tracestate` when kept), read from the request being handled; given by the state, which
/// owns the trace context.
pub(crate) type TraceHeaders = fn() -> Vec<(HeaderName, HeaderValue)>;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<crate::net::Dns>>, Full<Bytes>>;

/// Everything the webhook routes share, built once: one value both listeners serve, so the
/// memory of answered webhooks is one per replica.
pub struct Hooks {
    settings: Settings,
    api_key: String,
    grace: Duration,
    keys: Arc<Keys>,
    metrics: Arc<Metrics>,
    trace: TraceHeaders,
    client: HttpClient,
    dedupe: Arc<Dedupe>,
    /// Webhooks being received or forwarded: each holds up to two bodies of
    /// `webhooks.max_body_bytes` (its own and the answer), so they are bounded like requests.
    in_flight: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("routes", &self.settings.routes)
            .finish_non_exhaustive()
    }
}

impl Hooks {
    /// The routes of `settings`, verifying with the secrets in `keys` (the previous one for
    /// `grace` after a rotation) and `api_key`, at most `max_in_flight` webhooks at once.
    pub fn new(
        settings: Settings,
        max_in_flight: usize,
        api_key: &str,
        grace: Duration,
        keys: Arc<Keys>,
        metrics: Arc<Metrics>,
        trace: TraceHeaders,
    ) -> Result<Self, rustls::Error> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(crate::net::http_connector(settings.timeout));
        // No redirects are followed (hyper's client has none), and no proxy from the
        // environment: a verified webhook goes only where the configuration says.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            dedupe: Arc::new(Dedupe::new(
                settings.dedupe_window,
                settings.dedupe_max_entries,
            )),
            settings,
            in_flight: tokio::sync::Semaphore::new(max_in_flight),
            api_key: api_key.to_owned(),
            grace,
            keys,
            metrics,
            trace,
            client,
        })
    }

    /// The validated `[webhooks]`.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// The webhook routes, one `POST` route per `[webhooks.routes.<name>]`: a self-contained
/// router, merged into every listener that faces Stream.
pub(crate) fn router(hooks: Arc<Hooks>) -> Router {
    let mut r = Router::new();
    for route in &hooks.settings.routes {
        let hooks = hooks.clone();
        let route = Arc::new(route.clone());
        r = r.route(
            &route.path.clone(),
            post(move |headers: HeaderMap, body: Body| {
                let hooks = hooks.clone();
                let route = route.clone();
                async move { hooks.handle(&route, headers, body).await }
            })
            // Another method: Stream's error shape, as everywhere else on the gateway.
            .fallback(|| async {
                crate::error::ApiError::MethodNotAllowed(vec![stream_wire::endpoint::Method::Post])
            }),
        );
    }
    r
}

/// What became of one webhook: the `outcome` label of `gateway_webhooks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Forwarded,
    Replayed,
    Refused(Refusal),
    TargetError,
    TargetTimeout,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Replayed => "replayed",
            Outcome::Refused(_) => "refused",
            Outcome::TargetError => "target_error",
            Outcome::TargetTimeout => "target_timeout",
        }
    }
}

/// Which secret verified a webhook, for the log line.
#[derive(Debug, Clone, Copy)]
enum Verified {
    Current,
    Previous,
}

impl Hooks {
    async fn handle(&self, route: &Route, headers: HeaderMap, body: Body) -> Response {
        let started = Instant::now();
        let permit = self.in_flight.try_acquire();
        let verifying = async {
            if permit.is_err() {
                return Err(Refusal::Overloaded);
            }
            self.verify(&headers, body).await
        };
        let (outcome, verified, answer) = match verifying.await {
            Err(refusal) => (Outcome::Refused(refusal), None, refused(refusal, self)),
            Ok((parsed, body, verified)) => {
                let (outcome, stored) = self.answer(route, &headers, &parsed, body).await;
                (outcome, Some(verified), stored)
            }
        };
        let id = headers
            .get(signature::X_WEBHOOK_ID)
            .and_then(|v| signature::parse_webhook_id(v.as_bytes()))
            .unwrap_or("-");
        let labels = [("route", route.name.as_str()), ("outcome", outcome.label())];
        self.metrics
            .counter("gateway_webhooks_total", &labels)
            .increment(1);
        if let Outcome::Refused(r) = outcome {
            self.metrics
                .counter(
                    "gateway_webhooks_refused_total",
                    &[("route", route.name.as_str()), ("reason", r.reason())],
                )
                .increment(1);
        }
        let reason = match outcome {
            Outcome::Refused(r) => r.reason(),
            _ => "-",
        };
        let secret = match verified {
            Some(Verified::Current) => "current",
            Some(Verified::Previous) => "previous",
            None => "-",
        };
        // The request id the access log's line for this request carries too.
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            request_id = %request_id,
            webhook_id = %id,
            route = route.name.as_str(),
            outcome = outcome.label(),
            reason,
            secret,
            status = answer.status.as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "webhook"
        );
        let mut resp = (answer.status, answer.body.clone()).into_response();
        match &answer.content_type {
            Some(ct) => {
                resp.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            None => {
                resp.headers_mut().remove(CONTENT_TYPE);
            }
        }
        let attempts = u32::from(matches!(
            outcome,
            Outcome::Forwarded | Outcome::TargetError | Outcome::TargetTimeout
        ));
        resp.extensions_mut().insert(RequestRecord {
            attempts,
            ..RequestRecord::new(ENDPOINT)
        });
        resp
    }

    /// The headers, then the body within its cap, then the signature under the secret in
    /// force or the previous one within its grace.
    async fn verify(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(Headers, Bytes, Verified), Refusal> {
        let parsed = signature::parse_headers(headers, &self.api_key)?;
        let body = self.read_body(headers, body).await?;
        if signature::is_gzip(&body) {
            return Err(Refusal::Compressed);
        }
        let current = self.keys.load().secret().clone();
        if signature::verify(&current, &body, &parsed.signature) {
            return Ok((parsed, body, Verified::Current));
        }
        match self.keys.previous_within(self.grace) {
            Some(previous) if signature::verify(&previous, &body, &parsed.signature) => {
                Ok((parsed, body, Verified::Previous))
            }
            _ => Err(Refusal::BadSignature),
        }
    }

    /// The body, refused as soon as it is known to exceed the cap (its `Content-Length`, or
    /// the bytes counted so far): nothing past the cap is buffered.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
        let cap = self.settings.max_body_bytes;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(Refusal::TooLarge);
        }
        match tokio::time::timeout(self.settings.timeout, Limited::new(body, cap).collect()).await {
            Ok(Ok(c)) => Ok(c.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Refusal::TooLarge),
            Ok(Err(_)) | Err(_) => Err(Refusal::Body),
        }
    }

    /// The answer to a verified webhook: from memory, after the duplicate in flight, or from
    /// the target.
    async fn answer(
        &self,
        route: &Route,
        headers: &HeaderMap,
        parsed: &Headers,
        body: Bytes,
    ) -> (Outcome, Arc<Stored>) {
        let Some(id) = &parsed.id else {
            // Without an id nothing can be matched: forwarded as it comes.
            let (outcome, stored) = self.forward(route, headers, parsed, body).await;
            return (outcome, Arc::new(stored));
        };
        let key: dedupe::Key = (Arc::from(route.name.as_str()), id.clone(), parsed.signature);
        loop {
            match self.dedupe.claim(key.clone()) {
                Claim::Replay(stored) => return (Outcome::Replayed, stored),
                Claim::Follow(waiting) => match waiting.wait().await {
                    Some(stored) => return (Outcome::Replayed, stored),
                    // The first was cancelled before its answer: try again.
                    None => continue,
                },
                Claim::Lead(leader) => {
                    let (outcome, stored) =
                        self.forward(route, headers, parsed, body.clone()).await;
                    return (outcome, leader.finish(stored));
                }
            }
        }
    }

    /// Sends the webhook to the route's target and reads its answer, all within
    /// `webhooks.timeout_ms`.
    async fn forward(
        &self,
        route: &Route,
        inbound: &HeaderMap,
        parsed: &Headers,
        body: Bytes,
    ) -> (Outcome, Stored) {
        let req = self.request(route, inbound, parsed, body);
        let cap = self.settings.max_body_bytes;
        let timeout = self.settings.timeout;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                tracing::debug!(error = %e, "webhook target failed");
                "the webhook target could not be reached or closed the connection"
            })?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, cap).collect().await.map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    "the webhook target's answer is larger than webhooks.max_body_bytes"
                } else {
                    "the webhook target's answer was cut off"
                }
            })?;
            Ok::<_, &'static str>(Stored {
                status: parts.status,
                content_type: parts.headers.get(CONTENT_TYPE).cloned(),
                body: bytes.to_bytes(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(stored)) => (Outcome::Forwarded, stored),
            Ok(Err(why)) => (
                Outcome::TargetError,
                error_answer(ApiError::UpstreamUnusable(why.to_owned())),
            ),
            Err(_) => (
                Outcome::TargetTimeout,
                error_answer(ApiError::WebhookTimeout(timeout.as_millis())),
            ),
        }
    }

    /// The forwarded request: the body as received, and only these headers: `Content-Type`,
    /// `X-Webhook-Id` and `X-Webhook-Attempt` (when well-formed), `X-Api-Key` (verified to be
    /// this app's), `X-Request-Id`, the trace context, and `X-Stream-Verified: 1`. Nothing
    /// else passes: not `X-Signature` (the target trusts `X-Stream-Verified` instead), not an
    /// inbound `X-Stream-Verified`, not cookies or credentials.
    fn request(
        &self,
        route: &Route,
        inbound: &HeaderMap,
        parsed: &Headers,
        body: Bytes,
    ) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::post(route.forward_to.clone())
            .body(Full::new(body))
            .expect("a validated URI and no header");
        let h = req.headers_mut();
        for name in [CONTENT_TYPE, HeaderName::from_static("x-request-id")] {
            if let Some(v) = inbound.get(&name) {
                h.insert(name, v.clone());
            }
        }
        if let Some(id) = parsed
            .id
            .as_deref()
            .and_then(|i| HeaderValue::from_str(i).ok())
        {
            h.insert(signature::X_WEBHOOK_ID, id);
        }
        if let Some(n) = parsed.attempt {
            h.insert(signature::X_WEBHOOK_ATTEMPT, HeaderValue::from(n));
        }
        if let Ok(key) = HeaderValue::from_str(&self.api_key) {
            h.insert(signature::X_API_KEY, key);
        }
        h.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("stream-gateway/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in (self.trace)() {
            h.insert(name, value);
        }
        h.insert(signature::X_STREAM_VERIFIED, HeaderValue::from_static("1"));
        req
    }
}

/// The 401 (413 for size, 503 when overloaded) for a refusal, in Stream's error shape.
fn refused(r: Refusal, hooks: &Hooks) -> Arc<Stored> {
    let err = match r {
        Refusal::TooLarge => ApiError::PayloadTooLarge(hooks.settings.max_body_bytes),
        Refusal::Body => ApiError::InvalidInput(stream_wire::InvalidInput::new(
            "body",
            "could not be read within webhooks.timeout_ms",
        )),
        Refusal::Overloaded => ApiError::Overloaded(r.detail().to_owned()),
        other => ApiError::Unauthenticated(other.detail().to_owned()),
    };
    Arc::new(error_answer(err))
}

/// An error as an answer that can be kept and handed to waiting duplicates.
fn error_answer(err: ApiError) -> Stored {
    let (status, _, _) = err.parts();
    Stored {
        status,
        content_type: Some(HeaderValue::from_static("application/json")),
        body: Bytes::from(err.body().to_string()),
    }
}
