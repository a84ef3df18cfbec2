//! Callers: which service is calling, what it may call and how fast, and Stream's own
//! rate-limit window, respected, so one service's flood cannot spend every other's share.
//!
//! - [`settings`]: `[callers]` as read and validated;
//! - [`bucket`]: a token bucket per caller (`rate`, `burst`);
//! - [`window`]: Stream's `X-Ratelimit-*` window per endpoint, and the reserve kept for callers;
//! - [`shared`]: buckets and windows kept in Redis (`callers.redis_url`) for every replica, with
//!   the per-instance ones as the fallback;
//! - here: [`Callers`], the one handle the proxy asks ([`Callers::admit`]) before anything goes
//!   upstream, and tells ([`Callers::observe`]) what Stream answered. Its policy can be replaced at run
//!   time ([`Callers::replace`]); the window is Stream's and outlives a policy.
//!
//! Without `[callers]` nothing is identified, limited or tracked: [`Callers::admit`] reads one
//! flag and answers at once.

pub(crate) mod bucket;
pub mod settings;
pub mod shared;
pub(crate) mod window;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use metrics::{Counter, Gauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{ApiError, RateLimited};
use crate::recorder::Metrics;
use bucket::{whole_seconds, Bucket};
pub use settings::{CallersFile, RedisUrl, Settings, DEFAULT_CALLER};
use shared::{Ask, Decision, Shared};
use stream_wire::endpoint::{Endpoint, ENDPOINTS};
use stream_wire::v2::{V2Route, V2_ROUTES};
use window::{Report, Spent, Window};

/// An endpoint as policies know it: its index among every named endpoint (the v1.0 table's
/// rows, then the v2 operations) and its name. Allow lists, counters and Stream's windows are
/// kept by this index, so their size is bounded by the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    /// Index among [`named_count`] endpoints.
    pub index: usize,
    /// `feed.read`, `chat.SendMessage`, ...
    pub name: &'static str,
}

impl From<&'static Endpoint> for Named {
    fn from(e: &'static Endpoint) -> Self {
        Named {
            index: e.id as usize,
            name: e.name,
        }
    }
}

impl Named {
    /// A v2 operation, by its index in [`V2_ROUTES`].
    pub fn v2(index: usize) -> Self {
        Named {
            index: ENDPOINTS.len() + index,
            name: V2_ROUTES[index].name,
        }
    }
}

/// How many endpoints have a name: the v1.0 rows and the v2 operations.
pub fn named_count() -> usize {
    ENDPOINTS.len() + V2_ROUTES.len()
}

/// Every named endpoint in index order: the v1.0 row's name, or the v2 operation.
pub fn named_endpoints() -> impl Iterator<Item = (&'static str, Option<&'static V2Route>)> {
    ENDPOINTS
        .iter()
        .map(|e| (e.name, None))
        .chain(V2_ROUTES.iter().map(|r| (r.name, Some(r))))
}

/// What became of a caller's request, the `outcome` label of `gateway_caller_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent on.
    Allowed = 0,
    /// Not in the caller's `allow` list: 403.
    Forbidden = 1,
    /// The caller's bucket is empty: 429.
    RateLimited = 2,
    /// Stream's window is spent, or what is left is kept for other callers: 429.
    UpstreamLimited = 3,
    /// The caller has `max_in_flight` requests in flight already: 503.
    Busy = 4,
}

impl Verdict {
    const ALL: [Verdict; 5] = [
        Verdict::Allowed,
        Verdict::Forbidden,
        Verdict::RateLimited,
        Verdict::UpstreamLimited,
        Verdict::Busy,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Forbidden => "forbidden",
            Verdict::RateLimited => "rate_limited",
            Verdict::UpstreamLimited => "upstream_limited",
            Verdict::Busy => "busy",
        }
    }
}

/// What [`Callers::admit`] decided.
#[derive(Debug)]
pub struct Admission {
    /// The caller's name, when `[callers]` is configured (for the access log).
    pub caller: Option<Arc<str>>,
    /// Why the request is refused, if it is.
    pub refused: Option<ApiError>,
    /// One of the caller's `max_in_flight` slots, when admitted: held until the answer is out.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// The handle the proxy asks: the current policy (replaceable) and Stream's window.
#[derive(Debug)]
pub struct Callers {
    /// Whether a policy is in force: without `[callers]`, one relaxed load is the whole cost.
    on: AtomicBool,
    policy: ArcSwapOption<Policy>,
    window: Window,
    /// `gateway_upstream_ratelimit_remaining`, per endpoint, registered on first report.
    remaining: Box<[OnceLock<Gauge>]>,
    metrics: Arc<Metrics>,
    /// The store every replica shares (`callers.redis_url` at start-up), if there is one.
    shared: Option<Arc<Shared>>,
}

impl Callers {
    /// The handle for `settings` (`None`: no `[callers]` section).
    pub fn new(settings: Option<&Settings>, metrics: Arc<Metrics>) -> Self {
        let shared = settings
            .and_then(|s| Some((s.redis_url.as_ref()?, s.redis_timeout)))
            .map(|(url, timeout)| Shared::new(url, timeout, &metrics));
        if let Some(s) = &shared {
            s.start();
        }
        let callers = Self {
            shared,
            on: AtomicBool::new(false),
            policy: ArcSwapOption::empty(),
            window: Window::new(named_count()),
            remaining: (0..named_count()).map(|_| OnceLock::new()).collect(),
            metrics,
        };
        callers.replace(settings);
        callers
    }

    /// Puts a new policy in force (`None`: none at all); requests already admitted are not
    /// affected. Buckets start full. The Redis store is the one of start-up (`config::RELOADS`).
    pub fn replace(&self, settings: Option<&Settings>) {
        let policy = settings.map(|s| Arc::new(Policy::compile(s, Instant::now())));
        let on = policy.is_some();
        self.policy.store(policy);
        self.on.store(on, Ordering::Release);
    }

    /// Whether this caller may make this call now: identifies the caller from the identity
    /// header and the peer address, checks its allow list, Stream's window (and the reserve
    /// kept for others), then takes from its bucket. Counted in `gateway_caller_requests_total`.
    pub async fn admit(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        endpoint: impl Into<Named>,
    ) -> Admission {
        let endpoint = endpoint.into();
        let guard = self.on.load(Ordering::Acquire).then(|| self.policy.load());
        let Some(policy) = guard.as_ref().and_then(|g| g.as_ref()) else {
            return Admission {
                caller: None,
                refused: None,
                slot: None,
            };
        };
        let i = endpoint.index;
        let caller = policy.identify(headers, peer.map(|p| p.ip().to_canonical()));
        let (verdict, refused, slot) = match self.decide(policy, caller, endpoint).await {
            Ok(slot) => (Verdict::Allowed, None, Some(slot)),
            Err((verdict, refusal)) => (verdict, Some(refusal), None),
        };
        caller
            .counter(&self.metrics, endpoint, i, verdict)
            .increment(1);
        Admission {
            caller: Some(caller.name.clone()),
            refused,
            slot,
        }
    }

    /// The allow list, a free in-flight slot of the caller's, this replica's view of Stream's
    /// window, then the caller's bucket: in Redis when there is a store and it answers, else
    /// this replica's.
    async fn decide(
        &self,
        policy: &Policy,
        caller: &Compiled,
        endpoint: Named,
    ) -> Result<OwnedSemaphorePermit, (Verdict, ApiError)> {
        let (i, name) = (endpoint.index, &*caller.name);
        if !caller.allow[i] {
            let detail = format!(
                "caller {name} may not call {} (callers.service.{name}.allow)",
                endpoint.name
            );
            return Err((Verdict::Forbidden, ApiError::NotAllowed(detail)));
        }
        let slot = caller.in_flight.clone().try_acquire_owned().map_err(|_| {
            let detail = format!(
                "caller {name} has {} requests in flight (callers.service.{name}.max_in_flight); \
                 retry later",
                caller.max_in_flight
            );
            (Verdict::Busy, ApiError::Overloaded(detail))
        })?;
        let others = (policy.reserved - caller.reserve).max(0.0);
        self.window
            .check(i, others, Instant::now())
            .map_err(|spent| window_refusal(endpoint, spent))?;
        if let Some(shared) = &self.shared {
            let ask = Ask {
                caller: name,
                endpoint: endpoint.name,
                others_reserve: others,
                rate: caller.rate,
            };
            match shared.admit(&ask).await {
                Some(Decision::Allowed) => return Ok(slot),
                Some(Decision::Spent(spent)) => return Err(window_refusal(endpoint, spent)),
                Some(Decision::OverRate(wait)) => return Err(rate_refusal(name, wait)),
                None => {} // counted: this replica's bucket decides
            }
        }
        match &caller.bucket {
            Some(bucket) => bucket
                .take(Instant::now())
                .map(|()| slot)
                .map_err(|wait| rate_refusal(name, wait)),
            None => Ok(slot),
        }
    }

    /// Whether decisions go to the Redis store now (`false` without one).
    pub fn redis_up(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.is_up())
    }

    /// Records what an answer from Stream says of its endpoint's window.
    pub fn observe(&self, endpoint: impl Into<Named>, status: u16, headers: &HeaderMap) {
        let Some(report) = Report::parse(status, headers) else {
            return;
        };
        let endpoint = endpoint.into();
        let i = endpoint.index;
        let wall = SystemTime::now();
        let left = self.window.record(i, report, Instant::now(), wall);
        self.share(endpoint, report, wall);
        self.remaining[i]
            .get_or_init(|| {
                self.metrics.gauge(
                    "gateway_upstream_ratelimit_remaining",
                    &[("endpoint", endpoint.name)],
                )
            })
            .set(left as f64);
    }
}

impl Callers {
    /// Puts a report in Redis for the other replicas when it can refuse a call there: the
    /// window spent, or what is left within the callers' reserves. Other reports change no
    /// decision, so they cost Redis nothing.
    fn share(&self, endpoint: Named, report: Report, wall: SystemTime) {
        let Some(shared) = self.shared.as_ref().filter(|s| s.is_up()) else {
            return;
        };
        let reserved = self.policy.load().as_ref().map_or(0.0, |p| p.reserved);
        if report.remaining as f64 > (reserved * report.limit as f64).ceil() {
            return;
        }
        let shared = shared.clone();
        let hold = report.hold(wall);
        tokio::spawn(async move { shared.record(endpoint.name, report, hold).await });
    }
}

fn window_refusal(endpoint: Named, spent: Spent) -> (Verdict, ApiError) {
    let detail = if spent.reserved {
        format!(
            "what is left of Stream's rate limit for {} is kept for other callers; \
             retry after the reset",
            endpoint.name
        )
    } else {
        format!(
            "Stream's rate limit for {} is spent until its reset; not sent",
            endpoint.name
        )
    };
    let r = spent.report;
    let refusal = RateLimited {
        detail,
        retry_after_s: whole_seconds(spent.wait),
        window: Some((r.limit, r.remaining, r.reset)),
    };
    (Verdict::UpstreamLimited, ApiError::RateLimited(refusal))
}

fn rate_refusal(name: &str, wait: std::time::Duration) -> (Verdict, ApiError) {
    let refusal = RateLimited {
        detail: format!(
            "caller {name} is over its rate (callers.service.{name}.rate); \
             retry later"
        ),
        retry_after_s: whole_seconds(wait),
        window: None,
    };
    (Verdict::RateLimited, ApiError::RateLimited(refusal))
}

/// The compiled policy: callers by name and network, each with its bucket.
#[derive(Debug)]
struct Policy {
    identity_header: Option<http::HeaderName>,
    callers: Vec<Compiled>,
    /// The index of `default` in `callers` (added, unlimited, when not configured).
    default: usize,
    /// The reserves of all callers, added.
    reserved: f64,
}

#[derive(Debug)]
struct Compiled {
    name: Arc<str>,
    allow: Vec<bool>,
    bucket: Option<Bucket>,
    /// Rate and burst, for the shared store.
    rate: Option<(f64, u32)>,
    cidrs: Vec<ipnet::IpNet>,
    reserve: f64,
    /// `max_in_flight` permits: one per request of this caller, from admission (before its
    /// body is read) until its answer is out.
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// `gateway_caller_requests_total` handles by endpoint and outcome, registered on first use.
    counters: Box<[OnceLock<Counter>]>,
}

impl Compiled {
    fn new(s: &settings::Service, default_max_in_flight: usize, now: Instant) -> Self {
        let max_in_flight = s.max_in_flight.unwrap_or(default_max_in_flight).max(1);
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            name: Arc::from(s.name.as_str()),
            allow: s.allow.clone(),
            bucket: s.rate.map(|(rate, burst)| Bucket::new(rate, burst, now)),
            rate: s.rate,
            cidrs: s.cidrs.clone(),
            reserve: s.reserve,
            counters: (0..named_count() * Verdict::ALL.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    fn counter(&self, m: &Metrics, endpoint: Named, i: usize, v: Verdict) -> &Counter {
        self.counters[i * Verdict::ALL.len() + v as usize].get_or_init(|| {
            m.counter(
                "gateway_caller_requests_total",
                &[
                    ("caller", &self.name),
                    ("endpoint", endpoint.name),
                    ("outcome", v.as_str()),
                ],
            )
        })
    }

    fn knows(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|n| n.contains(&ip))
    }
}

impl Policy {
    fn compile(s: &Settings, now: Instant) -> Self {
        let max = s.default_max_in_flight;
        let mut callers: Vec<Compiled> = s
            .services
            .iter()
            .map(|c| Compiled::new(c, max, now))
            .collect();
        let default = match callers.iter().position(|c| &*c.name == DEFAULT_CALLER) {
            Some(i) => i,
            None => {
                let everything = settings::Service {
                    name: DEFAULT_CALLER.into(),
                    allow: vec![true; named_count()],
                    rate: None,
                    cidrs: Vec::new(),
                    reserve: 0.0,
                    max_in_flight: None,
                };
                callers.push(Compiled::new(&everything, max, now));
                callers.len() - 1
            }
        };
        Self {
            identity_header: s.identity_header.clone(),
            reserved: callers.iter().map(|c| c.reserve).sum(),
            callers,
            default,
        }
    }

    /// Who is calling. A peer inside some caller's networks is that caller (the narrowest
    /// network wins), and its header counts only when it names a caller whose networks also
    /// hold the peer: a service known by its address cannot name itself out of its policy.
    /// Otherwise the header names the caller (one value, a caller without networks, never
    /// `default`); else `default`. A repeated header names no one: a mesh that appends its own
    /// value after the caller's must not let the caller's win.
    fn identify(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> &Compiled {
        let named = self.identity_header.as_ref().and_then(|h| {
            let mut values = headers.get_all(h).iter();
            match (values.next(), values.next()) {
                (Some(v), None) => v.to_str().ok(),
                _ => None,
            }
        });
        let named = named
            .map(str::trim)
            .filter(|v| !v.eq_ignore_ascii_case(DEFAULT_CALLER))
            .and_then(|v| self.callers.iter().find(|c| c.name.eq_ignore_ascii_case(v)));
        let by_address = peer.and_then(|p| {
            self.callers
                .iter()
                .flat_map(|c| c.cidrs.iter().map(move |n| (c, n)))
                .filter(|(_, n)| n.contains(&p))
                .max_by_key(|(_, n)| n.prefix_len())
                .map(|(c, _)| c)
        });
        match (named, by_address, peer) {
            // Known by address: the header may only name another caller of that address.
            (Some(c), Some(_), Some(p)) if c.knows(p) => c,
            (_, Some(c), _) => c,
            (Some(c), None, _) if c.cidrs.is_empty() => c,
            _ => &self.callers[self.default],
        }
    }
}

#[cfg(test)]
mod tests;
