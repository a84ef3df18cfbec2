//! [`EmulatorState`]: the one handle every handler shares (behind an `Arc`): the verifier,
//! the one [`Store`], the injected faults and the request log.

use parking_lot::{Mutex, MutexGuard, RwLock};
use std::collections::VecDeque;

use axum::http::Method;

use super::admin::{Fault, RateRule, Received};
use super::call::Call;
use super::reply::EmuError;
use super::store::groups::FeedGroups;
use super::store::Store;
use super::verify::{Needed, Verifier};
use super::EmulatorConfig;
use crate::auth::Secret;

/// Requests kept for `GET /_emulator/requests`.
pub const LOG_CAPACITY: usize = 2000;

/// The emulator's state, shared by its handlers.
#[derive(Debug)]
pub struct EmulatorState {
    verifier: RwLock<Verifier>,
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<VecDeque<Received>>,
    /// Stream's rate limit, when set: the rule, and the current window (its end, unix
    /// seconds, and the requests counted in it).
    rate: Mutex<Option<(RateRule, u64, u64)>>,
    /// Analytics events received, oldest first, each `{"kind", "event"}`.
    analytics: Mutex<VecDeque<serde_json::Value>>,
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

impl EmulatorState {
    /// Empty data with these feed group kinds, no faults, credentials from `cfg`.
    pub fn new(cfg: EmulatorConfig, groups: FeedGroups) -> Self {
        Self {
            verifier: RwLock::new(Verifier {
                api_key: cfg.api_key,
                secrets: vec![cfg.api_secret],
                strict_scopes: cfg.strict_scopes,
            }),
            store: Mutex::new(Store::new(groups)),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(VecDeque::new()),
            rate: Mutex::new(None),
            analytics: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps analytics events of `kind` (`engagement`, `impression`), dropping the oldest
    /// beyond [`super::analytics::EVENTS_CAPACITY`].
    pub fn track(&self, kind: &str, events: Vec<serde_json::Value>) {
        let mut kept = self.analytics.lock();
        for event in events {
            if kept.len() == super::analytics::EVENTS_CAPACITY {
                kept.pop_front();
            }
            kept.push_back(serde_json::json!({ "kind": kind, "event": event }));
        }
    }

    /// The analytics events received so far, oldest first.
    pub fn analytics_events(&self) -> Vec<serde_json::Value> {
        self.analytics.lock().iter().cloned().collect()
    }

    /// Locks the store (tests read it directly).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock()
    }

    /// Adds a fault.
    pub fn inject(&self, f: Fault) {
        self.faults.lock().push(f);
    }

    /// The faults not yet used up.
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.lock().clone()
    }

    /// Forgets every fault.
    pub fn clear_faults(&self) {
        self.faults.lock().clear();
    }

    /// The requests received so far (the last 2000).
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().iter().cloned().collect()
    }

    /// Records a request, dropping the oldest beyond [`LOG_CAPACITY`].
    pub fn record(&self, r: Received) {
        let mut log = self.log.lock();
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(r);
    }

    /// Forgets data, faults and the request log; the feed group kinds stay.
    pub fn reset(&self) {
        {
            let mut store = self.store();
            let groups = store.feed_groups().clone();
            *store = Store::new(groups);
        }
        self.faults.lock().clear();
        self.log.lock().clear();
        self.analytics.lock().clear();
        *self.rate.lock() = None;
    }

    /// Sets (or with `None` removes) Stream's rate limit.
    pub fn set_rate_rule(&self, rule: Option<RateRule>) {
        *self.rate.lock() = rule.map(|r| (r, 0, 0));
    }

    /// Counts a request against the rate limit, if one is set and matches it, at `now`
    /// (unix seconds).
    pub fn count_call(&self, method: &Method, path: &str, now: u64) -> Option<WindowState> {
        let mut rate = self.rate.lock();
        let (rule, end, used) = rate.as_mut()?;
        let applies = path.starts_with(&rule.path_prefix)
            && rule
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
        if !applies {
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

    /// Takes one use of the first fault matching the request, if any.
    pub fn take_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut faults = self.faults.lock();
        let i = faults.iter().position(|f| {
            f.times > 0
                && path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
        })?;
        faults[i].times -= 1;
        let f = faults[i].clone();
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(f)
    }

    /// Refuses the call unless its credentials are what `needed` asks for.
    pub fn authorize(&self, call: &Call, needed: Needed) -> Result<(), EmuError> {
        self.verifier
            .read()
            .check(&call.method, &call.uri, &call.headers, &needed)
    }

    /// From now on, credentials made with one of `secrets` (and no other) are taken, as
    /// Stream does when an app's secret is rotated. A reset keeps them.
    pub fn accept_secrets(&self, secrets: Vec<Secret>) {
        self.verifier.write().secrets = secrets;
    }
}
