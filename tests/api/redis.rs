//! `callers.redis_url`: replicas share one budget through a real `redis-server` (Debian's
//! package; scripts/check installs it), and answer from their own buckets while it is gone.

use std::net::TcpListener;
use std::time::Duration;

use figment::Figment;
use stream_emulator::RateRule;
use stream_gateway::callers::shared::{gcra, interval_us, ADMIT_LUA, KEY_PREFIX};

use crate::helpers::*;
use crate::redis_server::RedisServer;

/// Two callers: `batch` (a burst of 3, then one per 100 s: however slow the machine, the burst
/// is all that gets through) and `bulk` (never limited in these tests).
fn shared(f: Figment, url: &str) -> Figment {
    f.merge(("callers.identity_header", "X-Caller"))
        .merge(("callers.redis_url", url))
        // Not the 50 ms default: a slow CI machine must not make a decision fall back here;
        // the outage tests break the connection, which falls back at once whatever the timeout.
        .merge(("callers.redis_timeout_ms", 1000))
        .merge(("callers.service.batch.rate", 0.01))
        .merge(("callers.service.batch.burst", 3))
        .merge(("callers.service.bulk.rate", 10_000.0))
        .merge(("callers.service.bulk.burst", 10_000))
}

async fn replica(url: &str) -> TestApp {
    let app = spawn_with(|f| shared(f, url)).await;
    wait_up(&app, true).await;
    app
}

/// Waits (up to 15 s: reconnecting backs off up to 5 s) until the app's Redis is `up` or down.
async fn wait_up(app: &TestApp, up: bool) {
    for _ in 0..1500 {
        if app.state.callers().redis_up() == up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "Redis did not become {} for the gateway",
        if up { "up" } else { "down" }
    );
}

async fn fallbacks(apps: &[&TestApp]) -> f64 {
    let mut n = 0.0;
    for app in apps {
        n += app.metric("gateway_callers_redis_fallback_total").await;
    }
    n
}

/// `batch` calls, alternating between the replicas: how many got through.
async fn batch_through(a: &TestApp, b: &TestApp, calls: usize) -> usize {
    let mut ok = 0;
    for i in 0..calls {
        let app = if i % 2 == 0 { a } else { b };
        let r = app.get_as("batch", "/feed/user/1/").await;
        assert!(
            r.status == 200 || r.status == 429,
            "{}: {}",
            r.status,
            r.json
        );
        ok += usize::from(r.status == 200);
    }
    ok
}

#[tokio::test]
async fn two_replicas_with_one_redis_admit_together_what_one_would() {
    let redis = RedisServer::start().await;
    let (a, b) = (replica(&redis.url()).await, replica(&redis.url()).await);
    let ok = batch_through(&a, &b, 12).await;
    // Every decision made in Redis (with a 1 s timeout none falls back), and one bucket of 3
    // for both: not 3 each.
    assert_eq!(fallbacks(&[&a, &b]).await, 0.0);
    assert_eq!(ok, 3, "one bucket of 3 for both replicas");
    // The caller's key expires: an idle caller costs Redis nothing.
    let mut c = redis.connect().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{KEY_PREFIX}caller:batch"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 300_000,
        "{ttl} ms: burst x interval at most"
    );
}

#[tokio::test]
async fn stopping_redis_mid_load_loses_no_request_and_restarting_it_shares_again() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (replica(&redis.url()).await, replica(&redis.url()).await);
    let b = std::sync::Arc::new(b);
    let other = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..30 {
                statuses.push(b.get_as("bulk", &format!("/feed/user/{i}/")).await.status);
            }
            statuses
        })
    };
    let mut statuses = Vec::new();
    for i in 0..30 {
        if i == 10 {
            redis.kill();
        }
        statuses.push(a.get_as("bulk", &format!("/feed/user/{i}/")).await.status);
    }
    statuses.extend(other.await.unwrap());
    assert_eq!(statuses.len(), 60);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Every call `a` made after the kill was decided by its own bucket, and counted.
    assert!(a.metric("gateway_callers_redis_fallback_total").await >= 20.0);
    assert_eq!(a.metric("gateway_callers_redis_up").await, 0.0);
    assert!(!a.state.callers().redis_up());

    redis.restart().await;
    wait_up(&a, true).await;
    wait_up(&b, true).await;
    assert_eq!(a.metric("gateway_callers_redis_up").await, 1.0);
    let before = fallbacks(&[&a, &b]).await;
    let ok = batch_through(&a, &b, 12).await;
    assert_eq!(fallbacks(&[&a, &b]).await, before, "decided in Redis again");
    assert_eq!(ok, 3, "one bucket of 3 for both again");
}

#[tokio::test]
async fn a_window_one_replica_hears_is_spent_holds_for_the_other_replica() {
    let redis = RedisServer::start().await;
    let (a, b) = (replica(&redis.url()).await, replica(&redis.url()).await);
    a.emu().set_rate_rule(Some(RateRule {
        method: None,
        path_prefix: "/api/v1.0/feed/".into(),
        limit: 2,
        reset_in_s: 30,
    }));
    for _ in 0..2 {
        assert_eq!(a.get_as("bulk", "/feed/user/1/").await.status, 200);
    }
    // The second answer said nothing is left; `a` tells Redis in the background.
    let mut c = redis.connect().await.unwrap();
    let key = format!("{KEY_PREFIX}window:feed.read");
    for _ in 0..500 {
        let there: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        if there {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = b.get_as("bulk", "/feed/user/2/").await;
    assert_eq!(r.status, 429, "{}", r.json);
    assert_eq!(r.json["exception"], "RateLimitReached");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    assert_eq!(r.headers["x-ratelimit-limit"], "2");
    assert!(b.received().is_empty(), "b's Stream never saw the call");
    let outcome = r#"gateway_caller_requests_total{caller="bulk",endpoint="feed.read",outcome="upstream_limited"}"#;
    assert_eq!(b.metric(outcome).await, 1.0);
    // Another endpoint's window is its own.
    assert_eq!(b.get_as("bulk", "/user/u1/").await.status, 404);
}

#[tokio::test]
async fn a_replica_whose_redis_is_not_there_serves_from_its_own_buckets() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let app = spawn_with(|f| shared(f, &format!("redis://127.0.0.1:{port}/0"))).await;
    let mut ok = 0;
    for _ in 0..6 {
        let r = app.get_as("batch", "/feed/user/1/").await;
        assert!(r.status == 200 || r.status == 429, "{}", r.json);
        ok += usize::from(r.status == 200);
    }
    assert_eq!(ok, 3, "its own bucket of 3");
    assert_eq!(
        app.metric("gateway_callers_redis_fallback_total").await,
        6.0
    );
    assert_eq!(app.metric("gateway_callers_redis_up").await, 0.0);
}

#[tokio::test]
async fn the_admission_script_runs_the_gcra_model() {
    let redis = RedisServer::start().await;
    let mut c = redis.connect().await.unwrap();
    let mut rng = fastrand::Rng::with_seed(19);
    for case in 0..20 {
        let rate = [0.5, 3.0, 5.0, 100.0, 0.01][case % 5];
        let burst = rng.i64(1..=12);
        let interval = interval_us(rate);
        let key = format!("{KEY_PREFIX}caller:model{case}");
        let (mut now, mut tat) = (1_700_000_000_000_000_i64, None);
        for step in 0..60 {
            now += rng.i64(0..=interval * 2);
            // The script's clock is the test's, but keys expire on Redis's: the script, its
            // key's TTL and a PERSIST run as one transaction, so a slow machine cannot expire
            // the key between steps, and the TTL the script set is checked against the model's.
            let (answer, pttl, stored): (Vec<i64>, i64, Option<i64>) = redis::pipe()
                .atomic()
                .cmd("EVAL")
                .arg(ADMIT_LUA)
                .arg(2)
                .arg(format!("{KEY_PREFIX}window:none"))
                .arg(&key)
                .arg(0.0)
                .arg(interval)
                .arg(burst)
                .arg(now)
                .cmd("PTTL")
                .arg(&key)
                .cmd("GET")
                .arg(&key)
                .cmd("PERSIST")
                .arg(&key)
                .ignore()
                .query_async(&mut c)
                .await
                .unwrap();
            match gcra(tat, now, interval, burst) {
                Ok((new_tat, ttl)) => {
                    assert_eq!(answer, [0], "case {case} step {step}");
                    tat = Some(new_tat);
                    assert_eq!(stored, Some(new_tat), "case {case} step {step}");
                    assert!(
                        (ttl - 2..=ttl).contains(&pttl),
                        "case {case} step {step}: TTL {pttl} ms, the model's {ttl}"
                    );
                }
                Err(wait) => assert_eq!(answer, [2, wait], "case {case} step {step}"),
            }
        }
    }
    // A key written under a much slower rate owes at most a full bucket of this one.
    let key = format!("{KEY_PREFIX}caller:slow-then-fast");
    let now = 1_700_000_000_000_000_i64;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(now + 300_000_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let interval = interval_us(100.0);
    let answer: Vec<i64> = redis::Script::new(ADMIT_LUA)
        .key(format!("{KEY_PREFIX}window:none"))
        .key(&key)
        .arg(0.0)
        .arg(interval)
        .arg(100)
        .arg(now)
        .invoke_async(&mut c)
        .await
        .unwrap();
    assert_eq!(answer, [2, interval], "one interval to wait, not 300 s");
    assert_eq!(
        gcra(Some(now + 300_000_000), now, interval, 100),
        Err(interval)
    );
}

#[tokio::test]
async fn the_admission_script_refuses_a_spent_or_reserved_window_before_charging_the_bucket() {
    let redis = RedisServer::start().await;
    let mut c = redis.connect().await.unwrap();
    let window = format!("{KEY_PREFIX}window:feed.read");
    let bucket = format!("{KEY_PREFIX}caller:w");
    let admit_conn = c.clone();
    let admit = |others: f64| {
        let script = redis::Script::new(ADMIT_LUA);
        let (window, bucket) = (window.clone(), bucket.clone());
        let mut c = admit_conn.clone();
        async move {
            script
                .key(window)
                .key(bucket)
                .arg(others)
                .arg(1_000_000_000)
                .arg(5)
                .arg("")
                .invoke_async::<Vec<i64>>(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(admit(0.0).await, [0], "no window known");
    let _: () = redis::cmd("HSET")
        .arg(&window)
        .arg(&["limit", "100", "remaining", "20", "reset", "1700000030"])
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg(&window)
        .arg(30_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let kept = admit(0.2).await;
    assert_eq!(
        kept[..4],
        [1, 100, 20, 1_700_000_030],
        "20 left, 20 kept for others"
    );
    assert!((1..=30_000).contains(&kept[4]), "{kept:?}");
    assert_eq!(admit(0.19).await, [0], "ceil(19) < 20");
    let _: () = redis::cmd("HSET")
        .arg(&window)
        .arg(&["remaining", "0"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(admit(0.0).await[..3], [1, 100, 0]);
    // Only the two calls let through charged the bucket (one per 1000 s, 5 at once): 3 are left.
    let _: () = redis::cmd("DEL")
        .arg(&window)
        .query_async(&mut c)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(admit(0.0).await, [0]);
    }
    assert_eq!(admit(0.0).await[0], 2, "the burst of 5 is spent");
}

#[tokio::test]
async fn a_rediss_url_speaks_tls_with_the_one_crypto_provider_and_fails_cleanly_on_plain_tcp() {
    // A listener that answers like no TLS server: the handshake must fail as an error (a
    // missing or ambiguous rustls provider would panic in the connecting task instead).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"-ERR not TLS\r\n").await;
        }
    });
    let client = redis::Client::open(format!("rediss://127.0.0.1:{port}/0")).unwrap();
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("the handshake ends");
    assert!(attempt.is_err());
}

#[tokio::test]
async fn a_redis_that_answers_with_errors_keeps_its_connection_and_every_request_is_served() {
    let redis = RedisServer::start().await;
    let app = replica(&redis.url()).await;
    let mut c = redis.connect().await.unwrap();
    let connections = |c: redis::aio::MultiplexedConnection| async move {
        let mut c = c;
        let stats: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut c)
            .await
            .unwrap();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = connections(c.clone()).await;
    // A full Redis (noeviction): every script that writes is refused with an OOM error.
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "1"])
        .query_async(&mut c)
        .await
        .unwrap();
    for i in 0..10 {
        let r = app.get_as("bulk", &format!("/feed/user/{i}/")).await;
        assert_eq!(r.status, 200, "{}", r.json);
    }
    assert_eq!(
        app.metric("gateway_callers_redis_fallback_total").await,
        10.0,
        "each decision fell back, and was counted"
    );
    // An error reply is not a broken connection: no reconnect per request.
    assert!(app.state.callers().redis_up(), "the connection is kept");
    assert_eq!(
        connections(c.clone()).await,
        before,
        "no new connection to Redis"
    );
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(app.get_as("bulk", "/feed/user/1/").await.status, 200);
    assert_eq!(
        app.metric("gateway_callers_redis_fallback_total").await,
        10.0,
        "decided in Redis again"
    );
}

#[tokio::test]
async fn a_hung_redis_costs_a_request_at_most_the_timeout_and_sharing_resumes_after_it() {
    let redis = RedisServer::start().await;
    // The default 50 ms: a frozen Redis holds its connections open and answers nothing.
    let app = spawn_with(|f| shared(f, &redis.url()).merge(("callers.redis_timeout_ms", 50))).await;
    wait_up(&app, true).await;
    assert_eq!(app.get_as("bulk", "/feed/user/1/").await.status, 200);
    redis.pause();
    // Without the 50 ms timeout the first request would wait for the client's own response
    // timeout (1 s). The bound is generous for a slow machine (18 times the timeout) and still
    // under that second, so passing shows the gateway's timeout fired.
    const BOUND: Duration = Duration::from_millis(900);
    for i in 0..10 {
        let started = std::time::Instant::now();
        let r = app.get_as("bulk", &format!("/feed/user/{i}/")).await;
        assert_eq!(r.status, 200, "{}", r.json);
        assert!(
            started.elapsed() < BOUND,
            "request {i} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        app.metric("gateway_callers_redis_fallback_total").await,
        10.0,
        "each decision fell back, and was counted"
    );
    assert!(
        !app.state.callers().redis_up(),
        "the silent connection was taken down"
    );
    redis.resume();
    wait_up(&app, true).await;
    assert_eq!(app.get_as("bulk", "/feed/user/1/").await.status, 200);
    assert_eq!(
        app.metric("gateway_callers_redis_fallback_total").await,
        10.0,
        "decided in Redis again"
    );
}
