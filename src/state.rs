//! The application state: what every feature shares, built once from the configuration.
//!
//! The proxy's service and the routes (`/tokens`, the operations routes, webhooks) take the
//! `Arc<AppState>`; the access log takes only the metrics. The state depends on the building blocks (config, auth,
//! upstream, recorder), never on a feature, so no module cycle runs through it.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Instant;

use arc_swap::ArcSwap;

use crate::callers::Callers;
use crate::config::{Config, TokensConfig};
use crate::error::ApiError;
use crate::oidc::Oidc;
use crate::recorder::Metrics;
use crate::trace::Tracer;
use crate::upstream::auth_failures::AuthFailures;
use crate::upstream::client::{ClientError, Upstream};
use crate::upstream::RetryLoop;
use crate::webhooks::Hooks;
use stream_wire::auth::Keys;

/// The trace context a forwarded webhook carries: the request's trace, with the gateway's
/// request span as the target's parent.
fn webhook_trace_headers() -> Vec<(http::HeaderName, http::HeaderValue)> {
    let Some(ctx) = crate::trace::current() else {
        return Vec::new();
    };
    let mut out = vec![(
        crate::trace::TRACEPARENT.clone(),
        ctx.traceparent(ctx.span_id),
    )];
    if let Some(state) = ctx.tracestate {
        out.push((crate::trace::TRACESTATE.clone(), state));
    }
    out
}

/// Everything the features share.
#[derive(Debug)]
pub struct AppState {
    /// As loaded at start-up. What a reload changes is held apart: the secret in `keys`, the
    /// `[tokens]` policy in `token_policy`.
    pub(crate) config: Config,
    /// The secret in force and one upstream token per scope minted with it (and the previous
    /// secret, which the webhook routes still take for a while after a rotation).
    pub(crate) keys: Arc<Keys>,
    /// The `[tokens]` policy in force.
    pub(crate) token_policy: ArcSwap<TokensConfig>,
    pub(crate) upstream: Upstream,
    /// The client for `/api/v2/` calls (`stream.v2_base_url`), when `stream.v2` is on.
    pub(crate) v2_upstream: Option<Upstream>,
    pub(crate) retries: RetryLoop,
    pub(crate) metrics: Arc<Metrics>,
    /// Where finished spans go (nowhere unless `telemetry.otlp_endpoint` is set).
    pub(crate) tracer: Tracer,
    /// `server.max_concurrency` permits for requests going upstream, taken once the body is
    /// in and held until Stream's answer has streamed out; a request that finds none is
    /// refused at once.
    pub(crate) limiter: Arc<tokio::sync::Semaphore>,
    /// `server.max_concurrency` permits for bodies being received, apart from `limiter`, so
    /// slow bodies cannot hold back requests that have none (or whose body is in).
    pub(crate) body_limiter: tokio::sync::Semaphore,
    /// Set on SIGTERM: `/readyz` answers 503.
    pub(crate) draining: AtomicBool,
    /// Who may call what, how fast, and Stream's rate-limit window (`[callers]`).
    pub(crate) callers: Callers,
    /// The names the internal listener answers to (`server.allowed_hosts`).
    pub(crate) hosts: crate::guard::Hosts,
    /// `tokens.max_in_flight` permits for `/tokens`, bodies included, apart from the proxy's,
    /// so slow bodies on one cannot starve the other.
    pub(crate) tokens_limiter: tokio::sync::Semaphore,
    /// The identity provider `/tokens` verifies callers' tokens with (`[tokens.oidc]`).
    pub(crate) oidc: Oidc,
    /// Stream refusing the gateway's signature (a wrong secret): logged once per episode.
    pub(crate) auth_failures: AuthFailures,
    /// The webhook routes' shared part (`[webhooks]`): one for every listener serving them.
    pub(crate) webhooks: Arc<Hooks>,
}

impl AppState {
    /// Builds the shared state, and starts the span exporter when one is configured (so it
    /// runs inside a runtime); fails only if a TLS client cannot be built.
    pub fn new(config: Config) -> Result<Self, ClientError> {
        let s = &config.stream;
        // In `Host::ALL` order.
        let bases = [
            s.base_url.as_str(),
            s.analytics_base_url.as_str(),
            s.personalization_base_url.as_str(),
        ];
        let upstream = Upstream::new(&config.upstream, bases, &s.api_key)?;
        let v2_upstream =
            s.v2.then(|| {
                let v2 = s.v2_base_url.as_str();
                Upstream::new(&config.upstream, [v2, v2, v2], &s.api_key)
            })
            .transpose()?;
        let metrics = Arc::new(Metrics::new());
        let tracer = Tracer::start(&config.telemetry, &metrics)?;
        let keys = Arc::new(Keys::new(s.api_secret.clone(), s.token_ttl_s));
        let webhooks = Arc::new(Hooks::new(
            config.webhooks.clone(),
            config.server.max_concurrency,
            &s.api_key,
            s.previous_secret_grace,
            keys.clone(),
            metrics.clone(),
            webhook_trace_headers,
        )?);
        Ok(Self {
            callers: Callers::new(config.callers.as_ref(), metrics.clone()),
            auth_failures: AuthFailures::new(&metrics),
            limiter: Arc::new(tokio::sync::Semaphore::new(config.server.max_concurrency)),
            body_limiter: tokio::sync::Semaphore::new(config.server.max_concurrency),
            draining: AtomicBool::new(false),
            hosts: crate::guard::Hosts::new(
                config.server.listen,
                config.server.allowed_hosts.as_deref(),
            ),
            keys,
            webhooks,
            tokens_limiter: tokio::sync::Semaphore::new(config.tokens.max_in_flight),
            oidc: Oidc::new(config.tokens.oidc.as_ref(), metrics.clone()),
            token_policy: ArcSwap::from_pointee(config.tokens.clone()),
            retries: RetryLoop::new(&config.upstream, tracer.clone()),
            tracer,
            upstream,
            metrics,
            v2_upstream,
            config,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The caller policy, to replace it at run time.
    pub fn callers(&self) -> &Callers {
        &self.callers
    }

    /// The app's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The secret in force and its token cache.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The webhook routes' shared part, for `webhooks::router`.
    pub fn webhooks(&self) -> &Arc<Hooks> {
        &self.webhooks
    }

    /// The `[tokens]` policy in force.
    pub fn token_policy(&self) -> Arc<TokensConfig> {
        self.token_policy.load_full()
    }

    /// An `Overloaded` refusal, counted.
    pub(crate) fn overloaded(&self, what: &str) -> ApiError {
        self.metrics
            .counter("gateway_overloaded_total", &[])
            .increment(1);
        ApiError::Overloaded(format!(
            "more than {} {what} (server.max_concurrency); retry later",
            self.config.server.max_concurrency
        ))
    }

    /// The one way a request body is read (the proxy's and `/tokens`'): `admit` decides first
    /// whether the caller may make this request at all, and a refused request's body is left
    /// unread (its connection is closed after the answer), so a caller that may not call holds
    /// nothing while it sends a slow body. Then the body: at most `server.max_body_bytes`
    /// (413), complete by the deadline of `rules` (408), and for the proxy only while one of
    /// `server.max_concurrency` body permits is free (503), given back once the body is in.
    /// Returns the verdict whatever happens (it names the caller for the access log), with
    /// the body or the refusal.
    pub(crate) async fn receive<V: Verdict>(
        &self,
        rules: BodyRules,
        headers: &HeaderMap,
        body: Body,
        admit: impl Future<Output = V>,
    ) -> (V, Result<Bytes, V::Refusal>) {
        let mut verdict = admit.await;
        if let Some(refusal) = verdict.refusal() {
            return (verdict, Err(refusal));
        }
        // A request without a body (most GETs) takes no body permit.
        if http_body::Body::is_end_stream(&body) {
            return (verdict, Ok(Bytes::new()));
        }
        let (deadline, key) = match rules {
            BodyRules::Proxy { deadline } => (deadline, "upstream.deadline_ms"),
            BodyRules::Tokens { timeout } => (Instant::now() + timeout, "tokens.body_timeout_ms"),
        };
        let _receiving = match rules {
            BodyRules::Proxy { .. } => match self.body_limiter.try_acquire() {
                Ok(p) => Some(p),
                Err(_) => {
                    let refusal = self.overloaded("request bodies being received");
                    return (verdict, Err(refusal.into()));
                }
            },
            BodyRules::Tokens { .. } => None,
        };
        let limit = self.config.server.max_body_bytes;
        let read = tokio::time::timeout_at(deadline, read_body(headers, body, limit))
            .await
            .unwrap_or_else(|_| {
                let ms = match rules {
                    BodyRules::Proxy { .. } => self.config.upstream.deadline.as_millis(),
                    BodyRules::Tokens { timeout } => timeout.as_millis(),
                };
                Err(ApiError::RequestTimeout(ms, key))
            });
        (verdict, read.map_err(Into::into))
    }
}

/// Whose body [`AppState::receive`] reads, which says its deadline and its pool.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyRules {
    /// A proxied request's: by the request's deadline (`upstream.deadline_ms`, which also
    /// bounds every attempt), under a body permit of `server.max_concurrency`.
    Proxy {
        /// The whole request's deadline.
        deadline: Instant,
    },
    /// `/tokens`': within `tokens.body_timeout_ms` of the caller's admission, under the
    /// `tokens.max_in_flight` permit its admission took.
    Tokens {
        /// `tokens.body_timeout_ms` in force.
        timeout: Duration,
    },
}

/// What admitting a caller decided, as [`AppState::receive`] needs it: a refusal stops the
/// request before its body is read.
pub(crate) trait Verdict {
    /// The answer to a refused request (body errors become one too).
    type Refusal: From<ApiError>;
    /// The refusal, taken out, when the caller may not make this request.
    fn refusal(&mut self) -> Option<Self::Refusal>;
}

impl Verdict for crate::callers::Admission {
    type Refusal = ApiError;
    fn refusal(&mut self) -> Option<ApiError> {
        self.refused.take()
    }
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
        Err(_) => Err(ApiError::InvalidInput(stream_wire::InvalidInput::new(
            "body",
            "could not be read",
        ))),
    }
}
