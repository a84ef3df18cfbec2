//! Metrics, readiness while draining, and refusing overload at once.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

async fn metrics(app: &TestApp) -> String {
    let r = app
        .client
        .get(format!("http://{}/metrics", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

/// The value of the sample whose name and labels start with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_requests_attempts_retries_and_tokens_by_endpoint() {
    let app = spawn_app().await;
    assert_eq!(app.get("/feed/user/42/").await.status, 200);
    app.fault("GET", "/api/v1.0/feed/user/42/", |f| f.status = Some(503));
    assert_eq!(app.get("/feed/user/42/").await.status, 200);
    assert_eq!(app.get("/feed/us-er/42/").await.status, 400);
    let t = app.tokens(json!({"user_id": "42"}), &[]).await;
    assert_eq!(t.status, 200);

    let m = metrics(&app).await;
    assert_eq!(
        sample(
            &m,
            r#"gateway_requests_total{endpoint="feed.read",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_requests_total{endpoint="unknown",status="400"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_requests_total{endpoint="tokens",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_upstream_attempts_total{endpoint="feed.read"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_retries_total{endpoint="feed.read",reason="unavailable"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_tokens_minted_total{kind="user",resource="-",action="-"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_upstream_duration_seconds_count{endpoint="feed.read"}"#
        ),
        3.0
    );
    assert!(
        m.contains(r#"gateway_request_duration_seconds_bucket{endpoint="feed.read",le="0.005"}"#)
    );
    assert!(m.contains("# HELP gateway_requests_total"));
    // This scrape is itself in flight while it renders.
    assert_eq!(sample(&m, "gateway_in_flight_requests"), 1.0);
    // Bounded labels: endpoint names, never paths or ids.
    assert!(!m.contains("user/42") && !m.contains("us-er"), "{m}");
    assert!(!m.contains(SECRET));
}

#[tokio::test]
async fn retries_stop_when_the_budget_is_spent_and_that_is_counted() {
    let app = spawn_with(|f| {
        f.merge(("upstream.max_retries", 1))
            .merge(("upstream.retry_budget_percent", 0))
    })
    .await;
    app.fault("GET", "/api/v1.0/feed/user/1/", |f| {
        f.status = Some(503);
        f.times = 1000;
    });
    // Budget: 0% of requests plus the floor of 10 retries/s over 10 s = 100 retries.
    for _ in 0..110 {
        assert_eq!(app.get("/feed/user/1/").await.status, 503);
    }
    let m = metrics(&app).await;
    assert_eq!(
        sample(
            &m,
            r#"gateway_retries_total{endpoint="feed.read",reason="unavailable"}"#
        ),
        100.0
    );
    assert_eq!(
        sample(
            &m,
            r#"gateway_retry_budget_exhausted_total{endpoint="feed.read"}"#
        ),
        10.0
    );
    assert_eq!(app.received().len(), 210);
}

#[tokio::test]
async fn beyond_max_concurrency_requests_are_refused_at_once_and_service_recovers() {
    let app = spawn_with(|f| f.merge(("server.max_concurrency", 2))).await;
    app.fault("GET", "/api/v1.0/feed/user/1/", |f| {
        f.delay_ms = Some(300);
        f.times = 2;
    });
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (c, url) = (app.client.clone(), format!("{}/feed/user/1/", app.api));
            tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    app.wait_received(2).await;
    let r = app.get("/feed/user/2/").await;
    // Refused while both slow requests are still in flight: not queued behind them.
    assert!(
        slow.iter().all(|h| !h.is_finished()),
        "refused at once, not queued"
    );
    assert_eq!(
        (
            r.status,
            r.json["code"].as_u64(),
            r.json["exception"].as_str()
        ),
        (503, Some(1), Some("Overloaded"))
    );
    // Health and metrics are not proxied requests: they still answer.
    assert!(metrics(&app).await.contains("gateway_overloaded_total 1"));
    for s in slow {
        assert_eq!(s.await.unwrap(), 200);
    }
    assert_eq!(
        app.get("/feed/user/2/").await.status,
        200,
        "recovers when load drops"
    );
    assert_eq!(
        app.received()
            .iter()
            .filter(|r| r.target.starts_with("/api/v1.0/feed/user/2/"))
            .count(),
        1
    );
}

#[tokio::test]
async fn readyz_is_503_while_draining_and_requests_are_still_served() {
    let mut app = spawn_with(|f| f.merge(("server.drain_delay_ms", 500))).await;
    let ready = |app: &TestApp| {
        let url = format!("http://{}/readyz", app.addr);
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(ready(&app).await.unwrap(), 200);
    app.signal_stop();
    // Look while the drain delay runs.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(ready(&app).await.unwrap(), 503);
    let h = reqwest::get(format!("http://{}/healthz", app.addr))
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let r = reqwest::get(format!("{}/feed/user/1/", app.api))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "still serving while draining");
    app.stop().await.unwrap();
    assert!(
        ready(&app).await.is_err(),
        "the listener is closed after the delay"
    );
}

/// Opens a connection that sends a request head and part of its body, then nothing more.
async fn stalled_body(app: &TestApp, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{{\"actor\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn slow_bodies_do_not_hold_the_permits_of_requests_without_one() {
    let app = spawn_with(|f| {
        f.merge(("server.max_concurrency", 2))
            .merge(("upstream.deadline_ms", 60_000))
    })
    .await;
    let _stalled = [
        stalled_body(&app, "/api/v1.0/feed/user/1/").await,
        stalled_body(&app, "/api/v1.0/feed/user/2/").await,
    ];
    // Both are being received (the scrape itself is the third request in flight).
    let mut seen = 0.0;
    for _ in 0..1000 {
        seen = sample(&metrics(&app).await, "gateway_in_flight_requests");
        if seen >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, 3.0, "both stalled bodies reached the gateway");
    let r = app.get("/feed/user/3/").await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // Bodies have their own bound: a third is refused at once.
    let mut third = stalled_body(&app, "/api/v1.0/feed/user/4/").await;
    let answer = read_answer(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("request bodies being received"), "{answer}");
}

/// What the gateway writes first on `s` (within 10 s).
async fn read_answer(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .expect("an answer, not a connection held open")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn a_tokens_body_that_does_not_arrive_within_tokens_body_timeout_ms_is_408() {
    // The proxy's deadline is far longer: /tokens has a body deadline of its own.
    let app = spawn_with(|f| {
        f.merge(("tokens.body_timeout_ms", 300))
            .merge(("upstream.deadline_ms", 60_000))
    })
    .await;
    let mut s = stalled_body(&app, "/tokens").await;
    let started = std::time::Instant::now();
    let answer = read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("tokens.body_timeout_ms"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_tokens_caller_whose_identity_is_refused_is_answered_before_its_body_arrives() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(|f| {
        f.merge(("tokens.identity_header", "X-User-Id"))
            .merge(("tokens.feed_groups", ["user"]))
            .merge(("tokens.body_timeout_ms", 60_000))
    })
    .await;
    // Two identities, and a body that never comes: the answer is the identity's refusal at
    // once, not a timeout.
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /tokens HTTP/1.1\r\nHost: localhost\r\nX-User-Id: 1\r\nX-User-Id: 2\r\n\
                Content-Length: 100\r\n\r\n{\"feed\"";
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("must be given once"), "{answer}");
}

#[tokio::test]
async fn metrics_carry_the_build_version_and_the_process_cpu_memory_and_files() {
    let app = spawn_app().await;
    let text = metrics(&app).await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &text,
            &format!("gateway_build_info{{version=\"{version}\"}}")
        ),
        1.0
    );
    assert_eq!(sample(&text, "gateway_upstream_auth_failures_total "), 0.0);
    if cfg!(target_os = "linux") {
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
        assert!(sample(&text, "process_cpu_seconds_total ") > 0.0);
        assert!(sample(&text, "process_resident_memory_bytes ") > 1e6);
        assert!(sample(&text, "process_open_fds ") >= 3.0);
        assert!(sample(&text, "process_threads ") >= 1.0);
        let started = sample(&text, "process_start_time_seconds ");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
    }
}
