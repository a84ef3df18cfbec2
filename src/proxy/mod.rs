//! The proxy: `/api/v1.0/...` in, validated, credentialed, forwarded with retries, Stream's
//! answer back unchanged.
//!
//! - [`retry`]: the pure retry policy, backoff and budget;
//! - [`forward`]: the pooled upstream client, one attempt at a time.

pub mod forward;
pub mod retry;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, request::Parts, HeaderMap};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Instant;

use crate::auth::jwt::TokenCache;
use crate::config::{BatchAuth, Config};
use crate::error::ApiError;
use crate::stream::endpoint::{AuthKind, BodyKind, Idempotency};
use crate::stream::{body, query, route, Method, RouteError};
use crate::telemetry::{Metrics, RequestInfo};
use forward::{Credential, Prepared, Upstream};
use retry::{Attempted, Backoff, Decision, Outcome, RetryBudget, Stop, Unusable};

/// Everything a proxied request needs, shared by all of them.
#[derive(Debug)]
pub struct Gateway {
    /// The validated configuration.
    pub config: Config,
    /// One token per scope.
    pub tokens: TokenCache,
    /// The pooled upstream client.
    pub upstream: Upstream,
    /// The retry budget.
    pub budget: RetryBudget,
    /// The backoff.
    pub backoff: Backoff,
    /// Metrics.
    pub metrics: Metrics,
    /// `server.max_concurrency` permits for requests going upstream, taken once the body is
    /// in; a request that finds none is refused at once.
    pub limiter: tokio::sync::Semaphore,
    /// `server.max_concurrency` permits for bodies being received, apart from `limiter`, so
    /// slow bodies cannot hold back requests that have none (or whose body is in).
    pub body_limiter: tokio::sync::Semaphore,
    /// Set on SIGTERM: `/readyz` answers 503.
    pub draining: AtomicBool,
}

impl Gateway {
    /// Builds the shared state; fails only if the TLS client cannot be built.
    pub fn new(config: Config) -> Result<Self, reqwest::Error> {
        let s = &config.stream;
        let upstream = Upstream::new(
            &config.upstream,
            &s.base_url,
            &s.api_key,
            s.api_secret.clone(),
        )?;
        let backoff = Backoff::try_new(config.upstream.backoff_base, config.upstream.backoff_max)
            .expect("backoff settings were validated with the configuration");
        Ok(Self {
            metrics: Metrics::new(),
            limiter: tokio::sync::Semaphore::new(config.server.max_concurrency),
            body_limiter: tokio::sync::Semaphore::new(config.server.max_concurrency),
            draining: AtomicBool::new(false),
            tokens: TokenCache::new(s.api_secret.clone(), s.token_ttl_s),
            budget: RetryBudget::new(config.upstream.retry_budget_percent),
            upstream,
            backoff,
            config,
        })
    }

    /// An `Overloaded` refusal, counted.
    fn overloaded(&self, what: &str) -> ApiError {
        self.metrics
            .counter("gateway_overloaded_total", &[])
            .increment(1);
        ApiError::Overloaded(format!(
            "more than {} {what} (server.max_concurrency); retry later",
            self.config.server.max_concurrency
        ))
    }

    /// Reads a request body: at most `server.max_body_bytes` (413), complete by `deadline`
    /// (408), and only while one of `server.max_concurrency` body permits is free (503).
    pub async fn receive_body(
        &self,
        headers: &HeaderMap,
        body: Body,
        deadline: Instant,
    ) -> Result<Bytes, ApiError> {
        // A request without a body (most GETs) takes no body permit.
        if http_body::Body::is_end_stream(&body) {
            return Ok(Bytes::new());
        }
        let _receiving = self
            .body_limiter
            .try_acquire()
            .map_err(|_| self.overloaded("request bodies being received"))?;
        tokio::time::timeout_at(
            deadline,
            read_body(headers, body, self.config.server.max_body_bytes),
        )
        .await
        .map_err(|_| ApiError::RequestTimeout(self.config.upstream.deadline.as_millis()))?
    }
}

/// The handler for every path under `/api/v1.0/`.
pub async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut info = RequestInfo {
        endpoint: "unknown",
        attempts: 0,
    };
    let mut resp = match proxy(&gw, &parts, body, &mut info).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(info);
    resp
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(_) => Err(ApiError::InvalidInput(crate::stream::InvalidInput::new(
            "body",
            "could not be read",
        ))),
    }
}

/// Longest path and query the gateway forwards (nginx's default header buffer is 8 KiB).
pub const MAX_TARGET_BYTES: usize = 8192;

async fn proxy(
    gw: &Gateway,
    parts: &Parts,
    body: Body,
    trace: &mut RequestInfo,
) -> Result<Response, ApiError> {
    // One deadline for the whole request: reading the body, every attempt, every backoff.
    let deadline = Instant::now() + gw.config.upstream.deadline;
    let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > MAX_TARGET_BYTES {
        return Err(ApiError::UriTooLong(MAX_TARGET_BYTES));
    }
    let method = Method::parse(parts.method.as_str());
    let route = route(method, parts.uri.path()).map_err(|e| match e {
        RouteError::NotFound => ApiError::NotFound(parts.uri.path().to_owned()),
        RouteError::MethodNotAllowed { allow } => ApiError::MethodNotAllowed(allow),
        RouteError::Invalid(i) => ApiError::InvalidInput(i),
    })?;
    let ep = route.endpoint;
    trace.endpoint = ep.name;
    let pairs = query::check(ep, parts.uri.query())?;

    // Reading the body is part of the request, bounded by its deadline, and holds a body
    // permit, not one of the permits below. A body on a GET or DELETE is read too, and
    // dropped: left unread, the HTTP layer closes the connection after the answer, and a
    // client's next request on it fails (stream-python sends `{}` with every DELETE).
    let raw = gw.receive_body(&parts.headers, body, deadline).await?;
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
    };

    let s = &gw.config.stream;
    let credential = match (ep.auth, s.batch_auth) {
        (AuthKind::Application, BatchAuth::Signature) => Credential::Signature,
        _ => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            Credential::Jwt(gw.tokens.get(&route.scope(), now))
        }
    };
    // Refuse at once beyond the limit rather than queue without bound.
    let _permit = gw
        .limiter
        .try_acquire()
        .map_err(|_| gw.overloaded("requests in flight"))?;
    let prepared = Prepared {
        method: parts.method.clone(),
        query_at: route.path.len(),
        target: format!(
            "{}?{}",
            route.path,
            query::forward_string(&pairs, &s.api_key)
        ),
        body,
        credential,
        request_id: parts.headers.get("x-request-id").cloned(),
    };
    send_with_retries(gw, &prepared, idempotent, deadline, trace).await
}

async fn send_with_retries(
    gw: &Gateway,
    req: &Prepared,
    idempotent: bool,
    deadline: Instant,
    trace: &mut RequestInfo,
) -> Result<Response, ApiError> {
    let u = &gw.config.upstream;
    gw.budget.record_request(Instant::now());
    let mut retries = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        trace.attempts += 1;
        let sent = Instant::now();
        let result = gw.upstream.send(req, u.timeout.min(remaining)).await;
        let ep = [("endpoint", trace.endpoint)];
        gw.metrics
            .counter("gateway_upstream_attempts_total", &ep)
            .increment(1);
        gw.metrics
            .histogram("gateway_upstream_duration_seconds", &ep)
            .record(sent.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(a) => Outcome::Status {
                status: a.status.as_u16(),
                wait: (a.status.as_u16() == 429)
                    .then(|| {
                        let h = |n: &str| a.headers.get(n).and_then(|v| v.to_str().ok());
                        retry::retry_wait(
                            h("retry-after"),
                            h("x-ratelimit-reset"),
                            SystemTime::now(),
                        )
                    })
                    .flatten(),
            },
            Err(o) => *o,
        };
        let attempted = Attempted {
            retries,
            max_retries: u.max_retries,
            idempotent,
            remaining: deadline.saturating_duration_since(Instant::now()),
            backoff: gw.backoff.delay(retries, fastrand::f64()),
        };
        match retry::decide(outcome, attempted, || gw.budget.try_retry(Instant::now())) {
            Decision::Retry { after, reason } => {
                gw.metrics
                    .counter(
                        "gateway_retries_total",
                        &[("endpoint", trace.endpoint), ("reason", reason.as_str())],
                    )
                    .increment(1);
                tracing::debug!(
                    attempt = trace.attempts,
                    retryable = true,
                    reason = reason.as_str(),
                    wait_ms = after.as_millis() as u64,
                    "retrying"
                );
                tokio::time::sleep(after).await;
                retries += 1;
            }
            Decision::Stop(stop) => {
                if stop == Stop::Budget {
                    gw.metrics
                        .counter(
                            "gateway_retry_budget_exhausted_total",
                            &[("endpoint", trace.endpoint)],
                        )
                        .increment(1);
                }
                if stop != Stop::Final {
                    tracing::debug!(attempt = trace.attempts, retryable = false, stop = ?stop, "not retrying");
                }
                if let Err(Outcome::Unusable(u)) = &result {
                    tracing::warn!(attempt = trace.attempts, unusable = ?u, "Stream's answer refused");
                }
                return finish(result, trace.attempts, u.max_response_bytes);
            }
        }
    }
}

fn finish(
    result: Result<forward::Answer, Outcome>,
    attempts: u32,
    max_response_bytes: usize,
) -> Result<Response, ApiError> {
    match result {
        Ok(a) => {
            let mut resp = Response::new(Body::from(a.body));
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
