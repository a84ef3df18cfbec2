//! Stream's rate-limit window per endpoint, as its answers report it (`X-Ratelimit-Limit`,
//! `-Remaining`, `-Reset`): while the window is spent the gateway answers 429 itself instead
//! of sending calls Stream would refuse. Pure: every call takes the clocks.
//!
//! `X-Ratelimit-Reset` is a time on Stream's clock (unix seconds). A reset in the past (the
//! gateway's clock ahead of Stream's, or a report that came late) still holds a spent window
//! for [`MIN_HOLD`], so a skewed clock cannot turn the tracker into a hammer; a reset more
//! than [`MAX_HOLD`] away is taken as [`MAX_HOLD`], so a wrong clock cannot stop an endpoint
//! for long.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use parking_lot::Mutex;
use tokio::time::Instant;

/// The shortest a report holds.
pub(crate) const MIN_HOLD: Duration = Duration::from_secs(1);
/// The longest a report holds.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(60);

/// What one answer said of its endpoint's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Calls per window.
    pub limit: u64,
    /// Calls left in the window.
    pub remaining: u64,
    /// When the window ends, unix seconds on Stream's clock.
    pub reset: u64,
}

impl Report {
    /// The window an answer reports, if it reports one: `X-Ratelimit-Remaining` and
    /// `X-Ratelimit-Reset` (a 429 without `Remaining` counts as none left).
    pub fn parse(status: u16, headers: &HeaderMap) -> Option<Self> {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let reset = num("x-ratelimit-reset")?;
        let remaining = match num("x-ratelimit-remaining") {
            Some(r) => r,
            None if status == 429 => 0,
            None => return None,
        };
        let remaining = if status == 429 { 0 } else { remaining };
        Some(Self {
            limit: num("x-ratelimit-limit").unwrap_or(0),
            remaining,
            reset,
        })
    }

    /// How long from `wall` (the gateway's clock) this report holds, within
    /// [`MIN_HOLD`]..=[`MAX_HOLD`].
    pub fn hold(&self, wall: SystemTime) -> Duration {
        // A reset beyond what the clock can hold is as far as can be.
        let Some(reset) = UNIX_EPOCH.checked_add(Duration::from_secs(self.reset)) else {
            return MAX_HOLD;
        };
        reset
            .duration_since(wall)
            .unwrap_or(Duration::ZERO)
            .clamp(MIN_HOLD, MAX_HOLD)
    }
}

/// Why a call is not sent: the window is spent, or what is left is kept for other callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// The last report.
    pub report: Report,
    /// Until the report stops holding.
    pub wait: Duration,
    /// Calls are left, but no more than other callers' reserve.
    pub reserved: bool,
}

/// The last report of one endpoint and until when it holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    report: Report,
    until: Instant,
}

/// Every endpoint's last report, by the endpoint's index in the table.
#[derive(Debug)]
pub(crate) struct Window {
    slots: Box<[Mutex<Option<Held>>]>,
}

impl Window {
    /// No reports yet for `endpoints` endpoints.
    pub(crate) fn new(endpoints: usize) -> Self {
        Self {
            slots: (0..endpoints).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Records a report for endpoint `i`; returns the calls left it now counts. Within one
    /// window (the same reset) the lowest count wins: answers can arrive out of order.
    pub(crate) fn record(&self, i: usize, report: Report, now: Instant, wall: SystemTime) -> u64 {
        let mut slot = self.slots[i].lock();
        // A late answer from an earlier window does not replace the current one's report.
        if let Some(h) = *slot {
            if report.reset < h.report.reset && now < h.until {
                return h.report.remaining;
            }
        }
        let remaining = match *slot {
            Some(h) if h.report.reset == report.reset && now < h.until => {
                h.report.remaining.min(report.remaining)
            }
            _ => report.remaining,
        };
        *slot = Some(Held {
            report: Report {
                remaining,
                ..report
            },
            until: now + report.hold(wall),
        });
        remaining
    }

    /// Whether a call to endpoint `i` may go to Stream, for a caller when `others_reserve`
    /// (a fraction of the window) is kept for other callers.
    pub(crate) fn check(&self, i: usize, others_reserve: f64, now: Instant) -> Result<(), Spent> {
        let Some(h) = *self.slots[i].lock() else {
            return Ok(());
        };
        if now >= h.until {
            // The window has ended: a new one starts with the next answer's report.
            return Ok(());
        }
        let kept = (others_reserve * h.report.limit as f64).ceil() as u64;
        if h.report.remaining == 0 || h.report.remaining <= kept {
            return Err(Spent {
                report: h.report,
                wait: h.until - now,
                reserved: h.report.remaining > 0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    /// The gateway's wall clock in these tests.
    const WALL: u64 = 1_700_000_000;

    fn wall() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(WALL)
    }

    fn report(remaining: u64, reset_in: i64) -> Report {
        Report {
            limit: 100,
            remaining,
            reset: WALL.saturating_add_signed(reset_in),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_report_is_read_from_the_three_headers() {
        let h = headers(&[
            ("x-ratelimit-limit", "300"),
            ("x-ratelimit-remaining", "12"),
            ("x-ratelimit-reset", "1700000030"),
        ]);
        assert_eq!(
            Report::parse(200, &h),
            Some(Report {
                limit: 300,
                remaining: 12,
                reset: 1_700_000_030
            })
        );
        assert_eq!(
            Report::parse(429, &h).unwrap().remaining,
            0,
            "a 429 is spent"
        );
        let no_remaining = headers(&[("x-ratelimit-reset", "1700000030")]);
        assert_eq!(Report::parse(200, &no_remaining), None);
        assert_eq!(Report::parse(429, &no_remaining).unwrap().remaining, 0);
        assert_eq!(Report::parse(200, &HeaderMap::new()), None);
        let garbled = headers(&[
            ("x-ratelimit-remaining", "many"),
            ("x-ratelimit-reset", "soon"),
        ]);
        assert_eq!(Report::parse(429, &garbled), None);
    }

    #[test]
    fn a_report_holds_until_its_reset_within_one_and_sixty_seconds() {
        assert_eq!(report(0, 30).hold(wall()), 30 * S);
        assert_eq!(report(0, 3600).hold(wall()), 60 * S, "far future: 60 s");
        assert_eq!(report(0, -30).hold(wall()), S, "in the past: 1 s");
        assert_eq!(report(0, 0).hold(wall()), S);
        let absurd = Report {
            reset: u64::MAX,
            ..report(0, 0)
        };
        assert_eq!(absurd.hold(wall()), 60 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_refuses_until_its_reset_then_lets_calls_through() {
        let w = Window::new(2);
        assert!(w.check(0, 0.0, Instant::now()).is_ok(), "nothing known yet");
        w.record(0, report(0, 20), Instant::now(), wall());
        let spent = w.check(0, 0.0, Instant::now()).unwrap_err();
        assert_eq!(spent.wait, 20 * S);
        assert!(!spent.reserved);
        assert!(w.check(1, 0.0, Instant::now()).is_ok(), "per endpoint");
        tokio::time::advance(19 * S).await;
        assert_eq!(w.check(0, 0.0, Instant::now()).unwrap_err().wait, S);
        tokio::time::advance(S).await;
        assert!(w.check(0, 0.0, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_from_an_earlier_window_does_not_replace_the_current_report() {
        let w = Window::new(1);
        w.record(0, report(99, 30), Instant::now(), wall());
        // An answer from the window before, arriving late, says it was spent.
        assert_eq!(w.record(0, report(0, 5), Instant::now(), wall()), 99);
        assert!(w.check(0, 0.0, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_far_reset_holds_sixty_seconds_and_a_past_one_one_second() {
        let w = Window::new(1);
        w.record(0, report(0, 86_400), Instant::now(), wall());
        tokio::time::advance(59 * S).await;
        assert!(w.check(0, 0.0, Instant::now()).is_err());
        tokio::time::advance(S).await;
        assert!(w.check(0, 0.0, Instant::now()).is_ok());

        // Stream's clock 5 minutes behind the gateway's: its reset reads as long past.
        w.record(0, report(0, -300), Instant::now(), wall());
        assert_eq!(w.check(0, 0.0, Instant::now()).unwrap_err().wait, S);
        tokio::time::advance(S).await;
        assert!(w.check(0, 0.0, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn within_one_window_the_lowest_count_wins_and_a_new_window_replaces_it() {
        let w = Window::new(1);
        let now = Instant::now();
        assert_eq!(w.record(0, report(5, 30), now, wall()), 5);
        assert_eq!(w.record(0, report(0, 30), now, wall()), 0);
        assert_eq!(w.record(0, report(4, 30), now, wall()), 0, "late answer");
        assert_eq!(w.record(0, report(99, 90), now, wall()), 99, "next window");
        assert!(w.check(0, 0.0, now).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_reserved_for_others_is_not_spent_by_a_caller() {
        let w = Window::new(1);
        let now = Instant::now();
        // 100 a window, 20 left; 20% kept for another caller.
        w.record(0, report(20, 30), now, wall());
        let spent = w.check(0, 0.2, now).unwrap_err();
        assert!(spent.reserved);
        assert_eq!(spent.report.remaining, 20);
        assert!(w.check(0, 0.0, now).is_ok(), "the reserve's owner goes on");
        // The next window: 21 left, more than the 20 kept.
        w.record(0, report(21, 60), now, wall());
        assert!(w.check(0, 0.2, now).is_ok());
        // A share that is not a whole number of calls keeps the next whole call.
        assert!(w.check(0, 0.201, now).is_err(), "ceil(20.1) = 21");
    }
}
