//! The way to Stream: the pooled client ([`client`]), the pure retry policy ([`retry`]), the
//! loop between them ([`RetryLoop`]), and the watch for a wrong secret ([`auth_failures`]).
//!
//! The loop reaches the client only through [`Transport`], one attempt at a time, so tests
//! drive it with a scripted upstream on paused time, and the client behind it can change
//! without touching the policy.

pub(crate) mod auth_failures;
pub(crate) mod client;
pub mod retry;
pub(crate) mod settings;
pub(crate) mod stream_settings;

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::recorder::Metrics;
use crate::trace::{SpanId, SpanKind, SpanRecord, Tracer};
use client::{Answer, Prepared};
use retry::{Attempted, Backoff, Decision, Outcome, RetryBudget, Stop};
use settings::UpstreamConfig;

/// One attempt against Stream: what the retry loop needs of an HTTP client.
pub trait Transport {
    /// Sends `req` once as the attempt whose span is `span` (its `traceparent` names it), with
    /// `timeout` for the whole exchange, and classifies what happened.
    fn send(
        &self,
        req: &Prepared,
        span: SpanId,
        timeout: Duration,
    ) -> impl Future<Output = Result<Answer, Outcome>> + Send;
}

/// A transport that shows each of Stream's answers to `tap` (when there is one) before the
/// retry loop sees it: every attempt's headers, not only the last one's.
pub struct Tapped<'a, T, F> {
    /// The transport that sends.
    pub inner: &'a T,
    /// What sees each answer.
    pub tap: Option<F>,
}

impl<T: Transport + Sync, F: Fn(&Answer) + Sync> Transport for Tapped<'_, T, F> {
    async fn send(
        &self,
        req: &Prepared,
        span: SpanId,
        timeout: Duration,
    ) -> Result<Answer, Outcome> {
        let result = self.inner.send(req, span, timeout).await;
        if let (Ok(a), Some(tap)) = (&result, &self.tap) {
            tap(a);
        }
        result
    }
}

/// What the retry loop ends with: the last attempt's result, and how many attempts it made.
#[derive(Debug)]
pub struct Sent {
    /// Stream's last answer, or how the last attempt failed.
    pub result: Result<Answer, Outcome>,
    /// Attempts made, at least one.
    pub attempts: u32,
}

/// The retry loop's settings and its shared budget.
#[derive(Debug)]
pub struct RetryLoop {
    budget: RetryBudget,
    backoff: Backoff,
    timeout: Duration,
    max_retries: u32,
    /// Where each attempt's span goes.
    tracer: Tracer,
}

impl RetryLoop {
    /// The loop for these (validated) settings, recording attempts' spans with `tracer`.
    pub fn new(cfg: &UpstreamConfig, tracer: Tracer) -> Self {
        Self {
            tracer,
            budget: RetryBudget::new(cfg.retry_budget_percent),
            backoff: Backoff::try_new(cfg.backoff_base, cfg.backoff_max)
                .expect("backoff settings were validated with the configuration"),
            timeout: cfg.timeout,
            max_retries: cfg.max_retries,
        }
    }

    /// Sends `req` until an attempt's outcome is final for the policy, the retries or the
    /// budget are spent, or `deadline` passes; returns the last attempt's result with the
    /// number of attempts. Records attempts, their durations and retries in `metrics` under
    /// `endpoint`, and each attempt's span, a child of the request's, when its trace is
    /// recorded.
    pub async fn run(
        &self,
        transport: &impl Transport,
        metrics: &Metrics,
        req: &Prepared,
        idempotent: bool,
        deadline: Instant,
        endpoint: &'static str,
    ) -> Sent {
        self.budget.record_request(Instant::now());
        let mut retries = 0;
        let mut attempts = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            attempts += 1;
            let attempt = Attempt {
                endpoint,
                number: attempts,
            };
            let sent = Instant::now();
            let span = SpanId::random();
            let wall = self.tracer.recording(&req.trace).then(SystemTime::now);
            let result = transport.send(req, span, self.timeout.min(remaining)).await;
            let took = sent.elapsed();
            metrics.upstream_attempt(endpoint, took);
            let outcome = match &result {
                Ok(a) => a.outcome(SystemTime::now()),
                Err(o) => *o,
            };
            if let Some(start) = wall {
                let span = attempt_span(req, span, attempt, outcome, start, took);
                self.tracer.record(span);
            }
            let attempted = Attempted {
                retries,
                max_retries: self.max_retries,
                idempotent,
                remaining: deadline.saturating_duration_since(Instant::now()),
                backoff: self.backoff.delay(retries, fastrand::f64()),
            };
            match retry::decide(outcome, attempted, || self.budget.try_retry(Instant::now())) {
                Decision::Retry { after, reason } => {
                    metrics
                        .counter(
                            "gateway_retries_total",
                            &[("endpoint", endpoint), ("reason", reason.as_str())],
                        )
                        .increment(1);
                    tracing::debug!(
                        attempt = attempts,
                        retryable = true,
                        reason = reason.as_str(),
                        wait_ms = after.as_millis() as u64,
                        "retrying"
                    );
                    tokio::time::sleep(after).await;
                    retries += 1;
                }
                Decision::Stop(stop) => {
                    stopped(metrics, stop, &result, attempt);
                    return Sent { result, attempts };
                }
            }
        }
    }
}

/// Which attempt of which endpoint's request, for its span, metrics and log fields.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    endpoint: &'static str,
    /// 1 for the first.
    number: u32,
}

/// The span of one attempt, a child of the request's.
fn attempt_span(
    req: &Prepared,
    span_id: SpanId,
    attempt: Attempt,
    outcome: Outcome,
    start: SystemTime,
    took: Duration,
) -> SpanRecord {
    let (outcome, status) = match outcome {
        Outcome::Status { status, .. } => ("answered", Some(status)),
        Outcome::Timeout => ("timeout", None),
        Outcome::NotSent => ("not_sent", None),
        Outcome::Dropped => ("dropped", None),
        Outcome::Unusable(_) => ("unusable", None),
    };
    SpanRecord {
        trace_id: req.trace.trace_id,
        span_id,
        parent: Some(req.trace.span_id),
        tracestate: req.trace.tracestate.clone(),
        start,
        end: start + took,
        kind: SpanKind::Attempt {
            method: req.method.clone(),
            endpoint: attempt.endpoint,
            attempt: attempt.number,
            outcome,
            status,
        },
    }
}

/// Records why the loop stopped.
fn stopped(metrics: &Metrics, stop: Stop, result: &Result<Answer, Outcome>, attempt: Attempt) {
    if stop == Stop::Budget {
        metrics
            .counter(
                "gateway_retry_budget_exhausted_total",
                &[("endpoint", attempt.endpoint)],
            )
            .increment(1);
    }
    if stop != Stop::Final {
        tracing::debug!(attempt = attempt.number, retryable = false, stop = ?stop, "not retrying");
    }
    if let Err(Outcome::Unusable(u)) = result {
        tracing::warn!(attempt = attempt.number, unusable = ?u, "Stream's answer refused");
    }
}

#[cfg(test)]
mod tests {
    //! The loop against a scripted upstream, on paused time: every wait is exact and instant.

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::header::{HeaderMap, HeaderValue};
    use parking_lot::Mutex;

    use super::*;
    use crate::upstream::client::Credential;

    /// One scripted attempt: how long Stream takes, then what it answers (a status, with a
    /// `Retry-After` for 429s) or how the attempt fails.
    #[derive(Clone, Copy)]
    struct Step {
        takes: Duration,
        answer: Result<(u16, Option<&'static str>), Outcome>,
    }

    fn status(s: u16) -> Step {
        Step {
            takes: Duration::from_millis(10),
            answer: Ok((s, None)),
        }
    }

    fn limited(after: &'static str) -> Step {
        Step {
            takes: Duration::from_millis(10),
            answer: Ok((429, Some(after))),
        }
    }

    fn failing(o: Outcome) -> Step {
        Step {
            takes: Duration::from_millis(10),
            answer: Err(o),
        }
    }

    fn slow(takes: Duration) -> Step {
        Step {
            takes,
            answer: Ok((200, None)),
        }
    }

    #[derive(Default)]
    struct Script {
        steps: Mutex<VecDeque<Step>>,
        sent: AtomicUsize,
    }

    impl Script {
        fn new(steps: &[Step]) -> Self {
            Self {
                steps: Mutex::new(steps.iter().copied().collect()),
                sent: AtomicUsize::new(0),
            }
        }
        fn sent(&self) -> usize {
            self.sent.load(Ordering::SeqCst)
        }
    }

    impl Transport for Script {
        async fn send(
            &self,
            _: &Prepared,
            _: SpanId,
            timeout: Duration,
        ) -> Result<Answer, Outcome> {
            self.sent.fetch_add(1, Ordering::SeqCst);
            let step = self.steps.lock().pop_front().unwrap_or(status(200));
            if step.takes > timeout {
                tokio::time::sleep(timeout).await;
                return Err(Outcome::Timeout);
            }
            tokio::time::sleep(step.takes).await;
            let (code, retry_after) = step.answer?;
            let mut headers = HeaderMap::new();
            if let Some(v) = retry_after {
                headers.insert("retry-after", HeaderValue::from_static(v));
            }
            Ok(Answer {
                status: http::StatusCode::from_u16(code).unwrap(),
                headers,
                body: axum::body::Body::empty(),
            })
        }
    }

    fn retry_loop(max_retries: u32) -> RetryLoop {
        RetryLoop {
            budget: RetryBudget::new(20),
            backoff: Backoff::try_new(Duration::from_millis(50), Duration::from_secs(2)).unwrap(),
            timeout: Duration::from_secs(3),
            max_retries,
            tracer: Tracer::off(),
        }
    }

    fn request() -> Prepared {
        Prepared {
            method: http::Method::GET,
            host: stream_wire::endpoint::Host::Api,
            path: "/api/v1.0/feed/user/1/".into(),
            query: "api_key=k".into(),
            body: None,
            content_type: None,
            credential: Credential::Signature(stream_wire::auth::Secret::new("s")),
            request_id: None,
            trace: crate::trace::Context::new(true),
        }
    }

    /// Runs the loop; returns the final status (or outcome), the attempts and the time taken.
    async fn run(
        l: &RetryLoop,
        script: &Script,
        idempotent: bool,
        deadline: Duration,
    ) -> (Result<u16, Outcome>, u32, Duration) {
        let started = Instant::now();
        let sent = l
            .run(
                script,
                &Metrics::new(),
                &request(),
                idempotent,
                started + deadline,
                "test",
            )
            .await;
        (
            sent.result.map(|a| a.status.as_u16()),
            sent.attempts,
            started.elapsed(),
        )
    }

    const DEADLINE: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn an_idempotent_request_is_retried_after_503s_until_it_succeeds() {
        let script = Script::new(&[status(503), failing(Outcome::Dropped), status(200)]);
        let (r, attempts, _) = run(&retry_loop(2), &script, true, DEADLINE).await;
        assert_eq!((r, attempts), (Ok(200), 3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_is_not_idempotent_is_sent_once_after_a_503_or_a_timeout() {
        let script = Script::new(&[status(503)]);
        let (r, attempts, _) = run(&retry_loop(2), &script, false, DEADLINE).await;
        assert_eq!(
            (r, attempts),
            (Ok(503), 1),
            "Stream's 503 is returned as it is"
        );
        let script = Script::new(&[slow(Duration::from_secs(5))]);
        let (r, attempts, took) = run(&retry_loop(2), &script, false, DEADLINE).await;
        assert_eq!((r, attempts), (Err(Outcome::Timeout), 1));
        assert_eq!(took, Duration::from_secs(3), "one attempt timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_failed_before_sending_is_retried_even_when_not_idempotent() {
        let script = Script::new(&[failing(Outcome::NotSent), status(201)]);
        let (r, attempts, _) = run(&retry_loop(2), &script, false, DEADLINE).await;
        assert_eq!((r, attempts), (Ok(201), 2));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_max_retries_and_the_last_answer_is_returned() {
        let script = Script::new(&[status(502); 10]);
        let (r, attempts, _) = run(&retry_loop(2), &script, true, DEADLINE).await;
        assert_eq!((r, attempts, script.sent()), (Ok(502), 3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_inside_the_deadline_is_waited_out_even_when_not_idempotent() {
        let script = Script::new(&[limited("2"), status(201)]);
        let (r, attempts, took) = run(&retry_loop(2), &script, false, DEADLINE).await;
        assert_eq!((r, attempts), (Ok(201), 2));
        assert!(
            took >= Duration::from_secs(2),
            "waited what it said: {took:?}"
        );
        assert!(took < Duration::from_secs(3), "and not much more: {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_past_the_deadline_is_returned_at_once() {
        let script = Script::new(&[limited("60")]);
        let (r, attempts, took) = run(&retry_loop(2), &script, true, DEADLINE).await;
        assert_eq!((r, attempts), (Ok(429), 1));
        assert_eq!(took, Duration::from_millis(10), "no wait at all");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_that_time_out_are_retried_within_the_retries() {
        let script = Script::new(&[slow(Duration::from_secs(5)); 5]);
        let (r, attempts, took) = run(&retry_loop(2), &script, true, DEADLINE).await;
        assert_eq!((r, attempts), (Err(Outcome::Timeout), 3));
        assert!(
            took >= Duration::from_secs(9),
            "three 3 s timeouts: {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_the_whole_request() {
        let script = Script::new(&[slow(Duration::from_secs(5)); 10]);
        let deadline = Duration::from_millis(600);
        let (r, _, took) = run(&retry_loop(5), &script, true, deadline).await;
        assert_eq!(r, Err(Outcome::Timeout));
        // Each attempt alone would take 3 s (its timeout): the deadline cut it at 600 ms.
        assert_eq!(took, deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tap_sees_every_answer_retries_included() {
        let script = Script::new(&[limited("1"), status(201)]);
        let seen = Mutex::new(Vec::new());
        let tapped = Tapped {
            inner: &script,
            tap: Some(|a: &Answer| seen.lock().push(a.status.as_u16())),
        };
        let deadline = Instant::now() + DEADLINE;
        let sent = retry_loop(2)
            .run(
                &tapped,
                &Metrics::new(),
                &request(),
                false,
                deadline,
                "test",
            )
            .await;
        assert_eq!(
            (sent.result.unwrap().status.as_u16(), sent.attempts),
            (201, 2)
        );
        assert_eq!(*seen.lock(), [429, 201]);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_between_attempts_is_at_most_its_ceiling() {
        let script = Script::new(&[status(503), status(503), status(200)]);
        let (r, _, took) = run(&retry_loop(2), &script, true, DEADLINE).await;
        assert_eq!(r, Ok(200));
        // Three 10 ms attempts and two full-jitter waits of at most 50 and 100 ms.
        assert!(took <= Duration::from_millis(30 + 50 + 100), "{took:?}");
    }
}
