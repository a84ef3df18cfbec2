//! A token bucket: `burst` tokens, refilled at `rate` per second, one taken per request. Pure:
//! every call takes the clock, so tests run it on paused time.

use parking_lot::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The longest wait a refusal names: a day.
const LONGEST_WAIT: Duration = Duration::from_secs(86_400);

/// One caller's bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Tokens per second.
    rate: f64,
    /// Capacity, and the tokens a fresh bucket holds.
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Bucket {
    /// A full bucket; `rate` and `burst` are positive (the configuration checked them).
    pub(crate) fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                at: now,
            }),
        }
    }

    /// Takes one token, or says how long until one is there.
    pub(crate) fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut s = self.state.lock();
        // A clock that reads earlier than the last call (never with tokio's) refills nothing.
        let elapsed = now.saturating_duration_since(s.at).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
        s.at = s.at.max(now);
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(())
        } else {
            // A rate so small the wait overflows a Duration waits a day (Retry-After stays sane).
            Err(Duration::try_from_secs_f64((1.0 - s.tokens) / self.rate)
                .map_or(LONGEST_WAIT, |d| d.min(LONGEST_WAIT)))
        }
    }
}

/// A wait in whole seconds, rounded up, for `Retry-After` (at least 1: a client that reads 0
/// would come straight back).
pub(crate) fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_lets_a_burst_through_then_refuses() {
        let b = Bucket::new(5.0, 10, Instant::now());
        for _ in 0..10 {
            assert!(b.take(Instant::now()).is_ok());
        }
        let wait = b.take(Instant::now()).unwrap_err();
        assert_eq!(wait, 200 * MS, "one token at 5 per second");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_come_back_at_the_rate_and_no_more_than_the_burst() {
        let b = Bucket::new(2.0, 2, Instant::now());
        assert!(b.take(Instant::now()).is_ok());
        assert!(b.take(Instant::now()).is_ok());
        assert!(b.take(Instant::now()).is_err());
        tokio::time::advance(499 * MS).await;
        assert_eq!(
            b.take(Instant::now()),
            Err(MS),
            "half a second for one token"
        );
        tokio::time::advance(MS).await;
        assert!(b.take(Instant::now()).is_ok());
        // A long quiet spell fills the bucket to its burst, not beyond.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(b.take(Instant::now()).is_ok());
        assert!(b.take(Instant::now()).is_ok());
        assert!(b.take(Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_takes_nothing() {
        let b = Bucket::new(1.0, 1, Instant::now());
        assert!(b.take(Instant::now()).is_ok());
        for _ in 0..100 {
            assert!(b.take(Instant::now()).is_err());
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            b.take(Instant::now()).is_ok(),
            "the refusals cost no tokens"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_below_one_per_second_waits_whole_intervals() {
        let b = Bucket::new(0.25, 1, Instant::now());
        assert!(b.take(Instant::now()).is_ok());
        let wait = b.take(Instant::now()).unwrap_err();
        assert_eq!(wait, Duration::from_secs(4));
        assert_eq!(whole_seconds(wait), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_that_goes_back_refills_nothing() {
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(10)).await;
        let b = Bucket::new(1.0, 1, Instant::now());
        assert!(b.take(Instant::now()).is_ok());
        assert!(b.take(start).is_err(), "an earlier reading adds no tokens");
        assert!(b.take(Instant::now()).is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(200 * MS), 1);
        assert_eq!(whole_seconds(Duration::from_secs(1)), 1);
        assert_eq!(whole_seconds(1001 * MS), 2);
        assert_eq!(whole_seconds(Duration::from_secs(59)), 59);
        assert_eq!(whole_seconds(Duration::MAX), u64::MAX, "no overflow");
    }

    #[test]
    fn a_rate_too_small_for_a_duration_waits_a_day_and_does_not_panic() {
        let now = Instant::now();
        let b = Bucket::new(1e-20, 1, now);
        assert!(b.take(now).is_ok());
        assert_eq!(b.take(now), Err(LONGEST_WAIT));
    }
}
