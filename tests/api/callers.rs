//! `[callers]`: who may call what, how fast, and Stream's own window respected.

use figment::Figment;
use serde_json::json;
use stream_emulator::RateRule;

use crate::helpers::*;

/// The issue's example: web (anything), batch (rate-limited), indexer (read-only, by network).
fn example(f: Figment, batch_rate: f64, indexer_cidr: &str) -> Figment {
    f.merge(("callers.identity_header", "X-Caller"))
        .merge(("callers.service.web", json!({})))
        .merge(("callers.service.batch.rate", batch_rate))
        .merge(("callers.service.batch.burst", 3))
        .merge((
            "callers.service.indexer.allow",
            ["feed.read", "reactions.*"],
        ))
        .merge(("callers.service.indexer.cidrs", [indexer_cidr]))
}

fn spent_window(app: &TestApp, limit: u64) {
    app.emu().set_rate_rule(Some(RateRule {
        method: None,
        path_prefix: "/api/v1.0/feed/".into(),
        limit,
        reset_in_s: 30,
    }));
}

#[tokio::test]
async fn a_flooding_caller_gets_429_with_retry_after_and_the_other_caller_is_unaffected() {
    // One token per 100 s after a burst of 3: however slow the machine, exactly 3 get through.
    let app = spawn_with(|f| example(f, 0.01, "192.0.2.0/24")).await;
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push(app.get_as("batch", "/feed/user/1/").await);
        let web = app.get_as("web", &format!("/feed/user/{i}/")).await;
        assert_eq!(web.status, 200, "web request {i}: {}", web.json);
    }
    let ok = batch.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 3, "the burst");
    for r in batch.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 429);
        assert_eq!(r.json["code"], 9);
        assert_eq!(r.json["exception"], "RateLimitReached");
        assert!(r.json["detail"].as_str().unwrap().contains("batch"));
        let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=100).contains(&after), "{after}");
    }
    let reads = app
        .received()
        .iter()
        .filter(|r| r.target.starts_with("/api/v1.0/feed/user/1/"))
        .count();
    assert_eq!(
        reads,
        3 + 1,
        "batch's three and web's one; no refusal reached Stream"
    );
    let m = app.metrics_text().await;
    for line in [
        r#"gateway_caller_requests_total{caller="batch",endpoint="feed.read",outcome="allowed"} 3"#,
        r#"gateway_caller_requests_total{caller="batch",endpoint="feed.read",outcome="rate_limited"} 17"#,
        r#"gateway_caller_requests_total{caller="web",endpoint="feed.read",outcome="allowed"} 20"#,
        r#"gateway_requests_total{endpoint="feed.read",status="429"} 17"#,
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
}

#[tokio::test]
async fn a_call_outside_the_allow_list_is_403_naming_caller_and_endpoint_and_goes_nowhere() {
    // The test's requests come from 127.0.0.1: the indexer is known by its network.
    let app = spawn_with(|f| example(f, 5.0, "127.0.0.0/8")).await;
    assert_eq!(app.get("/feed/user/1/").await.status, 200);
    let r = app.post("/feed/user/1/", &activity(1)).await;
    assert_eq!(r.status, 403, "{}", r.json);
    assert_eq!(r.json["code"], 17);
    assert_eq!(r.json["exception"], "NotAllowedException");
    let detail = r.json["detail"].as_str().unwrap();
    assert!(
        detail.contains("indexer") && detail.contains("feed.add"),
        "{detail}"
    );
    assert!(app.received().iter().all(|r| r.method != "POST"));
    let r = app
        .post(
            "/reaction/",
            &json!({"kind": "like", "activity_id": "a1", "user_id": "u1"}),
        )
        .await;
    assert_ne!(r.status, 403, "reactions.* is allowed: {}", r.json);
    // A service known by its address cannot name itself out of its policy with the header:
    // not as a caller without networks, not as `default`.
    for claimed in ["web", "default"] {
        let r = app
            .send(
                app.client
                    .post(format!("{}/feed/user/1/", app.api))
                    .header("X-Caller", claimed)
                    .body(activity(2).to_string()),
            )
            .await;
        assert_eq!(r.status, 403, "claiming {claimed}: {}", r.json);
    }
    assert!(app
        .received()
        .iter()
        .all(|r| !(r.method == "POST" && r.target.starts_with("/api/v1.0/feed/"))));
}

#[tokio::test]
async fn a_callers_header_counts_only_from_inside_its_networks() {
    let app = spawn_with(|f| example(f, 5.0, "192.0.2.0/24")).await;
    // From 127.0.0.1, "indexer" is not recognised: the caller is default, which may post.
    let r = app
        .send(
            app.client
                .post(format!("{}/feed/user/1/", app.api))
                .header("X-Caller", "indexer")
                .body(activity(1).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let m = app.metrics_text().await;
    assert!(
        m.contains(r#"gateway_caller_requests_total{caller="default",endpoint="feed.add",outcome="allowed"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn once_stream_reports_the_window_spent_the_gateway_sends_nothing_upstream_until_the_reset() {
    let app = spawn_with(|f| f.merge(("callers.identity_header", "X-Caller"))).await;
    spent_window(&app, 3);
    for i in 0..3 {
        let r = app.get("/feed/user/1/").await;
        assert_eq!(r.status, 200, "call {i} is inside Stream's limit");
    }
    // The third answer said 0 remaining: nothing more goes to Stream in this window.
    for _ in 0..5 {
        let r = app.get("/feed/user/2/").await;
        assert_eq!(r.status, 429, "{}", r.json);
        assert_eq!(r.json["code"], 9);
        assert_eq!(r.json["exception"], "RateLimitReached");
        assert_eq!(r.headers["x-ratelimit-remaining"], "0");
        assert_eq!(r.headers["x-ratelimit-limit"], "3");
        assert!(r.headers.contains_key("x-ratelimit-reset"));
        let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&after), "{after}");
    }
    assert_eq!(app.received().len(), 3, "the refusals never reached Stream");
    // Another endpoint's window is its own.
    assert_eq!(
        app.get("/user/u1/").await.status,
        404,
        "the emulator answered"
    );
    assert_eq!(app.received().len(), 4);
    let m = app.metrics_text().await;
    for line in [
        r#"gateway_caller_requests_total{caller="default",endpoint="feed.read",outcome="upstream_limited"} 5"#,
        r#"gateway_upstream_ratelimit_remaining{endpoint="feed.read"} 0"#,
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
}

#[tokio::test]
async fn a_429_from_stream_stops_the_calls_that_follow() {
    let app = spawn_with(|f| f.merge(("callers.service.web", json!({})))).await;
    spent_window(&app, 0);
    let first = app.get("/feed/user/1/").await;
    assert_eq!(first.status, 429);
    assert_eq!(first.json["exception"], "RateLimitReached");
    assert_eq!(
        app.received().len(),
        1,
        "the reset is past the deadline: no retry"
    );
    for _ in 0..5 {
        assert_eq!(app.get("/feed/user/1/").await.status, 429);
    }
    assert_eq!(app.received().len(), 1, "the gateway answered them itself");
}

#[tokio::test]
async fn without_callers_every_call_goes_to_stream_as_before() {
    let app = spawn_app().await;
    spent_window(&app, 0);
    for _ in 0..4 {
        assert_eq!(app.get("/feed/user/1/").await.status, 429);
    }
    assert_eq!(app.received().len(), 4);
    let m = app.metrics_text().await;
    assert!(!m.contains("gateway_caller_requests_total{"), "{m}");
    assert!(!m.contains("gateway_upstream_ratelimit_remaining{"), "{m}");
}

/// A POST whose body never finishes, from `caller`: its socket (kept open by the caller).
async fn slow_post(app: &TestApp, caller: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: localhost\r\nX-Caller: {caller}\r\n\
         Content-Length: 100\r\n\r\n{{\"actor\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// The status of the answer on `s`, within `within` (panics otherwise).
async fn answer_within(s: &mut tokio::net::TcpStream, within: std::time::Duration) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 12];
    tokio::time::timeout(within, s.read_exact(&mut head))
        .await
        .expect("an answer in time")
        .unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_caller_that_may_not_write_is_refused_before_its_slow_body_is_read() {
    let app = spawn_with(|f| {
        example(f, 1000.0, "192.0.2.0/24")
            .merge(("server.max_concurrency", 4))
            .merge(("callers.service.reader.allow", ["feed.read"]))
    })
    .await;
    // The read-only caller's slow writes, more than every body permit.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = slow_post(&app, "reader").await;
        let status = answer_within(&mut s, std::time::Duration::from_secs(1)).await;
        assert_eq!(status, 403, "refused at once, its body unread");
        slow.push(s);
    }
    // Writers are unaffected.
    let r = app
        .send(
            app.client
                .post(format!("{}/feed/user/1/", app.api))
                .header("X-Caller", "web")
                .body(json!({"actor": "user:1", "verb": "pin", "object": "x:1"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
}

#[tokio::test]
async fn one_caller_holds_at_most_its_max_in_flight_requests_bodies_included() {
    // max_concurrency 8: a caller without max_in_flight may hold 2; batch sets 3.
    let app = spawn_with(|f| {
        example(f, 1000.0, "192.0.2.0/24")
            .merge(("server.max_concurrency", 8))
            .merge(("callers.service.batch.max_in_flight", 3))
            .merge(("callers.service.batch.burst", 100))
    })
    .await;
    for (caller, max) in [("web", 2), ("batch", 3)] {
        let mut held = Vec::new();
        for _ in 0..max {
            held.push(slow_post(&app, caller).await);
        }
        // Give the gateway time to admit them.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = app.get_as(caller, "/feed/user/1/").await;
        assert_eq!(r.status, 503, "{caller}: {}", r.json);
        assert!(
            r.json["detail"].as_str().unwrap().contains("max_in_flight"),
            "{}",
            r.json
        );
        // Another caller still gets through.
        assert_eq!(app.get_as("indexer", "/feed/user/1/").await.status, 200);
        drop(held);
    }
    let busy = app
        .metric(
            "gateway_caller_requests_total{caller=\"web\",endpoint=\"feed.read\",outcome=\"busy\"}",
        )
        .await;
    assert_eq!(busy, 1.0);
}
