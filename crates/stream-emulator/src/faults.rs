//! What the emulator injects into Stream's routes, set through the admin API: faults (a status,
//! Stream's refusal of the token, a delay or a dropped connection, for the next `times`
//! matching requests) and Stream's rate limit (windows of `reset_in_s` from the first
//! request). Data and matching only: [`super::intercept`] applies them to requests.

use axum::http::Method;
use serde::{Deserialize, Serialize};

/// A fault to inject into matching requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fault {
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Paths starting with this (every path when empty).
    #[serde(default)]
    pub path_prefix: String,
    /// Only calls on this feed, `slug:id` (its `/feed/<slug>/<id>/` routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
    /// Only calls for this user: any of its feeds (`/feed/<slug>/<user_id>/`) and its user
    /// object (`/user/<user_id>/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Refuse the call as Stream refuses its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_error: Option<TokenError>,
    /// Answer with this status (and Stream's error body).
    #[serde(default)]
    pub status: Option<u16>,
    /// Wait this long first.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Close the connection without an answer.
    #[serde(default)]
    pub drop: bool,
    /// `Retry-After` on the injected answer.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// How many matching requests it applies to.
    pub times: u32,
}

/// How Stream refuses a call's token: all 403, code 17, `NotAllowedException`
/// (reference/stream-wire.md, section 2 and 5), told apart by `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenError {
    /// An expired token. Stream's `detail` here is UNCONFIRMED: it is the one of the JWT
    /// library whose other messages Stream's are (`signature is invalid`, `token contains an
    /// invalid number of segments`).
    Expired,
    /// A token not signed with the app's secret (GetStream/stream-go2#98).
    InvalidSignature,
    /// A token whose scope does not cover the call (GetStream/stream-js#396).
    NotAllowed,
}

impl TokenError {
    /// Stream's `detail` for it.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Expired => "token is expired by 1h0m0s",
            Self::InvalidSignature => "signature is invalid",
            Self::NotAllowed => "You do not have permission to perform this action.",
        }
    }
}

impl Fault {
    /// Whether it applies to `path` (the method aside).
    pub fn matches_path(&self, path: &str) -> bool {
        if !path.starts_with(&self.path_prefix) {
            return false;
        }
        let segments: Vec<&str> = path.split('/').collect();
        let feed_is = |slug: Option<&str>, id: &str| {
            segments
                .windows(3)
                .any(|w| w[0] == "feed" && slug.is_none_or(|s| w[1] == s) && w[2] == id)
        };
        if let Some(feed) = &self.feed {
            let Some((slug, id)) = feed.split_once(':') else {
                return false;
            };
            if !feed_is(Some(slug), id) {
                return false;
            }
        }
        if let Some(user) = &self.user_id {
            let user_object = segments.windows(2).any(|w| w[0] == "user" && w[1] == user);
            if !feed_is(None, user) && !user_object {
                return false;
            }
        }
        true
    }
}

/// Stream's rate limit on matching requests, windows of `reset_in_s` from the first request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateRule {
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Paths starting with this.
    pub path_prefix: String,
    /// Requests served per window.
    pub limit: u64,
    /// Length of a window, seconds.
    pub reset_in_s: u64,
}

/// Where a rate-limited request stands in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Requests per window.
    pub limit: u64,
    /// Left after this one.
    pub remaining: u64,
    /// The window's end, unix seconds.
    pub reset: u64,
    /// This request is over the limit: 429.
    pub over: bool,
}

/// The faults not yet used up and the rate limit, with its current window.
#[derive(Debug, Default)]
pub struct Injected {
    faults: Vec<Fault>,
    /// The rule, the current window's end (unix seconds) and the requests counted in it.
    rate: Option<(RateRule, u64, u64)>,
}

/// Whether a rule for `method` (any when absent) applies to a request with `actual`.
fn method_matches(method: Option<&str>, actual: &Method) -> bool {
    method.is_none_or(|m| m.eq_ignore_ascii_case(actual.as_str()))
}

impl Injected {
    /// Adds a fault.
    pub fn inject(&mut self, f: Fault) {
        self.faults.push(f);
    }

    /// The faults not yet used up.
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Forgets every fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Takes one use of the first fault matching the request, if any.
    pub fn take_fault(&mut self, method: &Method, path: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|f| {
            f.times > 0 && f.matches_path(path) && method_matches(f.method.as_deref(), method)
        })?;
        let f = &mut self.faults[i];
        f.times -= 1;
        let taken = f.clone();
        if f.times == 0 {
            self.faults.remove(i);
        }
        Some(taken)
    }

    /// Sets (or with `None` removes) Stream's rate limit.
    pub fn set_rate_rule(&mut self, rule: Option<RateRule>) {
        self.rate = rule.map(|r| (r, 0, 0));
    }

    /// Counts a request against the rate limit, if one is set and matches it, at `now`
    /// (unix seconds).
    pub fn count_call(&mut self, method: &Method, path: &str, now: u64) -> Option<WindowState> {
        let (rule, end, used) = self.rate.as_mut()?;
        if !path.starts_with(&rule.path_prefix) || !method_matches(rule.method.as_deref(), method) {
            return None;
        }
        if now >= *end {
            *end = now.saturating_add(rule.reset_in_s.max(1));
            *used = 0;
        }
        *used += 1;
        Some(WindowState {
            limit: rule.limit,
            remaining: rule.limit.saturating_sub(*used),
            reset: *end,
            over: *used > rule.limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_serves_its_times_then_is_gone_and_other_methods_pass_it_by() {
        let mut i = Injected::default();
        i.inject(Fault {
            method: Some("post".into()),
            path_prefix: "/api/v1.0/feed/".into(),
            status: Some(503),
            times: 2,
            ..Fault::default()
        });

        assert!(i
            .take_fault(&Method::GET, "/api/v1.0/feed/user/1/")
            .is_none());
        assert!(i.take_fault(&Method::POST, "/api/v1.0/user/").is_none());
        assert_eq!(
            i.take_fault(&Method::POST, "/api/v1.0/feed/user/1/")
                .unwrap()
                .times,
            1
        );
        assert_eq!(i.faults()[0].times, 1);
        assert!(i
            .take_fault(&Method::POST, "/api/v1.0/feed/user/1/")
            .is_some());
        assert!(i.faults().is_empty());
    }

    #[test]
    fn a_rate_window_counts_matching_calls_and_opens_anew_at_its_end() {
        let mut i = Injected::default();
        i.set_rate_rule(Some(RateRule {
            method: None,
            path_prefix: "/api/".into(),
            limit: 1,
            reset_in_s: 60,
        }));

        let first = i.count_call(&Method::GET, "/api/x", 1000).unwrap();
        let second = i.count_call(&Method::GET, "/api/x", 1001).unwrap();
        let elsewhere = i.count_call(&Method::GET, "/other", 1001);
        let next_window = i.count_call(&Method::GET, "/api/x", 1060).unwrap();

        assert_eq!((first.remaining, first.reset, first.over), (0, 1060, false));
        assert!(second.over);
        assert!(elsewhere.is_none());
        assert_eq!((next_window.reset, next_window.over), (1120, false));
        i.set_rate_rule(None);
        assert!(i.count_call(&Method::GET, "/api/x", 1061).is_none());
    }
}
