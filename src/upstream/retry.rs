//! The retry policy, small and pure: what failed, whether resending can duplicate an effect,
//! how many retries are left, the deadline, and the retry budget decide; the caller sleeps.
//!
//! - A request whose connection failed before it was sent is always retried.
//! - After a timeout, a dropped connection, 502, 503 or 504, only an idempotent request is.
//! - After 429, any request is (Stream refused it, nothing happened), but only when
//!   `Retry-After` or `X-Ratelimit-Reset` says when, and that falls inside the deadline.
//! - Backoff is full-jitter exponential; retries stop when the budget is spent.

use parking_lot::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The connection failed before the request was written: Stream saw nothing.
    NotSent,
    /// No answer within the attempt's timeout: Stream may have acted.
    Timeout,
    /// The connection broke after the request was written: Stream may have acted.
    Dropped,
    /// Stream answered with what the gateway does not pass back: a status outside 200-599
    /// or a body over `upstream.max_response_bytes`. Resending would get the same.
    Unusable(Unusable),
    /// Stream answered. `wait` is when a 429 says to come back, if it says.
    Status {
        /// HTTP status.
        status: u16,
        /// From `Retry-After` or `X-Ratelimit-Reset`.
        wait: Option<Duration>,
    },
}

/// What was wrong with an answer the gateway refuses to pass back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// An informational (1xx, 101 included) or out-of-range (above 599) status: a caller's
    /// HTTP client cannot take it as the final answer (a 101 would end its connection).
    Status(u16),
    /// The body is larger than `upstream.max_response_bytes`.
    TooLarge,
}

/// Why a retry happens, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Connection failed before sending.
    Connect,
    /// Attempt timed out.
    Timeout,
    /// Connection dropped after sending.
    Dropped,
    /// 502, 503 or 504.
    Unavailable,
    /// 429.
    RateLimited,
}

impl Reason {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Dropped => "dropped",
            Reason::Unavailable => "unavailable",
            Reason::RateLimited => "rate_limited",
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Stop and answer with this outcome.
    Stop(Stop),
    /// Sleep `after`, then resend.
    Retry {
        /// How long to wait.
        after: Duration,
        /// Why.
        reason: Reason,
    },
}

/// Why the policy stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The outcome is final (a success, or an answer not worth retrying).
    Final,
    /// Resending could duplicate an effect.
    NotIdempotent,
    /// `max_retries` reached.
    RetriesExhausted,
    /// Waiting would pass the deadline.
    Deadline,
    /// The retry budget is spent.
    Budget,
    /// A 429 gave no time to come back.
    NoRetryAfter,
}

/// Full-jitter exponential backoff: the `n`th retry waits a uniform share of
/// `min(max, base * 2^n)`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Refuses a zero base or a base above the maximum.
    pub fn try_new(base: Duration, max: Duration) -> Result<Self, &'static str> {
        if base.is_zero() {
            return Err("backoff base must be greater than 0");
        }
        if base > max {
            return Err("backoff base must not exceed the maximum");
        }
        Ok(Self { base, max })
    }

    /// The ceiling for retry `n` (0 for the first retry).
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait for retry `n`, with `unit` in `[0, 1)` drawn by the caller.
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        self.ceiling(n).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// What the policy knows of the request.
#[derive(Debug, Clone, Copy)]
pub struct Attempted {
    /// Retries already made.
    pub retries: u32,
    /// Retries allowed.
    pub max_retries: u32,
    /// Resending cannot duplicate an effect.
    pub idempotent: bool,
    /// Time left before the deadline.
    pub remaining: Duration,
    /// The backoff this retry would wait (already jittered).
    pub backoff: Duration,
}

/// Decides what follows `outcome`. `budget` is asked last, only when everything else says retry,
/// so a refused retry does not spend it.
pub fn decide(outcome: Outcome, a: Attempted, budget: impl FnOnce() -> bool) -> Decision {
    let (reason, needs_idempotent) = match outcome {
        Outcome::NotSent => (Reason::Connect, false),
        Outcome::Timeout => (Reason::Timeout, true),
        Outcome::Dropped => (Reason::Dropped, true),
        Outcome::Status {
            status: 502..=504, ..
        } => (Reason::Unavailable, true),
        Outcome::Status { status: 429, .. } => (Reason::RateLimited, false),
        Outcome::Status { .. } | Outcome::Unusable(_) => return Decision::Stop(Stop::Final),
    };
    if needs_idempotent && !a.idempotent {
        return Decision::Stop(Stop::NotIdempotent);
    }
    if a.retries >= a.max_retries {
        return Decision::Stop(Stop::RetriesExhausted);
    }
    let after = match outcome {
        Outcome::Status { status: 429, wait } => match wait {
            Some(w) => w,
            None => return Decision::Stop(Stop::NoRetryAfter),
        },
        _ => a.backoff,
    };
    if after >= a.remaining {
        return Decision::Stop(Stop::Deadline);
    }
    if !budget() {
        return Decision::Stop(Stop::Budget);
    }
    Decision::Retry { after, reason }
}

/// When a 429 says to come back: `Retry-After` (seconds or an HTTP date), else
/// `X-Ratelimit-Reset` (unix seconds). `None` when neither says.
pub fn retry_wait(
    retry_after: Option<&str>,
    reset: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(v) = retry_after.map(str::trim) {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    let reset = reset?.trim().parse::<u64>().ok()?;
    // A reset beyond what the clock can hold says nothing useful (and `+` would panic).
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(reset))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Seconds in the budget's window.
const WINDOW_S: usize = 10;
/// Retries allowed per second whatever the traffic, so a quiet gateway can still retry.
const FLOOR_PER_S: u64 = 10;

/// The retry budget: over the last 10 s, retries may add at most `percent` of requests, plus a
/// floor of 10 per second. It keeps a struggling Stream from being hit harder by its clients'
/// retries.
#[derive(Debug)]
pub struct RetryBudget {
    percent: u64,
    start: Instant,
    slots: Mutex<[(u64, u64, u64); WINDOW_S]>,
}

impl RetryBudget {
    /// A budget of `percent` of requests.
    pub fn new(percent: u32) -> Self {
        Self {
            percent: u64::from(percent),
            start: Instant::now(),
            slots: Mutex::new([(u64::MAX, 0, 0); WINDOW_S]),
        }
    }

    fn with_slot<T>(
        &self,
        now: Instant,
        f: impl FnOnce(&mut [(u64, u64, u64); WINDOW_S], usize, u64) -> T,
    ) -> T {
        let sec = now.saturating_duration_since(self.start).as_secs();
        let i = (sec % WINDOW_S as u64) as usize;
        // parking_lot's lock does not poison: one panic cannot fail every later request.
        let mut slots = self.slots.lock();
        if slots[i].0 != sec {
            slots[i] = (sec, 0, 0);
        }
        f(&mut slots, i, sec)
    }

    /// Counts one request.
    pub fn record_request(&self, now: Instant) {
        self.with_slot(now, |s, i, _| s[i].1 += 1);
    }

    /// Takes one retry from the budget if there is one left.
    pub fn try_retry(&self, now: Instant) -> bool {
        let percent = self.percent;
        self.with_slot(now, |s, i, sec| {
            let live = s
                .iter()
                .filter(|(at, _, _)| *at != u64::MAX && sec - at.min(&sec) < WINDOW_S as u64);
            let (requests, retries) = live.fold((0, 0), |(q, r), (_, a, b)| (q + a, r + b));
            let allowed = requests * percent / 100 + FLOOR_PER_S * WINDOW_S as u64;
            if retries < allowed {
                s[i].2 += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn attempted(idempotent: bool) -> Attempted {
        Attempted {
            retries: 0,
            max_retries: 2,
            idempotent,
            remaining: 10 * S,
            backoff: Duration::from_millis(40),
        }
    }
    fn status(s: u16) -> Outcome {
        Outcome::Status {
            status: s,
            wait: None,
        }
    }

    #[test]
    fn a_request_never_sent_is_retried_even_when_not_idempotent() {
        assert!(matches!(
            decide(Outcome::NotSent, attempted(false), || true),
            Decision::Retry {
                reason: Reason::Connect,
                ..
            }
        ));
    }

    #[test]
    fn timeouts_drops_and_5xx_retry_only_idempotent_requests() {
        for o in [
            Outcome::Timeout,
            Outcome::Dropped,
            status(502),
            status(503),
            status(504),
        ] {
            assert!(
                matches!(decide(o, attempted(true), || true), Decision::Retry { .. }),
                "{o:?}"
            );
            assert_eq!(
                decide(o, attempted(false), || true),
                Decision::Stop(Stop::NotIdempotent),
                "{o:?}"
            );
        }
    }

    #[test]
    fn an_unusable_answer_is_final() {
        for u in [
            Unusable::Status(101),
            Unusable::Status(600),
            Unusable::TooLarge,
        ] {
            let d = decide(Outcome::Unusable(u), attempted(true), || true);
            assert_eq!(d, Decision::Stop(Stop::Final), "{u:?}");
        }
    }

    #[test]
    fn other_answers_are_final() {
        for s in [200, 201, 400, 403, 404, 500, 501] {
            assert_eq!(
                decide(status(s), attempted(true), || true),
                Decision::Stop(Stop::Final),
                "{s}"
            );
        }
    }

    #[test]
    fn a_429_waits_what_it_says_inside_the_deadline_or_is_returned() {
        let o = Outcome::Status {
            status: 429,
            wait: Some(2 * S),
        };
        assert_eq!(
            decide(o, attempted(false), || true),
            Decision::Retry {
                after: 2 * S,
                reason: Reason::RateLimited
            }
        );
        let far = Outcome::Status {
            status: 429,
            wait: Some(20 * S),
        };
        assert_eq!(
            decide(far, attempted(true), || true),
            Decision::Stop(Stop::Deadline)
        );
        assert_eq!(
            decide(status(429), attempted(true), || true),
            Decision::Stop(Stop::NoRetryAfter)
        );
    }

    #[test]
    fn retries_stop_at_the_maximum_the_deadline_and_the_budget() {
        let a = Attempted {
            retries: 2,
            ..attempted(true)
        };
        assert_eq!(
            decide(Outcome::Timeout, a, || true),
            Decision::Stop(Stop::RetriesExhausted)
        );
        let a = Attempted {
            remaining: Duration::from_millis(30),
            ..attempted(true)
        };
        assert_eq!(
            decide(Outcome::Timeout, a, || true),
            Decision::Stop(Stop::Deadline)
        );
        assert_eq!(
            decide(Outcome::Timeout, attempted(true), || false),
            Decision::Stop(Stop::Budget)
        );
    }

    #[test]
    fn the_budget_is_not_asked_when_the_policy_already_says_stop() {
        let mut asked = false;
        decide(Outcome::Timeout, attempted(false), || {
            asked = true;
            true
        });
        assert!(!asked);
    }

    #[test]
    fn backoff_grows_exponentially_to_its_maximum_with_full_jitter() {
        let b = Backoff::try_new(Duration::from_millis(50), Duration::from_millis(2000)).unwrap();
        assert_eq!(b.ceiling(0), Duration::from_millis(50));
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(5), Duration::from_millis(1600));
        assert_eq!(b.ceiling(6), Duration::from_millis(2000));
        assert_eq!(b.ceiling(100), Duration::from_millis(2000));
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(200));
        for n in 0..64 {
            assert!(b.delay(n, 0.999_999) <= Duration::from_millis(2000));
        }
        assert!(Backoff::try_new(Duration::ZERO, S).is_err());
        assert!(Backoff::try_new(2 * S, S).is_err());
    }

    #[test]
    fn retry_after_is_read_as_seconds_a_date_or_the_rate_limit_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(retry_wait(Some("3"), None, now), Some(3 * S));
        let date = httpdate::fmt_http_date(now + 5 * S);
        assert_eq!(retry_wait(Some(&date), None, now), Some(5 * S));
        assert_eq!(retry_wait(None, Some("1000007"), now), Some(7 * S));
        assert_eq!(retry_wait(None, Some("999999"), now), Some(Duration::ZERO));
        assert_eq!(retry_wait(Some("soon"), None, now), None);
        assert_eq!(retry_wait(None, None, now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_allows_a_share_of_requests_plus_a_floor() {
        let b = RetryBudget::new(20);
        let now = Instant::now();
        for _ in 0..1000 {
            b.record_request(now);
        }
        // 20% of 1000 plus 10/s over 10 s.
        let granted = (0..1000).filter(|_| b.try_retry(now)).count();
        assert_eq!(granted, 300);
        // Ten seconds on, the window has moved past them.
        tokio::time::advance(Duration::from_secs(11)).await;
        let later = Instant::now();
        assert_eq!((0..1000).filter(|_| b.try_retry(later)).count(), 100);
    }
}
