//! Callers' buckets and Stream's window kept in Redis (`callers.redis_url`), so every replica
//! of the gateway draws on one budget instead of one each.
//!
//! Each decision is one script run atomically on the server ([`ADMIT_LUA`]): Stream's window for
//! the endpoint, then the caller's bucket as GCRA (one key per caller holding its theoretical
//! arrival time, in microseconds of the server's clock, so the replicas' clocks do not matter).
//! Keys expire once they say nothing a missing key would not, so idle callers cost nothing.
//!
//! Redis is the gateway's own infrastructure, so it never refuses a request: a call that does not
//! answer within `callers.redis_timeout_ms` (50 ms), a connection that is down, or an error reply
//! (a read-only replica, a full Redis, a user without `EVALSHA`) makes that decision fall back to
//! the per-instance bucket (counted in `gateway_callers_redis_fallback_total`). The first failure
//! of an outage is logged, and its end (the first decision Redis makes again) once. A timeout or
//! a broken connection takes the connection down; until a background task has a new one (with
//! backoff, never on the request path), decisions fall back at once instead of each waiting out
//! the timeout. The backoff keeps growing until a decision succeeds, so a Redis that accepts
//! connections but cannot decide is not reconnected to once per request. An error reply keeps the
//! connection: reconnecting would not change the answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use metrics::{Counter, Gauge};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use tokio::sync::Notify;

use super::settings::RedisUrl;
use super::window::{Report, Spent};
use crate::recorder::Metrics;

/// Every key the gateway writes starts with this.
pub const KEY_PREFIX: &str = "stream-gateway:";
/// The longest one attempt to connect (and `PING`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The first wait between attempts to reconnect; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between attempts to reconnect.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One decision. `KEYS[1]`: Stream's window for the endpoint (a hash: `limit`, `remaining`,
/// `reset`, expiring when the report stops holding); `KEYS[2]`: the caller's GCRA key.
/// `ARGV`: the share of the window kept for other callers; the caller's emission interval in
/// microseconds (0: no rate); its burst; the time in microseconds (empty: the server's clock;
/// tests pass one to check the script against [`gcra`]).
/// Answers `{0}` (allowed), `{1, limit, remaining, reset, ms left}` (the window) or
/// `{2, µs until a token}` (the caller's rate). A refusal charges nothing.
pub const ADMIT_LUA: &str = r"
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[4])
end
local w = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset')
if w[2] then
  local limit, remaining = tonumber(w[1]), tonumber(w[2])
  if remaining == 0 or remaining <= math.ceil(tonumber(ARGV[1]) * limit) then
    return {1, limit, remaining, tonumber(w[3]), redis.call('PTTL', KEYS[1])}
  end
end
local interval = tonumber(ARGV[2])
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[2]) or now)
  if tat < now then tat = now end
  -- A key written under another rate (a reload, replicas mid-deploy) owes at most a full
  -- bucket of this one: never a lock-out of the old rate's length.
  local most = now + tonumber(ARGV[3]) * interval
  if tat > most then tat = most end
  local new_tat = tat + interval
  local allow_at = new_tat - tonumber(ARGV[3]) * interval
  if allow_at > now then
    return {2, allow_at - now}
  end
  local ttl = math.max(1, math.ceil((new_tat - now) / 1000))
  redis.call('SET', KEYS[2], string.format('%.0f', new_tat), 'PX', ttl)
end
return {0}
";

/// What an answer from Stream said of its window, recorded for every replica. `KEYS[1]`: the
/// window; `ARGV`: limit, remaining, reset, how long it holds (ms). Within one window (the same
/// reset) the lowest count wins, and a late report of an earlier window (an older reset) does
/// not replace the one held, as in [`super::window::Window::record`].
pub const RECORD_LUA: &str = r"
local remaining = tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'remaining', 'reset')
if held[2] and tonumber(ARGV[3]) < tonumber(held[2]) then
  return tonumber(held[1])
end
if held[2] == ARGV[3] and tonumber(held[1]) < remaining then
  remaining = tonumber(held[1])
end
redis.call('HSET', KEYS[1], 'limit', ARGV[1], 'remaining', remaining, 'reset', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return remaining
";

/// The GCRA of [`ADMIT_LUA`] in Rust, the model the script is checked against: with the stored
/// arrival time `tat` (if any), at `now`, for one request every `interval` and `burst` at once
/// (all in microseconds), the new arrival time and the key's TTL in ms, or the wait in µs.
pub fn gcra(tat: Option<i64>, now: i64, interval: i64, burst: i64) -> Result<(i64, i64), i64> {
    let tat = tat
        .unwrap_or(now)
        .max(now)
        .min(now.saturating_add(burst.saturating_mul(interval)));
    let new_tat = tat.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(burst.saturating_mul(interval));
    if allow_at > now {
        return Err(allow_at - now);
    }
    let ttl = (new_tat - now + 999) / 1000;
    Ok((new_tat, ttl.max(1)))
}

/// A rate (requests per second) as the interval between requests, whole microseconds.
pub fn interval_us(rate: f64) -> i64 {
    (1e6 / rate).round().max(1.0) as i64
}

/// What the shared store decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Take it.
    Allowed,
    /// Stream's window, as some replica last heard it, is spent or kept for others.
    Spent(Spent),
    /// The caller is over its rate: a token comes after this long.
    OverRate(Duration),
}

/// What a decision is about.
#[derive(Debug)]
pub struct Ask<'a> {
    /// The caller's name.
    pub caller: &'a str,
    /// The endpoint table's name.
    pub endpoint: &'static str,
    /// Share of the window kept for other callers.
    pub others_reserve: f64,
    /// The caller's rate and burst, if it has one.
    pub rate: Option<(f64, u32)>,
}

/// The shared store: one multiplexed connection (or none while Redis is out of reach) and the
/// task that makes a new one.
#[derive(Debug)]
pub struct Shared {
    url: RedisUrl,
    conn: ArcSwapOption<MultiplexedConnection>,
    /// `callers.redis_timeout_ms`.
    timeout: Duration,
    /// Wakes the connecting task when the connection is lost.
    lost: Notify,
    started: AtomicBool,
    /// An outage has been logged and its end is not yet.
    outage: AtomicBool,
    /// Redis has decided something since the connection was last lost: the backoff starts over.
    decided: AtomicBool,
    admit: Script,
    record: Script,
    fallbacks: Counter,
    up: Gauge,
}

impl Shared {
    /// A store for `url`, not connected yet: [`Shared::start`] connects.
    pub fn new(url: &RedisUrl, timeout: Duration, metrics: &Metrics) -> Arc<Self> {
        let up = metrics.gauge("gateway_callers_redis_up", &[]);
        up.set(0.0);
        Arc::new(Self {
            url: url.clone(),
            conn: ArcSwapOption::empty(),
            timeout,
            lost: Notify::new(),
            started: AtomicBool::new(false),
            outage: AtomicBool::new(false),
            decided: AtomicBool::new(false),
            admit: Script::new(ADMIT_LUA),
            record: Script::new(RECORD_LUA),
            fallbacks: metrics.counter("gateway_callers_redis_fallback_total", &[]),
            up,
        })
    }

    /// Starts the connecting task, once, when there is a runtime to run it (else a later
    /// decision starts it).
    pub fn start(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err()
            || self.started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        tokio::spawn(self.clone().keep_connected());
    }

    /// Whether decisions go to Redis now.
    pub fn is_up(&self) -> bool {
        self.conn.load().is_some()
    }

    /// Runs one decision in Redis; `None`: Redis did not decide (down, slow or failing), so
    /// the caller's local bucket must, and the fallback is counted.
    pub async fn admit(self: &Arc<Self>, ask: &Ask<'_>) -> Option<Decision> {
        let Some(conn) = self.conn.load_full() else {
            self.start();
            self.fallbacks.increment(1);
            return None;
        };
        let (interval, burst) = ask.rate.map_or((0, 0), |(r, b)| (interval_us(r), b));
        let mut call = self.admit.key(window_key(ask.endpoint));
        call.key(format!("{KEY_PREFIX}caller:{}", ask.caller))
            .arg(ask.others_reserve)
            .arg(interval)
            .arg(burst)
            .arg("");
        let mut c = (*conn).clone();
        let answer =
            tokio::time::timeout(self.timeout, call.invoke_async::<Vec<i64>>(&mut c)).await;
        let decision = match answer {
            Ok(Ok(v)) => {
                let d = decision(&v);
                match d {
                    Some(_) => self.answered(),
                    None => self.failed(
                        &conn,
                        Failure::Reply("an answer the script never gives".into()),
                    ),
                }
                d
            }
            Ok(Err(e)) => {
                self.failed(&conn, Failure::from(&e));
                None
            }
            Err(_) => {
                self.failed(&conn, Failure::Timeout(self.timeout));
                None
            }
        };
        if decision.is_none() {
            self.fallbacks.increment(1);
        }
        decision
    }

    /// Tells every replica what Stream said of an endpoint's window (when Redis is there; the
    /// local window has it anyway).
    pub async fn record(&self, endpoint: &'static str, report: Report, hold: Duration) {
        let Some(conn) = self.conn.load_full() else {
            return;
        };
        let mut call = self.record.key(window_key(endpoint));
        call.arg(report.limit)
            .arg(report.remaining)
            .arg(report.reset)
            .arg(hold.as_millis().max(1) as u64);
        let mut c = (*conn).clone();
        match tokio::time::timeout(self.timeout, call.invoke_async::<i64>(&mut c)).await {
            Ok(Ok(_)) => self.answered(),
            Ok(Err(e)) => self.failed(&conn, Failure::from(&e)),
            Err(_) => self.failed(&conn, Failure::Timeout(self.timeout)),
        }
    }

    /// Redis decided: the end of an outage is logged, once.
    fn answered(&self) {
        self.decided.store(true, Ordering::Release);
        if self.outage.swap(false, Ordering::AcqRel) {
            tracing::info!(redis = %self.url.redacted(), after_outage = true, "Redis reached again: callers' buckets are shared");
        }
    }

    /// Redis did not decide: logged once an outage; a broken or silent connection is taken
    /// down, an error reply keeps it.
    fn failed(&self, seen: &Arc<MultiplexedConnection>, why: Failure) {
        if !self.outage.swap(true, Ordering::AcqRel) {
            tracing::warn!(redis = %self.url.redacted(), error = %why, "Redis is out of reach: callers' buckets are per instance until it is back");
        }
        if !matches!(why, Failure::Reply(_)) {
            self.lose(seen);
        }
    }

    /// Takes `seen` down (unless a newer connection replaced it already).
    fn lose(&self, seen: &Arc<MultiplexedConnection>) {
        let was = self.conn.compare_and_swap(seen, None);
        let took_it_down = was.as_ref().is_some_and(|c| Arc::ptr_eq(c, seen));
        if took_it_down {
            self.up.set(0.0);
            self.lost.notify_one();
        }
    }

    /// Connects, and connects again whenever the connection is lost, with backoff.
    async fn keep_connected(self: Arc<Self>) {
        let mut backoff = BACKOFF_MIN;
        // Jitter over the upper half, so replicas do not reconnect in step.
        let pause = |b: Duration| b / 2 + b.mul_f64(fastrand::f64() / 2.0);
        loop {
            if self.conn.load().is_some() {
                self.lost.notified().await;
                // A connection that decided nothing (connects and PINGs, then times out) is not
                // worth reconnecting to at once: the backoff grows until a decision succeeds.
                if self.decided.swap(false, Ordering::AcqRel) {
                    backoff = BACKOFF_MIN;
                }
                tokio::time::sleep(pause(backoff)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            match self.connect().await {
                Ok(c) => {
                    self.conn.store(Some(Arc::new(c)));
                    self.up.set(1.0);
                    // The end of an outage is logged by the first decision (`answered`).
                    if !self.outage.load(Ordering::Acquire) {
                        tracing::info!(redis = %self.url.redacted(), after_outage = false, "Redis reached: callers' buckets are shared");
                    }
                }
                Err(why) => {
                    if !self.outage.swap(true, Ordering::AcqRel) {
                        tracing::warn!(redis = %self.url.redacted(), error = %why, "Redis is out of reach: callers' buckets are per instance until it is back");
                    }
                    tokio::time::sleep(pause(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let attempt = async {
            let mut c = self
                .url
                .client()
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("PING").query_async::<String>(&mut c).await?;
            Ok::<_, redis::RedisError>(c)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 1 s".into()),
        }
    }
}

/// Why Redis did not decide.
enum Failure {
    /// No answer in time: the connection is taken down.
    Timeout(Duration),
    /// The connection broke: taken down.
    Connection(String),
    /// Redis answered with an error (read-only, out of memory, no permission): the connection
    /// stays, reconnecting would not change the answer.
    Reply(String),
}

impl From<&redis::RedisError> for Failure {
    fn from(e: &redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            Failure::Connection(e.to_string())
        } else {
            Failure::Reply(e.code().unwrap_or("an error reply").to_owned())
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
            Failure::Connection(e) => f.write_str(e),
            Failure::Reply(code) => write!(f, "Redis answered with an error ({code})"),
        }
    }
}

fn window_key(endpoint: &str) -> String {
    format!("{KEY_PREFIX}window:{endpoint}")
}

/// The script's answer, read; `None` for one it never gives.
fn decision(v: &[i64]) -> Option<Decision> {
    let ms = |n: i64| Duration::from_millis(u64::try_from(n).unwrap_or(0));
    match *v {
        [0] => Some(Decision::Allowed),
        [1, limit, remaining, reset, left] => {
            let report = Report {
                limit: u64::try_from(limit).ok()?,
                remaining: u64::try_from(remaining).ok()?,
                reset: u64::try_from(reset).ok()?,
            };
            Some(Decision::Spent(Spent {
                report,
                wait: ms(left),
                reserved: report.remaining > 0,
            }))
        }
        [2, wait] => Some(Decision::OverRate(Duration::from_micros(
            u64::try_from(wait).unwrap_or(0),
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn gcra_lets_a_burst_through_then_one_per_interval() {
        let (i, b) = (S / 5, 10);
        let mut tat = None;
        for _ in 0..10 {
            tat = Some(gcra(tat, 0, i, b).unwrap().0);
        }
        assert_eq!(gcra(tat, 0, i, b), Err(i), "one token at 5 per second");
        assert_eq!(gcra(tat, i - 1, i, b), Err(1));
        let (t, ttl) = gcra(tat, i, i, b).unwrap();
        assert_eq!(t, 11 * i);
        assert_eq!(ttl, 10 * i / 1000, "the key lives until it says nothing");
        // A long quiet spell: a stale arrival time is the same as none.
        assert_eq!(gcra(Some(t), 3600 * S, i, b), gcra(None, 3600 * S, i, b));
    }

    #[test]
    fn a_rate_is_an_interval_in_whole_microseconds() {
        assert_eq!(interval_us(5.0), 200_000);
        assert_eq!(interval_us(3.0), 333_333);
        assert_eq!(interval_us(0.01), 100_000_000);
        assert_eq!(interval_us(1e9), 1, "never zero: zero means no rate");
    }

    #[test]
    fn the_scripts_answers_are_read_and_nothing_else() {
        assert_eq!(decision(&[0]), Some(Decision::Allowed));
        assert_eq!(
            decision(&[2, 1500]),
            Some(Decision::OverRate(Duration::from_micros(1500)))
        );
        let Some(Decision::Spent(s)) = decision(&[1, 100, 20, 1_700_000_030, 2500]) else {
            panic!("a window answer");
        };
        assert_eq!(s.report.remaining, 20);
        assert_eq!(s.wait, Duration::from_millis(2500));
        assert!(s.reserved);
        assert_eq!(decision(&[]), None);
        assert_eq!(decision(&[1, 100]), None);
        assert_eq!(decision(&[7]), None);
    }
}
